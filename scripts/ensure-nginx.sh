#!/usr/bin/env bash
# The egress end-to-end test (test/node/egress-nginx.test.ts) runs the reference egress config
# (deploy/egress/) on nginx: NGINX_PATH, else Debian's. Install Debian's with apt when it is
# missing (as root, or with sudo); runs before `npm test`, and fails it if nginx cannot be had.
# Only the program is wanted: a service the package started on port 80 is stopped again.
set -euo pipefail
nginx="${NGINX_PATH:-/usr/sbin/nginx}"
[ -x "$nginx" ] && exit 0
if [ -n "${NGINX_PATH:-}" ]; then
  echo "NGINX_PATH=$NGINX_PATH is not an executable nginx." >&2
  exit 1
fi
as_root=""
if [ "$(id -u)" -ne 0 ]; then
  if ! command -v sudo > /dev/null; then
    echo "nginx is missing: run 'apt-get install nginx' as root (or set NGINX_PATH), then npm test again." >&2
    exit 1
  fi
  as_root="sudo"
fi
echo "Installing Debian's nginx for the egress test (apt)..." >&2
export DEBIAN_FRONTEND=noninteractive
$as_root apt-get update -qq
$as_root apt-get install -y -qq nginx > /dev/null
$as_root invoke-rc.d nginx stop > /dev/null 2>&1 || $as_root service nginx stop > /dev/null 2>&1 || true
"$nginx" -v
