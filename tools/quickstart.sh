#!/usr/bin/env bash
# Set up a fresh Debian/Ubuntu machine and run the demo or the tests.
#   bash tools/quickstart.sh demo     # the demo, on embedded defaults
#   bash tools/quickstart.sh test     # lint, unit and functional tests
# Needs root for the system packages (bindep.txt lists them) and for the
# functional tests, which start real libvirt daemons in network namespaces.
set -euo pipefail
cd "$(dirname "$(readlink -f "$0")")/.."

what=${1:-}
case "$what" in
  demo|test) ;;
  *) echo "usage: bash tools/quickstart.sh demo|test" >&2; exit 2 ;;
esac

as_root() { if [ "$(id -u)" = 0 ]; then "$@"; else sudo "$@"; fi; }

# System packages: the compile-time ones for libvirt-python; the test run
# also needs a real libvirtd and QEMU.
pkgs="gcc pkg-config libvirt-dev python3-dev python3-venv"
if [ "$what" = test ]; then
  pkgs="$pkgs libvirt-daemon libvirt-daemon-driver-qemu libvirt-clients \
qemu-system-x86 iproute2 util-linux strace"
fi
missing=""
for p in $pkgs; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "ok installed" \
    || missing="$missing $p"
done
if [ -n "$missing" ]; then
  as_root apt-get update -qq
  as_root env DEBIAN_FRONTEND=noninteractive \
    apt-get install -y -qq --no-install-recommends $missing
fi

if [ "$what" = test ] && [ "$(id -u)" = 0 ]; then
  # libvirtd refuses to start without the packaged QEMU user and groups,
  # which only libvirt-daemon-system (with systemd units) would create.
  getent group kvm >/dev/null || groupadd -r kvm
  getent group libvirt-qemu >/dev/null || groupadd -r libvirt-qemu
  id libvirt-qemu >/dev/null 2>&1 || useradd -r -g libvirt-qemu -G kvm \
    -d /var/lib/libvirt -s /usr/sbin/nologin libvirt-qemu
fi

python3 -m venv .venv
.venv/bin/pip install -q --upgrade pip 'tox>=4'

if [ "$what" = demo ]; then
  exec .venv/bin/tox -q -e demo
fi
.venv/bin/tox -e pep8,py3,nova-compat
if [ "$(id -u)" = 0 ]; then
  .venv/bin/tox -e functional
else
  echo "functional tests need root: run 'sudo .venv/bin/tox -e functional'" >&2
fi
# Nova 34's own SR-IOV functional tests and the fork's, on the
# nova-compute fork built from nova_fork/patches (no root needed).
.venv/bin/tox -e nova-fork
