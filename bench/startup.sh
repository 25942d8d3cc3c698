#!/usr/bin/env bash
# Start-up cost of the compiled binary: `vks --help` and `vks --version` wall time (median) and CPU time
# (user+sys, steadier than wall time on a busy machine), next to references measured in the same run:
# `systemctl --version` (a native CLI) and a one-line `bun build --compile` program built here with
# vks' flags (the Bun runtime's own floor; BENCH_FLOOR=0 skips it), and the binary's size on disk.
# Uses hyperfine when installed (apt-get install -y hyperfine), else a date +%s%N loop (wall time only).
# Prints figures, asserts nothing. Needs no systemd manager. Appends a summary line to $BENCH_SUMMARY.
set -euo pipefail
cd "$(dirname "$0")/.."
VKS="${VKS_BIN:-dist/vks}"
RUNS="${BENCH_STARTUP_RUNS:-30}"
[ -x "$VKS" ] || { echo "startup.sh: $VKS missing; build it with 'bun run build'" >&2; exit 2; }

commands=("$VKS --help" "$VKS --version" "systemctl --version")
workdir=$(mktemp -d)
trap 'rm -rf "$workdir"' EXIT
floor=""
if [ "${BENCH_FLOOR:-1}" != 0 ] && command -v bun >/dev/null 2>&1; then
  echo 'console.log("0.0.0");' >"$workdir/floor.ts"
  if bun build --compile --minify --bytecode --format=esm --target=bun-linux-x64 "$workdir/floor.ts" \
       --outfile "$workdir/bun-floor" >/dev/null 2>&1; then
    floor="$workdir/bun-floor"
    commands+=("$floor")
  fi
fi
declare -A median_ms cpu_ms

if command -v hyperfine >/dev/null 2>&1; then
  csv="$workdir/hyperfine.csv"
  # -N: no intermediate shell, so the figure is the process alone; the commands take no shell syntax.
  hyperfine -N --style basic --warmup 3 --runs "$RUNS" --export-csv "$csv" "${commands[@]}" >/dev/null
  # CSV columns: command,mean,stddev,median,user,system,min,max (seconds).
  while IFS=, read -r command _mean _stddev median user system _rest; do
    median_ms["$command"]=$(awk -v s="$median" 'BEGIN { printf "%.1f", s * 1000 }')
    cpu_ms["$command"]=$(awk -v u="$user" -v s="$system" 'BEGIN { printf "%.1f", (u + s) * 1000 }')
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
    cpu_ms["$command"]="-"
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
printf '  %-22s %12s %16s\n' "" "median wall" "cpu (user+sys)"
row() { printf '  %-22s %9s ms %13s ms\n' "$1" "${median_ms[$2]}" "${cpu_ms[$2]}"; }
row "vks --help" "$VKS --help"
row "vks --version" "$VKS --version"
row "systemctl --version" "systemctl --version"
floor_note=""
if [ -n "$floor" ]; then
  row "bun floor (hello)" "$floor"
  floor_size=$(awk -v b="$(stat -c %s "$floor")" 'BEGIN { printf "%.1f", b / 1048576 }')
  floor_note=", Bun floor ${median_ms[$floor]} ms"
  echo "  vks --help − bun floor = $(awk -v a="$help_ms" -v b="${median_ms[$floor]}" 'BEGIN { printf "%.1f", a - b }') ms wall (vks' own start work)"
fi
echo "  vks --help / systemctl --version = $ratio"
echo "  size of $VKS: $size_bytes bytes ($size_mib MiB)${floor:+; a one-line program compiled alike: $floor_size MiB}"

if [ -n "${BENCH_SUMMARY:-}" ]; then
  echo "startup: --help ${help_ms} ms, --version ${version_ms} ms (systemctl --version ${ref_ms} ms, ratio ${ratio}${floor_note}); binary ${size_mib} MiB" >>"$BENCH_SUMMARY"
fi
