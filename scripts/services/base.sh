#!/usr/bin/env bash
# git (git jobs), python3 (the quickstart example) with Debian's numpy (the train-a-model example), openssl (TLS certificates of the test Kubernetes API server),
# Debian's python3-kubernetes (the official Python client drives the test Kubernetes API server in test/kube/pythonClient.test.ts) and
# sqlite3 (the backup and restore test follows docs/operations.md with it).
set -euo pipefail
need=()
command -v git >/dev/null 2>&1 || need+=(git)
command -v python3 >/dev/null 2>&1 || need+=(python3)
command -v openssl >/dev/null 2>&1 || need+=(openssl)
command -v sqlite3 >/dev/null 2>&1 || need+=(sqlite3)
# Jobs get the system PATH, so the package is checked with Debian's own python3, not one earlier on PATH.
/usr/bin/python3 -c 'import numpy' >/dev/null 2>&1 || need+=(python3-numpy)
/usr/bin/python3 -c 'import kubernetes' >/dev/null 2>&1 || need+=(python3-kubernetes)
if ((${#need[@]})); then
  apt-get -o DPkg::Lock::Timeout=600 update -qq
  DEBIAN_FRONTEND=noninteractive apt-get -o DPkg::Lock::Timeout=600 install -y -qq "${need[@]}"
fi
echo "base: git $(git --version | cut -d' ' -f3), $(python3 --version), numpy $(/usr/bin/python3 -c 'import numpy; print(numpy.__version__)'), kubernetes $(/usr/bin/python3 -c 'import kubernetes; print(kubernetes.__version__)'), $(openssl version | cut -d' ' -f1-2)"
# An ordinary (non-root) user: the `run-as: agent` tests run agents as it through runuser (idempotent).
if ! id -u liftoff-tester >/dev/null 2>&1; then
  useradd --system --no-create-home --shell /usr/sbin/nologin liftoff-tester
fi
echo "base: ordinary test user liftoff-tester (uid $(id -u liftoff-tester))"
