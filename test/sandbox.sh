#!/usr/bin/env bash
# Runs a command next to a real systemd manager.
#
# Where systemd is PID 1 the command runs as it is, against the host's manager. Elsewhere (containers,
# CI VMs) it starts a private manager in new mount/cgroup/PID namespaces: started outside such isolation,
# systemd would move every process on the machine into its own cgroups.
#
# Usage: test/sandbox.sh COMMAND [ARG...]
#   A private `systemd --user`: inside, DBUS_SESSION_BUS_ADDRESS points at its bus and VKS_SANDBOX=1;
#   run vks with --user.
# Usage: test/sandbox.sh --system COMMAND [ARG...]
#   A private system manager (systemd as PID 1 of its namespaces, booted to basic.target on an overlay
#   of / whose writes go to tmpfs, with its own system bus and journald, and the memory, pids, cpu and
#   cpuacct controllers). Inside, VKS_SANDBOX=system; run vks with its default flags (no --user). The
#   project directory is the real one (bind-mounted), so what is written there outlives the sandbox;
#   everything else written (apt-get installs included) is gone afterwards.
set -euo pipefail

if [ "${1:-}" = "--system" ]; then
  shift
  # Already next to a system manager (inside the system sandbox, or on a host booted with systemd).
  if [ "$(cat /proc/1/comm 2>/dev/null)" = "systemd" ]; then
    [ "${1:-}" = --check ] && exit 0
    exec "$@"
  fi
  exec bash "$(dirname "$(readlink -f "$0")")/sandbox-system.sh" "$@"
fi

if [ "${1:-}" = "--inner" ]; then
  shift
  mount -t tmpfs tmpfs /sys/fs/cgroup
  mkdir /sys/fs/cgroup/systemd /sys/fs/cgroup/unified
  mount -t cgroup -o none,name=systemd cgroup /sys/fs/cgroup/systemd
  mount -t cgroup2 cgroup2 /sys/fs/cgroup/unified
  mount -t tmpfs tmpfs /run
  mkdir -p /run/systemd/system /run/user/0
  export XDG_RUNTIME_DIR=/run/user/0
  export DBUS_SESSION_BUS_ADDRESS=unix:path=/run/user/0/bus
  # State lives in the sandbox's own tmpfs so runs never see each other's records.
  mount -t tmpfs tmpfs /root/.local/state 2>/dev/null || { mkdir -p /root/.local/state && mount -t tmpfs tmpfs /root/.local/state; }
  # Unit files a test installs or enables (systemctl --user enable) stay in the sandbox's tmpfs, never
  # in the host's /root/.config.
  export XDG_CONFIG_HOME=/run/user/0/config
  mkdir -p "$XDG_CONFIG_HOME"
  dbus-daemon --session --address="$DBUS_SESSION_BUS_ADDRESS" --fork --nopidfile
  # The manager is started through sandbox-manager.sh (PID file) so a test can stop it and boot a fresh one.
  manager="$(dirname "$(readlink -f "$0")")/sandbox-manager.sh"
  VKS_SANDBOX_INNER=1 bash "$manager" start || true
  export VKS_SANDBOX=1
  status=0
  "$@" || status=$?
  # As before: no wait for the manager to stop its units; the namespace's end takes everything with it.
  kill "$(cat /run/systemd-user.pid 2>/dev/null)" 2>/dev/null || true
  exit "$status"
fi

if [ "$(cat /proc/1/comm 2>/dev/null)" = "systemd" ]; then
  exec "$@"
fi

if [ "$(id -u)" != 0 ]; then
  echo "test/sandbox.sh: systemd is not PID 1 here and the private manager needs root" >&2
  exit 2
fi

H=/sys/fs/cgroup
T="vks-test-$$"
mkdir -p "$H/systemd/$T" "$H/unified/$T"
cleanup() {
  # Deepest first: a cgroup directory can only be removed once its children are gone, and a cgroup only
  # empties once the namespace's processes have exited, which can take a moment after its PID 1 ends.
  for _ in $(seq 1 50); do
    for root in "$H/systemd/$T" "$H/unified/$T"; do
      [ -d "$root" ] && find "$root" -depth -type d -exec rmdir {} + 2>/dev/null
    done
    [ -d "$H/systemd/$T" ] || [ -d "$H/unified/$T" ] || return 0
    sleep 0.1
  done
  echo "test/sandbox.sh: could not remove cgroup $T (processes still in it?)" >&2
}
trap cleanup EXIT
self="$(readlink -f "$0")"
# The namespace runs in the background so that a TERM or INT (a timeout, Ctrl-C) reaches this script at
# once; --kill-child makes the namespace's PID 1, and with it everything inside, die with unshare.
bash -c 'echo $$ >"$1/systemd/$2/cgroup.procs"; echo $$ >"$1/unified/$2/cgroup.procs";
  shift 2; exec unshare --kill-child -m -C -p -f --mount-proc --propagation private "$@"' \
  _ "$H" "$T" bash "$self" --inner "$@" <&0 &
child=$!
trap 'kill -TERM "$child" 2>/dev/null' TERM INT
status=0
while :; do
  wait "$child" && status=0 || status=$?
  kill -0 "$child" 2>/dev/null || break
done
exit "$status"
