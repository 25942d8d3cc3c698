#!/usr/bin/env bash
# Start-up cost of the compiled binary: `vks --help` and `vks --version` wall time (median), next to
# `systemctl --version` measured in the same run as a native reference, and the binary's size on disk.
# Uses hyperfine when installed (apt-get install -y hyperfine), else a date +%s%N loop. Prints figures,
# asserts nothing. Needs no systemd manager. Appends its summary lines to $BENCH_SUMMARY when set.
set -euo pipefail
cd "$(dirname "$0")/.."
VKS="${VKS_BIN:-dist/vks}"
RUNS="${BENCH_STARTUP_RUNS:-30}"
[ -x "$VKS" ] || { echo "startup.sh: $VKS missing; build it with 'bun run build'" >&2; exit 2; }

commands=("$VKS --help" "$VKS --version" "systemctl --version")
declare -A median_ms

if command -v hyperfine >/dev/null 2>&1; then
  csv=$(mktemp)
  trap 'rm -f "$csv"' EXIT
  # -N: no intermediate shell, so the figure is the process alone; the commands take no shell syntax.
  hyperfine -N --style basic --warmup 3 --runs "$RUNS" --export-csv "$csv" "${commands[@]}" >/dev/null
  # CSV columns: command,mean,stddev,median,user,system,min,max (seconds).
  while IFS=, read -r command _mean _stddev median _rest; do
    median_ms["$command"]=$(awk -v s="$median" 'BEGIN { printf "%.1f", s * 1000 }')
  done < <(tail -n +2 "$csv")
  tool="hyperfine, $RUNS runs after 3 warm-ups"
else
  # Interleaved so drift on a noisy machine hits every command alike; 3 warm-up rounds are discarded.
  declare -A samples
  for round in $(seq -3 "$RUNS"); do
    for command in "${commands[@]}"; do
      start=$(date +%s%N)
      $command >/dev/null 2>&1
      end=$(date +%s%N)
      [ "$round" -gt 0 ] && samples["$command"]+="$(((end - start) / 1000)) "
    done
  done
  for command in "${commands[@]}"; do
    median_ms["$command"]=$(tr ' ' '\n' <<<"${samples[$command]}" | grep . | sort -n |
      awk '{ v[NR] = $1 } END { m = (NR % 2) ? v[(NR + 1) / 2] : (v[NR / 2] + v[NR / 2 + 1]) / 2; printf "%.1f", m / 1000 }')
  done
  tool="date +%s%N loop, $RUNS interleaved runs after 3 warm-ups"
fi

size_bytes=$(stat -c %s "$VKS")
size_mib=$(awk -v b="$size_bytes" 'BEGIN { printf "%.1f", b / 1048576 }')
help_ms=${median_ms["$VKS --help"]}
version_ms=${median_ms["$VKS --version"]}
ref_ms=${median_ms["systemctl --version"]}
ratio=$(awk -v a="$help_ms" -v b="$ref_ms" 'BEGIN { printf "%.1f", a / b }')

echo "startup: ($tool)"
printf '  %-22s median %7s ms\n' "vks --help" "$help_ms" "vks --version" "$version_ms" "systemctl --version" "$ref_ms"
echo "  vks --help / systemctl --version = $ratio"
echo "  size of $VKS: $size_bytes bytes ($size_mib MiB)"

if [ -n "${BENCH_SUMMARY:-}" ]; then
  echo "startup: --help ${help_ms} ms, --version ${version_ms} ms (systemctl --version ${ref_ms} ms, ratio ${ratio}); binary ${size_mib} MiB" >>"$BENCH_SUMMARY"
fi
