#!/usr/bin/env bash
# The egress end-to-end test (test/node/egress-nginx.test.ts) runs the reference egress config
# (deploy/egress/) on Debian's nginx. Install it with apt when it is missing; runs before `npm test`.
# Only the program is wanted: a service the package started on port 80 is stopped again.
set -euo pipefail
if [ "$(bash "$(dirname "$0")/apt-install-missing.sh" /usr/sbin/nginx nginx "the egress test")" = installed ]; then
  as_root=""
  [ "$(id -u)" -ne 0 ] && as_root="sudo"
  $as_root invoke-rc.d nginx stop > /dev/null 2>&1 || $as_root service nginx stop > /dev/null 2>&1 || true
  /usr/sbin/nginx -v
fi
