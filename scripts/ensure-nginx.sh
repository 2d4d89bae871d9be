#!/usr/bin/env bash
# The egress end-to-end test (test/node/egress-nginx.test.ts) runs the reference egress config
# (deploy/egress/) on Debian's nginx. Install it with apt when it is missing; runs before `npm test`.
# Only the binary is wanted: the service the package starts on port 80 is stopped again.
set -euo pipefail
[ -x /usr/sbin/nginx ] && exit 0
if [ "$(id -u)" -ne 0 ] && ! command -v sudo >/dev/null; then
  echo "nginx is missing: run 'apt-get install nginx' as root, then npm test again." >&2
  exit 1
fi
as_root=""
[ "$(id -u)" -ne 0 ] && as_root="sudo"
echo "Installing Debian's nginx for the egress test (apt)..."
export DEBIAN_FRONTEND=noninteractive
$as_root apt-get update -qq
$as_root apt-get install -y -qq nginx > /dev/null
# The package starts its default site where it can; the test runs its own instance instead.
$as_root invoke-rc.d nginx stop > /dev/null 2>&1 || $as_root service nginx stop > /dev/null 2>&1 || true
/usr/sbin/nginx -v
