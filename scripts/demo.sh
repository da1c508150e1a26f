#!/usr/bin/env bash
# Set up, build, and run meshlane's main job on a local sandbox node.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh
exec npx tsx scripts/demo.ts "$@"
