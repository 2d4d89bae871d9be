#!/usr/bin/env bash
# Install a Debian package with apt when the program a test needs is missing (as root, or with
# sudo). Usage: apt-install-missing.sh PROGRAM PACKAGE "what needs it". Exits 0 when PROGRAM is
# there already; prints "installed" on stdout when it installed PACKAGE.
set -euo pipefail
program=$1 package=$2 why=$3
[ -x "$program" ] && exit 0
if [ "$(id -u)" -ne 0 ] && ! command -v sudo >/dev/null; then
  echo "$package is missing: run 'apt-get install $package' as root, then npm test again." >&2
  exit 1
fi
as_root=""
[ "$(id -u)" -ne 0 ] && as_root="sudo"
echo "Installing Debian's $package for $why (apt)..." >&2
export DEBIAN_FRONTEND=noninteractive
$as_root apt-get update -qq
$as_root apt-get install -y -qq "$package" > /dev/null
echo installed
