#!/usr/bin/env bash
# Compare the demo's Table 1 that `bash scripts/study.sh` wrote (runs/demo/results/table1.md, or the
# file given) with the README's block: exit 0 when every row is the same, else print the difference.
set -euo pipefail
cd "$(dirname "$0")/.."
made=${1:-runs/demo/results/table1.md}
[ -f "$made" ] || { echo "error: $made not found: run 'bash scripts/study.sh' first" >&2; exit 2; }
readme_rows=$(sed -n '/<!-- demo-table1 -->/,/<!-- \/demo-table1 -->/p' README.md | grep '^|' || true)
[ -n "$readme_rows" ] || { echo "error: README.md has no <!-- demo-table1 --> block" >&2; exit 2; }
if diff <(echo "$readme_rows") <(grep '^|' "$made"); then
  echo "same: $made equals the README's Table 1"
else
  echo "differs: $made (right) against the README's Table 1 (left)" >&2
  exit 1
fi
