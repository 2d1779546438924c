#!/usr/bin/env bash
# Serves a directory with nginx in the foreground, for the content benchmark's comparison
# (edge-node/benches/content.rs). Usage: scripts/bench-nginx.sh <root-dir> <port> <work-dir>
#
# Installs Debian's `nginx` if it is missing (needs root / apt). The generated config keeps
# everything under <work-dir> (pid, logs, temp paths), runs as the current user without a daemon,
# with sendfile and no access log: nginx as a static file server is usually deployed.
set -euo pipefail

root=${1:?root dir}
port=${2:?port}
work=${3:?work dir}

if ! command -v nginx >/dev/null 2>&1 && [ ! -x /usr/sbin/nginx ]; then
    echo "bench-nginx: installing nginx (Debian package)" >&2
    DEBIAN_FRONTEND=noninteractive apt-get install -y nginx >&2
fi
nginx_bin=$(command -v nginx || echo /usr/sbin/nginx)

mkdir -p "$work"
user_line=""
if [ "$(id -u)" = 0 ]; then user_line="user root;"; fi
cat >"$work/nginx.conf" <<CONF
$user_line
daemon off;
master_process on;
worker_processes auto;
pid $work/nginx.pid;
error_log $work/error.log warn;
events { worker_connections 4096; }
http {
    access_log off;
    sendfile on;
    tcp_nopush on;
    keepalive_requests 100000;
    default_type application/octet-stream;
    client_body_temp_path $work/body;
    proxy_temp_path $work/proxy;
    fastcgi_temp_path $work/fastcgi;
    uwsgi_temp_path $work/uwsgi;
    scgi_temp_path $work/scgi;
    server {
        listen 127.0.0.1:$port;
        root $root;
        location / { }
    }
}
CONF
exec "$nginx_bin" -p "$work" -c "$work/nginx.conf" -e "$work/error.log"
