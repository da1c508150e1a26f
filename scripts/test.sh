#!/usr/bin/env bash
# Set up, build and run every test (unit, executable, kernel, end-to-end) as root.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh
exec npx tap "$@"
