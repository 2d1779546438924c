#!/bin/sh
# Installs or upgrades nimbus-edge from an unpacked release tarball, on the board, as root:
#
#   sudo ./install.sh
#
# Idempotent. Installs the binary (/usr/local/bin), the systemd units (/etc/systemd/system), the
# journald limits, and -- only if they do not exist yet -- /etc/nimbus-edge/nimbus-edge.toml and
# /etc/nimbus-edge/env (a changed default config is written next to yours as nimbus-edge.toml.new).
# A running node is restarted onto the new binary; a new install is left stopped for you to
# configure (see INSTALL.txt). Data in /var/lib/nimbus-edge is never touched.
#
# DESTDIR=/some/dir ./install.sh stages the files under that directory instead and skips every
# check and systemctl call that needs the real board (used to verify release tarballs).
set -eu

HERE=$(cd "$(dirname "$0")" && pwd)
DESTDIR=${DESTDIR:-}
say() { printf 'nimbus-edge install: %s\n' "$*"; }
die() { printf 'nimbus-edge install: ERROR: %s\n' "$*" >&2; exit 1; }

[ -f "$HERE/nimbus-edge" ] || die "no nimbus-edge binary next to install.sh"
TARGET=$(cat "$HERE/TARGET" 2>/dev/null || echo unknown)

if [ -z "$DESTDIR" ]; then
  [ "$(id -u)" -eq 0 ] || die "run as root (sudo ./install.sh)"
  # The binary must match the OS's userland (a 32-bit Raspberry Pi OS may run a 64-bit kernel).
  arch=$(dpkg --print-architecture 2>/dev/null || uname -m)
  case "$TARGET:$arch" in
    aarch64-*:arm64 | aarch64-*:aarch64 | armv7-*:armhf | armv7-*:armv7l | unknown:*) ;;
    *) die "this tarball is for $TARGET but this system's userland is $arch (arm64: aarch64 tarball; armhf: armv7 tarball)" ;;
  esac
  "$HERE/nimbus-edge" --version >/dev/null 2>&1 ||
    die "the binary does not run here ($("$HERE/nimbus-edge" --version 2>&1 | head -n1)); it needs glibc 2.34+ (Raspberry Pi OS 12 bookworm or newer)"
fi

etc=$DESTDIR/etc/nimbus-edge
units=$DESTDIR/etc/systemd/system
mkdir -p "$DESTDIR/usr/local/bin" "$etc" "$units" "$DESTDIR/etc/systemd/journald.conf.d" \
  "$DESTDIR/usr/local/share/doc/nimbus-edge"

# The binary: written beside the old one, then renamed over it (a running node keeps its copy).
install -m 0755 "$HERE/nimbus-edge" "$DESTDIR/usr/local/bin/.nimbus-edge.new"
mv -f "$DESTDIR/usr/local/bin/.nimbus-edge.new" "$DESTDIR/usr/local/bin/nimbus-edge"
say "installed /usr/local/bin/nimbus-edge ($TARGET)"

for unit in nimbus-edge.service nimbus-edge-health.service nimbus-edge-health.timer; do
  install -m 0644 "$HERE/systemd/$unit" "$units/$unit"
done
say "installed the systemd units in /etc/systemd/system"
install -m 0644 "$HERE/INSTALL.txt" "$DESTDIR/usr/local/share/doc/nimbus-edge/"
install -m 0644 "$HERE/config/nimbus-edge.toml" "$DESTDIR/usr/local/share/doc/nimbus-edge/nimbus-edge.toml.default"
install -m 0644 "$HERE/config/env.example" "$DESTDIR/usr/local/share/doc/nimbus-edge/env.example"

journald=$DESTDIR/etc/systemd/journald.conf.d/nimbus-edge.conf
journald_changed=no
if ! cmp -s "$HERE/config/journald-nimbus-edge.conf" "$journald" 2>/dev/null; then
  install -m 0644 "$HERE/config/journald-nimbus-edge.conf" "$journald"
  journald_changed=yes
  say "installed journald limits in /etc/systemd/journald.conf.d/nimbus-edge.conf"
fi

fresh=no
if [ ! -e "$etc/nimbus-edge.toml" ]; then
  install -m 0644 "$HERE/config/nimbus-edge.toml" "$etc/nimbus-edge.toml"
  fresh=yes
  say "installed the default config /etc/nimbus-edge/nimbus-edge.toml: set node_id, room_id, mqtt_url"
elif ! cmp -s "$HERE/config/nimbus-edge.toml" "$etc/nimbus-edge.toml"; then
  install -m 0644 "$HERE/config/nimbus-edge.toml" "$etc/nimbus-edge.toml.new"
  say "kept your /etc/nimbus-edge/nimbus-edge.toml; this release's default is nimbus-edge.toml.new"
fi
if [ ! -e "$etc/env" ]; then
  # Root-only: it holds the MQTT password. umask first, so the file is never readable by others.
  (umask 077 && cp "$HERE/config/env.example" "$etc/env")
  chmod 0600 "$etc/env"
  say "created /etc/nimbus-edge/env (mode 0600): put this node's NIMBUS_MQTT_PASSWORD in it"
fi

[ -z "$DESTDIR" ] || { say "staged under $DESTDIR"; exit 0; }

systemctl daemon-reload
if [ "$journald_changed" = yes ]; then systemctl restart systemd-journald || true; fi
if grep -q '^kind *= *"mfrc522"' "$etc/nimbus-edge.toml" && ! ls /dev/spidev* >/dev/null 2>&1; then
  say "WARNING: reader.kind is mfrc522 but there is no /dev/spidev*: enable SPI (sudo raspi-config nonint do_spi 0) and reboot"
fi
for group in spi gpio; do
  getent group "$group" >/dev/null ||
    say "WARNING: no group '$group' on this system; the unit needs it (SupplementaryGroups=): sudo groupadd --system $group"
done
if systemctl --quiet is-active nimbus-edge.service; then
  systemctl restart nimbus-edge.service
  say "restarted nimbus-edge onto $("$DESTDIR/usr/local/bin/nimbus-edge" --version)"
elif [ "$fresh" = yes ] || grep -q '^NIMBUS_MQTT_PASSWORD=change-me' "$etc/env"; then
  say "next: edit /etc/nimbus-edge/nimbus-edge.toml and /etc/nimbus-edge/env, then"
  say "      sudo systemctl enable --now nimbus-edge.service nimbus-edge-health.timer"
else
  say "not running; start it with: sudo systemctl enable --now nimbus-edge.service nimbus-edge-health.timer"
fi
