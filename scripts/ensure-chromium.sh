#!/usr/bin/env bash
# Browser tests drive Debian's Chromium through playwright-core (no browser download is possible
# or wanted). Install it with apt when it is missing; runs before `npm test`.
set -euo pipefail
if [ "$(bash "$(dirname "$0")/apt-install-missing.sh" /usr/bin/chromium chromium "the browser tests")" = installed ]; then
  /usr/bin/chromium --version
fi
