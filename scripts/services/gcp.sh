#!/usr/bin/env bash
# The Google Cloud test tool: the Google Cloud CLI (gcloud), which the GCP suites drive against Liftoff's loopback
# fakes (metadata server, GCS JSON API) as a client Liftoff did not write. It comes preinstalled on this machine kind
# (Debian package google-cloud-cli); nothing is installed here: this only checks. Missing: a loud warning (the gcloud
# cross-check then skips), or, under LIFTOFF_REQUIRE_SERVICES=1, a failure. The other GCP suites need nothing beyond
# npm packages (google-auth-library, and @google-cloud/storage for the fake's cross-check).
set -euo pipefail
problems=()
if ! command -v gcloud >/dev/null 2>&1; then
  problems+=("gcloud not found")
else
  # A throwaway config dir: no account, no usage reporting, no update check, nothing contacted.
  cfg="$(mktemp -d)"
  trap 'rm -rf "$cfg"' EXIT
  version="$(CLOUDSDK_CONFIG="$cfg" CLOUDSDK_CORE_DISABLE_USAGE_REPORTING=true \
    CLOUDSDK_COMPONENT_MANAGER_DISABLE_UPDATE_CHECK=true gcloud --version 2>/dev/null | sed -n 's/^Google Cloud SDK //p')"
  [[ -n "$version" ]] || problems+=("cannot tell the gcloud version from 'gcloud --version'")
fi
if ((${#problems[@]})); then
  joined="$(printf '%s; ' "${problems[@]}")"
  msg="gcp: ${joined%; } (install the google-cloud-cli Debian package)"
  if [[ "${LIFTOFF_REQUIRE_SERVICES:-}" == "1" ]]; then
    echo "$msg; LIFTOFF_REQUIRE_SERVICES=1, failing" >&2
    exit 1
  fi
  echo "*** $msg; the gcloud cross-check will skip ***" >&2
  exit 0
fi
echo "gcp: gcloud $(command -v gcloud), Google Cloud SDK $version"
