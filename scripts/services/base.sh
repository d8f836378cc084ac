#!/usr/bin/env bash
# git (git jobs), python3 (the quickstart example), openssl (TLS certificates of the test Kubernetes API server) and
# sqlite3 (the backup and restore test follows docs/operations.md with it).
set -euo pipefail
need=()
command -v git >/dev/null 2>&1 || need+=(git)
command -v python3 >/dev/null 2>&1 || need+=(python3)
command -v openssl >/dev/null 2>&1 || need+=(openssl)
command -v sqlite3 >/dev/null 2>&1 || need+=(sqlite3)
if ((${#need[@]})); then
  apt-get update -qq
  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "${need[@]}"
fi
echo "base: git $(git --version | cut -d' ' -f3), $(python3 --version), $(openssl version | cut -d' ' -f1-2)"
# An ordinary (non-root) user: the `run-as: agent` tests run agents as it through runuser (idempotent).
if ! id -u liftoff-tester >/dev/null 2>&1; then
  useradd --system --no-create-home --shell /usr/sbin/nologin liftoff-tester
fi
echo "base: ordinary test user liftoff-tester (uid $(id -u liftoff-tester))"
