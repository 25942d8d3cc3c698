#!/usr/bin/env bash
# test/sandbox.sh --system: runs a command next to a private *system* manager, as systemd-nspawn would.
#
# systemd boots basic.target as PID 1 of new PID, mount and cgroup namespaces, on an overlay of / whose
# writes go to a tmpfs, with a private /run, /tmp and /dev, a read-only /sys and /proc/sys, and per-run
# cgroups in every hierarchy it is given (name=systemd, the cgroup2 one, and the v1 controllers memory,
# pids, cpu and cpuacct), so it can enforce MemoryMax=, TasksMax= and CPUQuota=. The command then runs
# inside through nsenter, in the project directory (bind-mounted: what it writes there is kept).
#
# Hazards this avoids (both seen): booted on the host's own filesystem, systemd-tmpfiles empties the
# machine's /tmp and the default target starts the host's services; without cgroup namespaces systemd
# takes over the machine's cgroups. So: never the host's filesystem, never the default target, and every
# cgroup it may touch lies under this run's own directory, removed (deepest first) when it ends.
#
# Usage: test/sandbox-system.sh COMMAND [ARG...]   (normally through test/sandbox.sh --system)
#        test/sandbox-system.sh --check            (only whether it can run here)
# Exit status: the command's; 3 when this machine cannot run the sandbox (the reason on stderr).
set -euo pipefail

# Messages go to fd 3, a copy of stderr: the clean-up silences stderr itself, where bash would otherwise
# report the jobs it kills as "Killed".
[ "${1:-}" = "--inner" ] || exec 3>&2
say() { echo "test/sandbox.sh --system: $*" >&3; }

