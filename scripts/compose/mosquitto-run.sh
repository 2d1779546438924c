#!/bin/sh
# Entrypoint of the campus broker (eclipse-mosquitto 2; also the Kubernetes broker pod, and the
# integration test `broker_accounts` runs it with a real mosquitto).
#
# Mosquitto reads one password file. Two writers feed it: the one-shot `mosquitto-passwd` writes
# the cloud's own account (CLOUD_FILE), and `nimbus-cloud broker-accounts` writes every
# registered node's account from the registry (NODES_FILE). This script joins both into
# PASSWORD_FILE, starts mosquitto, and every INTERVAL seconds rebuilds the file; when it changed,
# it sends mosquitto SIGHUP, which re-reads password and ACL files without dropping connections.
# So registering a node through the API is enough for it to connect (within seconds).
#
# Runs as root in the container (to read the writers' files and hand the result to the mosquitto
# user); mosquitto itself drops to that user. SIGTERM stops mosquitto and then this script.
set -eu

CLOUD_FILE=${BROKER_CLOUD_FILE:-/mosquitto/auth/cloud.passwd}
NODES_FILE=${BROKER_NODES_FILE:-/mosquitto/accounts/nodes.passwd}
PASSWORD_FILE=${BROKER_PASSWORD_FILE:-/mosquitto/auth/passwd}
CONFIG=${BROKER_CONFIG:-/mosquitto/config/mosquitto.conf}
INTERVAL=${BROKER_RELOAD_INTERVAL:-2}
# Owner of the joined file; empty leaves it to the user running this script.
OWNER=${BROKER_FILE_OWNER-mosquitto:mosquitto}

# Writes the joined accounts to PASSWORD_FILE; status 0 when that changed the file.
build() {
  tmp="$PASSWORD_FILE.new"
  rm -f "$tmp"
  (
    umask 077
    cat "$CLOUD_FILE"
    if [ -f "$NODES_FILE" ]; then cat "$NODES_FILE"; fi
  ) > "$tmp"
  if [ -f "$PASSWORD_FILE" ] && cmp -s "$tmp" "$PASSWORD_FILE"; then
    rm -f "$tmp"
    return 1
  fi
  if [ -n "$OWNER" ]; then chown "$OWNER" "$tmp"; fi
  mv -f "$tmp" "$PASSWORD_FILE"
  return 0
}

[ -s "$CLOUD_FILE" ] || { echo "mosquitto-run: $CLOUD_FILE (the cloud's account) is missing" >&2; exit 1; }
build || true
mosquitto -c "$CONFIG" &
pid=$!
trap 'kill -TERM "$pid" 2>/dev/null || true' TERM INT

while kill -0 "$pid" 2>/dev/null; do
  # In the background, so a SIGTERM is handled at once rather than after the sleep.
  sleep "$INTERVAL" &
  wait $! || true
  if kill -0 "$pid" 2>/dev/null && build; then
    kill -HUP "$pid"
    echo "mosquitto-run: accounts changed ($(grep -c . "$PASSWORD_FILE") in the file); broker reloaded"
  fi
done
status=0
wait "$pid" || status=$?
exit "$status"
