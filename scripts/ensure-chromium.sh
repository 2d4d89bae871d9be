#!/usr/bin/env bash
# Browser tests drive Debian's Chromium through playwright-core (no browser download is possible
# or wanted). Install it with apt when it is missing; runs before `npm test`.
set -euo pipefail
[ -x /usr/bin/chromium ] && exit 0
if [ "$(id -u)" -ne 0 ] && ! command -v sudo >/dev/null; then
  echo "Chromium is missing: run 'apt-get install chromium' as root, then npm test again." >&2
  exit 1
fi
as_root=""
[ "$(id -u)" -ne 0 ] && as_root="sudo"
echo "Installing Debian's chromium for the browser tests (apt)..."
export DEBIAN_FRONTEND=noninteractive
$as_root apt-get update -qq
$as_root apt-get install -y -qq chromium > /dev/null
/usr/bin/chromium --version
