#!/usr/bin/env bash
# Sets vks up and runs the default example pod in the foreground (Ctrl-C stops it).
# Where systemd is not PID 1 (containers, CI VMs) the pod runs under a private systemd manager started
# by test/sandbox.sh; the example then runs against that manager with --user.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh
manifest="${1:-examples/hello.yaml}"
if [ "$(cat /proc/1/comm 2>/dev/null)" = systemd ]; then
  exec ./dist/vks pod up "$manifest"
fi
echo "demo: systemd is not PID 1 here, so the pod runs under a private systemd manager (test/sandbox.sh, vks --user)"
exec test/sandbox.sh ./dist/vks pod up --user "$manifest"
