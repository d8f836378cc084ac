#!/usr/bin/env bash
# The official AWS API models the test AWS endpoint validates every request against (test/helpers/awsFake/), and
# the independent tools its self-test compares with (moto_server, the AWS CLI). Prints the botocore data directory
# on its last line. Preferred: the preinstalled botocore (1.43 on this machine kind, pip). Fallback: Debian's older
# python3-botocore, fetched with `apt-get download` (no install, no root needed for the extraction) and unpacked into
# a cache dir. Without models the AWS suites skip loudly; under LIFTOFF_REQUIRE_SERVICES=1 this script fails instead.
set -euo pipefail
services=(sagemaker/2017-07-24 logs/2014-03-28 ecr/2015-09-21 sts/2011-06-15)
cache="${LIFTOFF_AWS_MODELS_CACHE:-${XDG_CACHE_HOME:-$HOME/.cache}/liftoff/botocore}"

complete() {
  local dir="$1" s
  for s in "${services[@]}"; do [[ -s "$dir/$s/service-2.json.gz" || -s "$dir/$s/service-2.json" ]] || return 1; done
}

fail() {
  echo "aws-models: $*" >&2
  [[ "${LIFTOFF_REQUIRE_SERVICES:-}" == 1 ]] && exit 1
  exit 2
}

dir=""
if py="$(python3 -c 'import botocore, os; print(os.path.dirname(botocore.__file__))' 2>/dev/null)" && complete "$py/data"; then
  dir="$py/data"
elif complete "$cache/usr/lib/python3/dist-packages/botocore/data"; then
  dir="$cache/usr/lib/python3/dist-packages/botocore/data"
else
  tmp="$(mktemp -d)"
  trap 'rm -rf "$tmp"' EXIT
  if (cd "$tmp" && apt-get download python3-botocore >/dev/null 2>&1); then
    mkdir -p "$cache"
    dpkg-deb -x "$tmp"/python3-botocore_*.deb "$cache"
    complete "$cache/usr/lib/python3/dist-packages/botocore/data" && dir="$cache/usr/lib/python3/dist-packages/botocore/data"
  fi
fi
[[ -n "$dir" ]] || fail "botocore's service-2.json models not found (pip botocore, or Debian python3-botocore via apt-get download)"

missing=()
command -v moto_server >/dev/null 2>&1 || missing+=(moto_server)
command -v aws >/dev/null 2>&1 || missing+=(aws)
((${#missing[@]} == 0)) || fail "missing ${missing[*]} (moto 5.2 and the AWS CLI come preinstalled on this machine kind; PyPI is not reachable)"
echo "aws-models: botocore models in $dir; $(moto_server --version 2>/dev/null | head -1 || echo moto_server); $(aws --version 2>&1 | cut -d' ' -f1)"
echo "$dir"
