#!/usr/bin/env bash
# The AWS test tools: moto (moto_server, an independent implementation of the AWS APIs the AWS suites run against
# on 127.0.0.1), the AWS CLI and botocore >= 1.43 (whose official service models the fake AWS endpoint validates
# against). They come preinstalled (Python, under pyenv) on this machine kind; PyPI is not reachable, so nothing is
# installed here: this only checks. Missing: a loud warning (the AWS suites then skip), or, under
# LIFTOFF_REQUIRE_SERVICES=1, a failure.
set -euo pipefail
problems=()
command -v moto_server >/dev/null 2>&1 || problems+=("moto_server not found")
command -v aws >/dev/null 2>&1 || problems+=("the AWS CLI (aws) not found")
botocore=""
if command -v aws >/dev/null 2>&1; then
  # "aws-cli/1.45.11 Python/3.11.7 Linux/... botocore/1.43.11": the botocore the CLI (and moto's Python) runs on.
  botocore="$(aws --version 2>&1 | sed -n 's/.*botocore\/\([0-9.]*\).*/\1/p')"
  if [[ -z "$botocore" ]]; then
    problems+=("cannot tell the botocore version from 'aws --version'")
  elif ! printf '1.43\n%s\n' "$botocore" | sort -V -C; then
    problems+=("botocore $botocore is older than 1.43")
  fi
fi
if ((${#problems[@]})); then
  joined="$(printf '%s; ' "${problems[@]}")"
  msg="aws: ${joined%; } (install moto[server] 5.2, awscli and botocore 1.43 for Python)"
  if [[ "${LIFTOFF_REQUIRE_SERVICES:-}" == "1" ]]; then
    echo "$msg; LIFTOFF_REQUIRE_SERVICES=1, failing" >&2
    exit 1
  fi
  echo "*** $msg; the AWS suites will skip ***" >&2
  exit 0
fi
echo "aws: moto_server $(command -v moto_server), $(aws --version 2>&1 | cut -d' ' -f1), botocore $botocore"
