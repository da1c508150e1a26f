#!/usr/bin/env bash
# A clone must build and test from its own tree: nothing it runs may read a
# folder beside the repo (such as the workplace's shared folder, where the
# upstream fixtures came from; the tests read their copies in testing/fixtures). Prints each offending
# line and exits 1; exits 0 when the tree is self-contained.
set -euo pipefail
cd "$(dirname "$0")/.."
# The patterns: a path that climbs out of the repo into that folder, or a path
# joined from its bare name as one component (resolve(root, '..', NAME, ...)).
# Built from parts, so that this file holds neither pattern itself.
name="sha""red"
hits=$(git grep -n -I -E -e "\\.\\./${name}" -e "['\"]${name}['\"]" -- \
  src test scripts testing bpf install .ci package.json tsconfig.json \
  ':!scripts/check-self-contained.sh' ':!testing/fixtures/README.md' || true)
if [ -n "$hits" ]; then
  echo "check-self-contained: these lines reach outside the repo; copy what they read into the repo (testing/fixtures holds the upstream fixtures):" >&2
  echo "$hits" >&2
  exit 1
fi
echo "check-self-contained: the tree reads nothing outside itself" >&2
