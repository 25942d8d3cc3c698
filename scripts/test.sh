#!/usr/bin/env bash
# The whole test suite: sets up, type-checks, then runs the tests next to a real systemd manager, in two
# modes (see test/sandbox.sh):
#   user mode    every test, against a private `systemd --user` (vks --user);
#   system mode  the end-to-end suites (test/e2e, test/kube, test/kubelet, test/systemd) against a
#                private system manager booted as PID 1 of its own namespaces (vks' default flags).
# Where systemd is PID 1 the host's manager serves the tests and the system mode is not run twice; where
# the system sandbox cannot run (no root, no overlayfs, no cgroup namespaces) that mode says why and the
# user mode still runs. Arguments (test files or directories) are run in both modes instead.
# Ends with one line "N passed, N failed, N skipped" over both modes, after one line per mode.
set -uo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh || { echo "0 passed, 1 failed, 0 skipped"; exit 1; }
export PATH="$PWD/node_modules/.bin:$PATH"

failed_steps=0
echo "== type-check"
if ! tsc --noEmit -p .; then failed_steps=$((failed_steps + 1)); fi

echo "== bash -n on shell scripts"
for script in scripts/*.sh test/*.sh bench/*.sh k3s/k3s k3s/kubectl .ci/run; do
  [ -f "$script" ] || continue
  bash -n "$script" || failed_steps=$((failed_steps + 1))
done

total_passed=0 total_failed=0 total_skipped=0
mode_lines=()

# Runs bun test through a sandbox; adds its counts to the totals and a summary line for the mode.
run_mode() {
  local mode=$1 log status passed failed skipped
  shift
  log=$(mktemp)
  "$@" 2>&1 | tee "$log"
  status=${PIPESTATUS[0]}
  passed=$(grep -Eo '^ *[0-9]+ pass$' "$log" | tail -1 | grep -Eo '[0-9]+' || echo 0)
  failed=$(grep -Eo '^ *[0-9]+ fail$' "$log" | tail -1 | grep -Eo '[0-9]+' || echo 0)
  skipped=$(grep -Eo '^ *[0-9]+ skip$' "$log" | tail -1 | grep -Eo '[0-9]+' || echo 0)
  rm -f "$log"
  # A run that failed without a failing test (the sandbox, a crash) still counts as a failure.
  if [ "$status" -ne 0 ] && [ "$failed" -eq 0 ]; then failed=1; fi
  mode_lines+=("$mode: ${passed} passed, ${failed} failed, ${skipped} skipped")
  total_passed=$((total_passed + passed)) total_failed=$((total_failed + failed)) total_skipped=$((total_skipped + skipped))
}

echo "== tests, user mode (bun test, inside test/sandbox.sh)"
run_mode "user mode" test/sandbox.sh bun test --timeout 120000 "$@"

echo "== tests, system mode (bun test, inside test/sandbox.sh --system)"
if [ "$(cat /proc/1/comm 2>/dev/null)" = systemd ]; then
  mode_lines+=("system mode: not run separately: systemd is PID 1 here, so the run above used the host's system manager")
elif reason=$(test/sandbox.sh --system --check 2>&1); then
  if [ "$#" -gt 0 ]; then
    run_mode "system mode" test/sandbox.sh --system bun test --timeout 120000 "$@"
  else
    run_mode "system mode" test/sandbox.sh --system bun test --timeout 120000 test/e2e test/kube test/kubelet test/systemd
  fi
else
  mode_lines+=("system mode: not run (0 failed): ${reason#test/sandbox.sh --system: }")
fi

for line in "${mode_lines[@]}"; do echo "$line"; done
[ "$failed_steps" -eq 0 ] || echo "type-check and bash -n: ${failed_steps} failed"
total_failed=$((total_failed + failed_steps))
echo "${total_passed} passed, ${total_failed} failed, ${total_skipped} skipped"
[ "$total_failed" -eq 0 ]
