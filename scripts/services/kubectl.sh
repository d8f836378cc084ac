#!/usr/bin/env bash
# kubectl, one of the clients Liftoff did not write that drive the test Kubernetes API server
# (test/kube/kubectl.test.ts; the other, Debian's python3-kubernetes, is installed by base.sh). It comes
# preinstalled on this machine kind (the kubectl package beside google-cloud-cli, 1.32); Debian's own kubectl (1.20)
# conflicts with it, so nothing is installed here: this only checks. Missing: a loud warning (the suite then skips),
# or, under LIFTOFF_REQUIRE_SERVICES=1, a failure.
set -euo pipefail
if ! version="$(kubectl version --client 2>/dev/null | sed -n 's/^Client Version: //p')" || [[ -z "$version" ]]; then
  msg="kubectl: not found or no client version (install the kubectl package that comes with google-cloud-cli)"
  if [[ "${LIFTOFF_REQUIRE_SERVICES:-}" == "1" ]]; then
    echo "$msg; LIFTOFF_REQUIRE_SERVICES=1, failing" >&2
    exit 1
  fi
  echo "*** $msg; the real-client suite will skip ***" >&2
  exit 0
fi
echo "kubectl: $(command -v kubectl), client $version"