# --- Inside: PID 1 of the new namespaces, still on the host's root, about to become systemd. ---------
if [ "${1:-}" = "--inner" ]; then
  project=$2 hierarchies=$3
  mount -t tmpfs -o mode=755 vks-sandbox /mnt
  mkdir /mnt/upper /mnt/work /mnt/root
  # Only the root filesystem itself is the lower layer: the host's other mounts (its /tmp, /run, /dev,
  # cgroups) are not part of it, and everything written lands in /mnt/upper.
  mount -t overlay vks-sandbox -o lowerdir=/,upperdir=/mnt/upper,workdir=/mnt/work /mnt/root
  R=/mnt/root

  mount -t proc proc "$R/proc"
  for path in sys sysrq-trigger; do [ -e "$R/proc/$path" ] || continue; mount --bind "$R/proc/$path" "$R/proc/$path"; mount -o remount,bind,ro "$R/proc/$path"; done
  # A fresh read-only sysfs (no udev, no host sysctl or pstore writes), with a cgroup tmpfs of our own.
  mount -t sysfs -o ro,nosuid,nodev,noexec sysfs "$R/sys"
  mount -t tmpfs -o mode=755,nosuid,nodev,noexec cgroup "$R/sys/fs/cgroup"
  for spec in $hierarchies; do
    name=${spec%%:*} options=${spec#*:}
    mkdir "$R/sys/fs/cgroup/$name"
    if [ "$options" = cgroup2 ]; then
      mount -t cgroup2 -o nosuid,nodev,noexec cgroup2 "$R/sys/fs/cgroup/$name"
    else
      mount -t cgroup -o "nosuid,nodev,noexec,$options" cgroup "$R/sys/fs/cgroup/$name"
      # systemd finds a controller at /sys/fs/cgroup/CONTROLLER: co-mounted ones get links, as on hosts.
      if [ "$name" != "${name//,/}" ]; then
        for controller in ${name//,/ }; do ln -s "$name" "$R/sys/fs/cgroup/$controller"; done
      fi
    fi
  done
  # Read-only: systemd mounts every controller it finds missing, and the others (cpuset, devices, ...)
  # would be rooted at the host's cgroups, outside this run's directories.
  mount -o remount,ro "$R/sys/fs/cgroup"

  # A private /dev with the usual nodes (no tmpfiles or udev writes to the host's).
  mount -t tmpfs -o mode=755,nosuid vks-dev "$R/dev"
  for node in null zero full random urandom tty; do
    touch "$R/dev/$node"
    mount --bind "/dev/$node" "$R/dev/$node"
  done
  mkdir "$R/dev/pts" "$R/dev/shm"
  mount -t devpts -o newinstance,ptmxmode=0666,mode=620,gid=5 devpts "$R/dev/pts"
  ln -s pts/ptmx "$R/dev/ptmx"
  mount -t tmpfs -o mode=1777,nosuid,nodev tmpfs "$R/dev/shm"
  ln -s /proc/self/fd "$R/dev/fd"
  ln -s /proc/self/fd/0 "$R/dev/stdin"; ln -s /proc/self/fd/1 "$R/dev/stdout"; ln -s /proc/self/fd/2 "$R/dev/stderr"

  mount -t tmpfs -o mode=755,nosuid,nodev tmpfs "$R/run"
  mount -t tmpfs -o mode=1777,nosuid,nodev tmpfs "$R/tmp"
  mkdir -p "$R$project"
  mount --rbind "$project" "$R$project"

  # Units that would act on the host's kernel or clock, or run jobs nobody asked for.
  mkdir -p "$R/etc/systemd/system"
  for unit in systemd-modules-load.service systemd-timesyncd.service systemd-pstore.service \
      systemd-journald-audit.socket timers.target; do
    ln -sf /dev/null "$R/etc/systemd/system/$unit"
  done

  mkdir -p "$R/run/vks-sandbox" "$R/oldroot"
  cd "$R"
  pivot_root . oldroot
  umount -l /oldroot
  rmdir /oldroot
  exec env -i container=vks-sandbox PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin \
    /lib/systemd/systemd --system --unit=basic.target --show-status=0 </dev/null >/run/vks-sandbox/systemd.log 2>&1
fi

# --- Outside. ------------------------------------------------------------------------------------------
cannot() { say "cannot run here: $*"; exit 3; }
[ "$#" -gt 0 ] || { say "usage: test/sandbox.sh --system COMMAND [ARG...]"; exit 2; }
[ "$(id -u)" = 0 ] || cannot "needs root"
[ -x /lib/systemd/systemd ] || cannot "/lib/systemd/systemd is missing (apt-get install systemd)"
command -v nsenter >/dev/null && command -v unshare >/dev/null || cannot "nsenter and unshare are missing (apt-get install util-linux)"
command -v dbus-daemon >/dev/null || cannot "dbus-daemon is missing (apt-get install dbus)"
grep -qw overlay /proc/filesystems || modprobe overlay 2>/dev/null || cannot "the kernel has no overlayfs"
unshare -C -m true 2>/dev/null || cannot "unshare -C fails (no cgroup namespaces)"
project=$(cd "$(dirname "$(readlink -f "$0")")/.." && pwd)
T="vks-system-$$"

# The hierarchies to hand over: the cgroup2 one, name=systemd, and those holding the controllers systemd
# enforces limits with. Each is "NAME:MOUNT-OPTIONS:HOST-DIRECTORY", HOST-DIRECTORY being this process's
# own cgroup in it (from /proc/self/cgroup), found through the host's mount of that hierarchy.
wanted_controllers=" memory pids cpu cpuacct "
specs=()
while IFS=: read -r _ controllers path; do
  if [ -z "$controllers" ]; then
    name=unified options=cgroup2 fstype=cgroup2
  elif [ "$controllers" = name=systemd ]; then
    name=systemd options=none,name=systemd fstype=cgroup
  else
    keep=
    for controller in ${controllers//,/ }; do
      [ "${wanted_controllers/ $controller /}" != "$wanted_controllers" ] && keep=1
    done
    [ -n "$keep" ] || continue
    name=$controllers options=$controllers fstype=cgroup
  fi
  # The host's mount of this hierarchy: its root (field 4) and mount point (field 5) in mountinfo.
  mount_line=$(awk -v fstype="$fstype" -v opts=",$controllers," '
    { sep = 0; for (i = 1; i <= NF; i++) if ($i == "-") { sep = i; break } }
    $(sep + 1) != fstype { next }
    fstype == "cgroup2" { print $4, $5; exit }
    { n = split($(sep + 3), o, ","); found = 0
      for (i = 1; i <= n; i++) if (index(opts, "," o[i] ",")) found++
      if (found == split(substr(opts, 2, length(opts) - 2), w, ",")) { print $4, $5; exit } }' /proc/self/mountinfo)
  [ -n "$mount_line" ] || { say "skipping cgroup hierarchy ${controllers:-cgroup2}: not mounted on the host"; continue; }
  read -r mount_root mount_point <<<"$mount_line"
  relative=$path
  [ "$mount_root" = / ] || relative=${path#"$mount_root"}
  specs+=("$name:$options:${mount_point%/}${relative%/}/$T")
done </proc/self/cgroup
have() { local spec; for spec in "${specs[@]}"; do [ "${spec%%:*}" = "$1" ] && return 0; done; return 1; }
have systemd || cannot "no name=systemd cgroup hierarchy is mounted (a pure cgroup2 host is not supported by this sandbox)"
for controller in memory pids; do
  found=
  for spec in "${specs[@]}"; do name=${spec%%:*}; [[ ",$name," == *",$controller,"* ]] && found=1; done
  [ -n "$found" ] || say "the $controller controller is not available: its limits will not be enforced"
done
# --check: only whether the sandbox can run here (scripts/test.sh asks before choosing the modes).
[ "$1" = --check ] && exit 0

cgroup_dirs=()
for spec in "${specs[@]}"; do cgroup_dirs+=("${spec##*:}"); done
inner_specs=
for spec in "${specs[@]}"; do inner_specs+="${spec%:*} "; done

canary=$(mktemp /tmp/vks-sandbox-canary.XXXXXX)
unshare_pid= command_pid=
cleanup() {
  local status=$?
  set +e
  trap - EXIT TERM INT
  exec 2>/dev/null
  [ -n "$command_pid" ] && kill -KILL "$command_pid" 2>/dev/null
  # unshare's --kill-child turns its death into a SIGKILL of the namespace's PID 1, and the kernel then
  # kills every process of the PID namespace.
  [ -n "$unshare_pid" ] && kill -KILL "$unshare_pid" 2>/dev/null
  wait
  # Deepest first: a cgroup directory can only be removed once its children are gone, and a cgroup only
  # empties once the namespace's processes have exited, which can take a moment after its PID 1 ends.
  local left dir
  for _ in $(seq 1 100); do
    left=
    for dir in "${cgroup_dirs[@]}"; do
      [ -d "$dir" ] || continue
      find "$dir" -depth -type d -exec rmdir {} + 2>/dev/null
      [ -d "$dir" ] && left+=" $dir"
    done
    [ -z "$left" ] && break
    sleep 0.1
  done
  [ -z "$left" ] || { say "could not remove cgroups (processes still in them?):$left"; status=1; }
  if [ -e "$canary" ]; then rm -f "$canary"; else say "the canary $canary in the host's /tmp is gone: something wiped /tmp"; status=1; fi
  exit "$status"
}
trap cleanup EXIT
trap 'exit 143' TERM
trap 'exit 130' INT

for dir in "${cgroup_dirs[@]}"; do mkdir "$dir"; done

self="$(readlink -f "$0")"
export VKS_SANDBOX_PROJECT="$project"
export VKS_SANDBOX_CGROUPS="${cgroup_dirs[*]}"
join_cgroups='for dir in $VKS_SANDBOX_CGROUPS; do echo $$ >"$dir/cgroup.procs"; done'
# In the background so that a TERM or INT reaches this script at once (bash runs traps only between
# foreground commands). The subshell joins the per-run cgroups first, so the namespaces' cgroup roots
# are those directories.
bash -c "$join_cgroups"'
  exec unshare --kill-child -m -C -p -f --mount-proc --propagation private bash "$@"' \
  _ "$self" --inner "$project" "$inner_specs" </dev/null 3>&- &
unshare_pid=$!

# The namespace's PID 1, as the host sees it: unshare's child once it has become systemd.
pid1=
for _ in $(seq 1 200); do
  child=$(cat "/proc/$unshare_pid/task/$unshare_pid/children" 2>/dev/null || true)
  child=${child%% *}
  if [ -n "$child" ] && [ "$(cat "/proc/$child/comm" 2>/dev/null)" = systemd ]; then pid1=$child; break; fi
  kill -0 "$unshare_pid" 2>/dev/null || break
  sleep 0.05
done
[ -n "$pid1" ] || { say "systemd did not start in the namespace"; exit 1; }

inside() { nsenter -t "$pid1" -m -p -C -r -w "$@"; }
boot_log() { cat "/proc/$pid1/root/run/vks-sandbox/systemd.log" 2>/dev/null | tail -30 >&2 || true; }

# Boot: wait for basic.target, i.e. until the manager's state is running (or degraded: some unit failed).
state=
for _ in $(seq 1 600); do
  state=$(inside systemctl is-system-running 2>/dev/null || true)
  case "$state" in running | degraded | maintenance | stopping | offline) break ;; esac
  kill -0 "$pid1" 2>/dev/null || break
  sleep 0.1
done
case "$state" in
  running) ;;
  degraded)
    say "the system manager is degraded; failed units:"
    inside systemctl list-units --failed --no-legend --plain >&2 || true
    ;;
  *)
    say "the system manager did not come up (state: ${state:-none}); its log:"
    boot_log
    exit 1
    ;;
esac

# The command: in this run's cgroups (the namespace's root, never the host's), in the PID namespace so
# that it dies with PID 1, with the environment of a root shell on a system-manager host, in the same
# directory (the project is bind-mounted; any other directory is the overlay's copy).
bash -c "$join_cgroups"'
  exec nsenter -t "$0" -m -p -C -r -w env -u DBUS_SESSION_BUS_ADDRESS -u DBUS_SYSTEM_BUS_ADDRESS -u XDG_RUNTIME_DIR \
    -u INVOCATION_ID -u JOURNAL_STREAM -u NOTIFY_SOCKET -u VKS_SANDBOX_CGROUPS VKS_SANDBOX=system \
    bash -c '\''cd "$0" 2>/dev/null || cd "$VKS_SANDBOX_PROJECT"; exec "$@"'\'' "$@"' \
  "$pid1" "$PWD" "$@" <&0 3>&- &
command_pid=$!
status=0
while :; do
  wait "$command_pid" && status=0 || status=$?
  kill -0 "$command_pid" 2>/dev/null || break
done
command_pid=
exit "$status"
