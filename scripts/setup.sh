#!/usr/bin/env bash
# Installs everything vks needs to build and test on a fresh Debian machine with Node.js/npm:
# the Debian packages its tests and both sandboxes drive (systemd, dbus, util-linux, openssl), the npm
# packages (Bun among them: the `bun` package ships its binary), then builds dist/vks. Idempotent; safe
# to run again.
set -euo pipefail
cd "$(dirname "$0")/.."

need_apt=()
command -v dbus-daemon >/dev/null || need_apt+=(dbus)
# The system sandbox (test/sandbox.sh --system) boots the system bus from the dbus package's units.
[ -f /lib/systemd/system/dbus.service ] && [ -f /lib/systemd/system/dbus.socket ] || need_apt+=(dbus)
[ -x /lib/systemd/systemd ] || need_apt+=(systemd)
command -v busctl >/dev/null || need_apt+=(systemd)
command -v unshare >/dev/null || need_apt+=(util-linux)
command -v nsenter >/dev/null || need_apt+=(util-linux)
command -v openssl >/dev/null || need_apt+=(openssl)
command -v python3 >/dev/null || need_apt+=(python3)
if [ "${#need_apt[@]}" -gt 0 ]; then
  echo "setup: installing Debian packages: ${need_apt[*]}"
  export DEBIAN_FRONTEND=noninteractive
  apt-get update -qq
  apt-get install -y -qq --no-install-recommends "${need_apt[@]}" >/dev/null
fi
# Image tests install packages with apt-get; the lists must exist for apt-cache and apt-get to find them.
if [ -z "$(ls -A /var/lib/apt/lists 2>/dev/null | grep -v -e lock -e partial)" ]; then
  apt-get update -qq
fi

if ! command -v node >/dev/null || ! command -v npm >/dev/null; then
  echo "setup: Node.js and npm are needed (apt-get install nodejs npm)" >&2
  exit 1
fi
if [ ! -x node_modules/.bin/bun ] || [ package-lock.json -nt node_modules/.package-lock.json ]; then
  echo "setup: installing npm packages"
  npm ci --no-fund --no-audit --loglevel=error
fi
export PATH="$PWD/node_modules/.bin:$PATH"
echo "setup: building dist/vks with bun $(bun --version)"
bun run --silent build >/dev/null
echo "setup: dist/vks $(./dist/vks --version) ready"
