#!/usr/bin/env bash
# Installs and starts what the test suites need on a Debian machine (run as root). Safe to run repeatedly, and
# by hand. Each service has its own script in scripts/services/ and prints one line saying what is ready.
set -euo pipefail
cd "$(dirname "$0")"
for script in services/*.sh; do
  bash "$script"
done
