#!/usr/bin/env bash
# git (git jobs) and python3 (the quickstart example).
set -euo pipefail
need=()
command -v git >/dev/null 2>&1 || need+=(git)
command -v python3 >/dev/null 2>&1 || need+=(python3)
if ((${#need[@]})); then
  apt-get update -qq
  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "${need[@]}"
fi
echo "base: git $(git --version | cut -d' ' -f3), $(python3 --version)"
