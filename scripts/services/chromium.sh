#!/usr/bin/env bash
# Debian's Chromium for the web UI tests (test/ui), driven by playwright-core; never a downloaded browser.
set -euo pipefail
if [ ! -x /usr/bin/chromium ]; then
  apt-get update -qq
  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq chromium
fi
echo "chromium: $(/usr/bin/chromium --version 2>/dev/null | head -n1)"
