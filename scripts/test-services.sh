#!/usr/bin/env bash
# Installs what the test suites need on a Debian machine (run as root). Safe to run repeatedly, and by hand.
# The core suites need git (git jobs) and python3 (the quickstart example). Later suites add their services here.
set -euo pipefail

need=()
command -v git >/dev/null 2>&1 || need+=(git)
command -v python3 >/dev/null 2>&1 || need+=(python3)
if ((${#need[@]})); then
  apt-get update -qq
  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "${need[@]}"
fi
echo "test services ready: git $(git --version | cut -d' ' -f3), $(python3 --version)"
