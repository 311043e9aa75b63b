#!/usr/bin/env bash
# Runs every test file with Node's own runner (node 20 has no glob for --test, so list them).
set -euo pipefail
cd "$(dirname "$0")/.."
mapfile -t files < <(find test -name '*.test.ts' | sort)
exec node --import tsx --test --test-concurrency=2 "${files[@]}"
