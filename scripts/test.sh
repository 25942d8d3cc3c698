#!/usr/bin/env bash
# The whole test suite: sets up, type-checks, then runs every test next to a real systemd manager (a
# private one in namespaces where systemd is not PID 1, see test/sandbox.sh). Ends with "N passed, N failed".
set -uo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh || { echo "0 passed, 1 failed"; exit 1; }
export PATH="$PWD/node_modules/.bin:$PATH"

failed_steps=0
echo "== type-check"
if ! tsc --noEmit -p .; then failed_steps=$((failed_steps + 1)); fi

echo "== bash -n on shell scripts"
for script in scripts/*.sh test/*.sh bench/*.sh k3s/k3s k3s/kubectl .ci/run; do
  [ -f "$script" ] || continue
  bash -n "$script" || failed_steps=$((failed_steps + 1))
done

echo "== tests (bun test, inside the systemd sandbox)"
log=$(mktemp)
test/sandbox.sh bun test --timeout 120000 "$@" 2>&1 | tee "$log"
test_status=${PIPESTATUS[0]}
passed=$(grep -Eo '^ *[0-9]+ pass$' "$log" | tail -1 | grep -Eo '[0-9]+' || echo 0)
failed=$(grep -Eo '^ *[0-9]+ fail$' "$log" | tail -1 | grep -Eo '[0-9]+' || echo 0)
skipped=$(grep -Eo '^ *[0-9]+ skip$' "$log" | tail -1 | grep -Eo '[0-9]+' || echo 0)
rm -f "$log"
failed=$((failed + failed_steps))
if [ "$test_status" -ne 0 ] && [ "$failed" -eq 0 ]; then failed=1; fi
echo "${passed} passed, ${failed} failed, ${skipped} skipped"
[ "$failed" -eq 0 ]
