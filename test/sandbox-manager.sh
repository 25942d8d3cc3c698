#!/usr/bin/env bash
# Starts, stops or restarts the sandbox's private `systemd --user` (test/sandbox.sh runs it as a child of
# its inner shell, not as PID 1, so a test can end it and boot a fresh one: a simulated reboot).
#
# Usage (inside test/sandbox.sh only): test/sandbox-manager.sh start|stop|restart
#   stop     the manager stops every unit (as at shutdown) and exits; its transient units go with it
#   start    a fresh manager; it reaches default.target, so units enabled there start as at boot
#   restart  stop, forget what a reboot forgets (/run's transient units), start
set -euo pipefail

if [ "${VKS_SANDBOX:-}" != 1 ] && [ "${VKS_SANDBOX_INNER:-}" != 1 ]; then
  echo "test/sandbox-manager.sh: only inside test/sandbox.sh" >&2
  exit 2
fi
PID_FILE=/run/systemd-user.pid

manager_answers() {
  busctl --user call org.freedesktop.systemd1 /org/freedesktop/systemd1 \
    org.freedesktop.DBus.Properties Get ss org.freedesktop.systemd1.Manager SystemState >/dev/null 2>&1
}

start() {
  # setsid: the manager must not share the caller's process group (a test's Ctrl-C or kill of its job).
  setsid /lib/systemd/systemd --user >>/run/systemd-user.log 2>&1 </dev/null &
  echo $! >"$PID_FILE"
  for _ in $(seq 1 200); do
    manager_answers && return 0
    sleep 0.05
  done
  echo "test/sandbox-manager.sh: the user manager did not answer on the bus" >&2
  return 1
}

stop() {
  [ -f "$PID_FILE" ] || return 0
  pid="$(cat "$PID_FILE")"
  rm -f "$PID_FILE"
  # SIGTERM is what shutdown sends a user manager: it stops its units in order, then exits.
  kill -TERM "$pid" 2>/dev/null || return 0
  for _ in $(seq 1 600); do
    kill -0 "$pid" 2>/dev/null || return 0
    sleep 0.05
  done
  echo "test/sandbox-manager.sh: the user manager (pid $pid) did not exit within 30s; killing it" >&2
  kill -KILL "$pid" 2>/dev/null || true
}

case "${1:-}" in
  start) start ;;
  stop) stop ;;
  restart)
    stop
    # A reboot empties /run: the transient units of the old manager must not come back with the new one.
    rm -rf "${XDG_RUNTIME_DIR:?}/systemd/transient"
    start
    ;;
  *)
    echo "usage: test/sandbox-manager.sh start|stop|restart" >&2
    exit 2
    ;;
esac
