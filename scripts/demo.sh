#!/usr/bin/env bash
# Sets vks up and runs an example pod (default examples/hello.yaml) in the foreground with `vks pod up`,
# then shows `vks pod ls` and `vks units ls` and removes the pod. Ctrl-C during the run stops the pod.
# Where systemd is not PID 1 (containers, CI VMs) the pod runs under a private systemd manager started
# by test/sandbox.sh, and vks talks to it with --user.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh
manifest="${1:-examples/hello.yaml}"
flags=()
run=()
if [ "$(cat /proc/1/comm 2>/dev/null)" != systemd ]; then
  echo "demo: systemd is not PID 1 here, so the pod runs under a private systemd manager (test/sandbox.sh, vks --user)"
  flags=(--user)
  run=(test/sandbox.sh)
fi
"${run[@]}" bash -c '
  vks() { echo "\$ vks $*" >&2; ./dist/vks "$@"; }
  manifest=$1; shift
  status=0
  vks pod up "$@" "$manifest" || status=$?
  vks pod ls "$@"
  vks units ls "$@"
  vks pod down "$@" --ignore-not-found "$manifest"
  exit "$status"
' demo "$manifest" "${flags[@]}"
