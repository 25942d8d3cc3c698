#!/usr/bin/env bash
# All benchmarks, one run, then a summary block of the figures and ratios (see bench/README.md).
# Builds dist/vks when it is missing, and re-enters itself through test/sandbox.sh when no user manager is
# reachable (systemd not PID 1), so `bash bench/run.sh` works the same on a host and in a container.
# Prints figures only: a missed goal never fails the run; a benchmark that cannot run does.
set -euo pipefail
cd "$(dirname "$0")/.."
export PATH="$PWD/node_modules/.bin:$PATH"

if [ -z "${VKS_SANDBOX:-}" ] && [ "$(cat /proc/1/comm 2>/dev/null)" != "systemd" ]; then
  exec test/sandbox.sh bash bench/run.sh "$@"
fi

if [ ! -x dist/vks ]; then
  echo "== building dist/vks"
  bun run build >/dev/null
fi

summary=$(mktemp)
trap 'rm -f "$summary"' EXIT
export BENCH_SUMMARY="$summary"
status=0

echo "== startup (bench/startup.sh)"
bash bench/startup.sh || status=1
echo
echo "== pod start (bench/pods.ts)"
bun bench/pods.ts || status=1
echo
echo "== volumes (bench/volumes.ts: a pod with 5 configMap/secret volumes, 100 pods with an emptyDir, each vs none)"
bun bench/volumes.ts || status=1
echo
echo "== probes (bench/probes.ts: 100 pods with an httpGet readiness probe every 1 s; a crash-looping pod, back-off vs 1 s restarts)"
bun bench/probes.ts || status=1
echo
echo "== units ls (bench/units-ls.ts)"
bun bench/units-ls.ts || status=1
echo
echo "== serve (bench/serve.ts: 100 pods through the API, status latency, RSS)"
bun bench/serve.ts || status=1
echo
echo "== kubelet API (bench/kubelet.ts: kubectl exec/logs through the API server, exec throughput, RSS with streams)"
bun bench/kubelet.ts || status=1

echo
echo "== fuzz (bench/fuzz.ts: generated manifests in-process and through dist/vks)"
bun bench/fuzz.ts --count "${BENCH_FUZZ_COUNT:-10000}" --sample "${BENCH_FUZZ_SAMPLE:-300}" || status=1
if [ -n "${BENCH_CHAOS:-}" ]; then
  echo
  echo "== chaos (bench/chaos.ts: create/delete with kill -9, daemon-reexec, daemon-reload)"
  bun bench/chaos.ts --cycles "${BENCH_CHAOS_CYCLES:-100}" || status=1
fi

echo
echo "== summary ($(nproc) cores, $(systemctl --version | head -1), bun $(bun --version))"
cat "$summary"
[ "$status" -eq 0 ] || echo "(some benchmarks failed to run; see above)"
exit "$status"
