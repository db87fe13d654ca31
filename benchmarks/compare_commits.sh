#!/usr/bin/env bash
# Compare benchmarks/losses.py, train_step.py and evaluate.py between a base commit and HEAD, in one run.
#
#   bash benchmarks/compare_commits.sh BASE [--rounds N] [--dry-run]
#
# BASE and HEAD are checked out as git worktrees in a temporary folder under /tmp (removed at the
# end); each benchmark runs from its own worktree's pcatools (PYTHONPATH, ahead of the editable
# install), for BASE and HEAD alternately, N rounds (default 3; the order flips every round), so
# that load from other processes and drift of the machine fall on both alike. Printed: for every
# measured quantity the median over the rounds for BASE and HEAD and the ratio HEAD / BASE
# (above 1: HEAD is slower or needs more memory). Run it on an idle machine.
#
# The benchmarks' own arguments come from LOSSES_ARGS, TRAIN_STEP_ARGS and EVALUATE_ARGS (defaults
# below); PYTHON is the interpreter (default: the repository's .venv). --dry-run makes the
# worktrees, prints the commands it would run and stops.
set -euo pipefail

usage="usage: bash benchmarks/compare_commits.sh BASE [--rounds N] [--dry-run]"
[[ $# -ge 1 && $1 != -* ]] || { echo "error: $usage" >&2; exit 2; }
BASE=$1
shift
ROUNDS=3
DRY=0
while [[ $# -gt 0 ]]; do
    case $1 in
        --rounds) ROUNDS=${2:?--rounds needs a number}; shift 2 ;;
        --dry-run) DRY=1; shift ;;
        *) echo "error: unknown option $1; $usage" >&2; exit 2 ;;
    esac
done
[[ $ROUNDS =~ ^[1-9][0-9]*$ ]] || { echo "error: --rounds: expected a positive integer, found '$ROUNDS'" >&2; exit 2; }

REPO=$(git rev-parse --show-toplevel)
PY=${PYTHON:-$REPO/.venv/bin/python}
LOSSES_ARGS=${LOSSES_ARGS:---repeats 5}
TRAIN_STEP_ARGS=${TRAIN_STEP_ARGS:---sizes 64 --no-pipeline}
EVALUATE_ARGS=${EVALUATE_ARGS:---cases 40 --official-cases 10}

base_sha=$(git -C "$REPO" rev-parse --verify --quiet "$BASE^{commit}") \
    || { echo "error: BASE '$BASE' is not a commit of $REPO" >&2; exit 2; }
head_sha=$(git -C "$REPO" rev-parse HEAD)
WORK=$(mktemp -d /tmp/pcatools-compare.XXXXXX)
cleanup() {
    for side in base head; do
        git -C "$REPO" worktree remove --force "$WORK/$side" >/dev/null 2>&1 || true
    done
    rm -rf "$WORK"
}
trap cleanup EXIT
git -C "$REPO" worktree add --detach --quiet "$WORK/base" "$base_sha"
git -C "$REPO" worktree add --detach --quiet "$WORK/head" "$head_sha"
mkdir -p "$WORK/out"
echo "BASE ${base_sha:0:10} ($BASE) against HEAD ${head_sha:0:10}; $ROUNDS rounds; outputs in $WORK/out"

# one benchmark of one side: its output in out/<bench>.<side>.<round>.txt (train_step also .json)
run_one() {
    local bench=$1 side=$2 round=$3 args
    local out="$WORK/out/$bench.$side.$round"
    case $bench in
        losses) args=$LOSSES_ARGS ;;
        train_step) args="$TRAIN_STEP_ARGS --json $out.json" ;;
        evaluate) args=$EVALUATE_ARGS ;;
    esac
    local cmd="cd $WORK/$side && PYTHONPATH=$WORK/$side $PY benchmarks/$bench.py $args"
    if [[ $DRY == 1 ]]; then
        echo "  $cmd"
        return
    fi
    echo "round $round: $bench, $side" >&2
    # shellcheck disable=SC2086  # the arguments are words
    (cd "$WORK/$side" && PYTHONPATH="$WORK/$side" "$PY" "benchmarks/$bench.py" $args) >"$out.txt" 2>"$out.err" \
        || { echo "error: benchmarks/$bench.py failed on $side (see $out.err):" >&2; tail -5 "$out.err" >&2; exit 1; }
}

for round in $(seq 1 "$ROUNDS"); do
    if ((round % 2)); then order="base head"; else order="head base"; fi
    for bench in losses train_step evaluate; do
        for side in $order; do
            run_one "$bench" "$side" "$round"
        done
    done
done
[[ $DRY == 1 ]] && { echo "dry run: nothing measured"; exit 0; }

"$PY" - "$WORK/out" "$ROUNDS" <<'EOF'
"""Read every round's output, print the medians for BASE and HEAD and their ratio."""
import json
import re
import statistics
import sys
from pathlib import Path

out, rounds = Path(sys.argv[1]), int(sys.argv[2])


def losses(text):
    """Time [s] and peak [MiB] of each loss row of benchmarks/losses.py's table."""
    found = {}
    for line in text.splitlines():
        parts = line.split()
        if len(parts) == 7 and re.fullmatch(r"[a-z][a-z0-9-]*", parts[0]):
            try:
                found[f"losses {parts[0]} time s"] = float(parts[1])
                found[f"losses {parts[0]} peak MiB"] = float(parts[4])
            except ValueError:
                continue
    return found


def train_step(path):
    """Seconds per step, data wait and compute per step, whole-body inference seconds (the JSON rows)."""
    data, found = json.loads(path.read_text()), {}
    for r in data.get("steps", []):
        found[f"step {r['network']}/{r['loss']} {r['size']}^3 b{r['batch']} s/step"] = r["s_per_step"]
    for r in data.get("pipeline", []):
        found[f"pipeline {r['network']} wait s/step"] = r["wait_s_per_step"]
        found[f"pipeline {r['network']} compute s/step"] = r["compute_s_per_step"]
    for r in data.get("inference", []):
        found[f"inference {r['network']} s"] = r["seconds"]
    return found


def evaluate(text):
    """The whole evaluation's wall time and the per-pair times of benchmarks/evaluate.py."""
    patterns = {
        "evaluate wall s": r"pcatools evaluate: \d+ \(case, model\) pairs, ([\d.]+) s wall",
        "evaluate per pair ms": r"per pair: pcatools (\d+) ms",
        "evaluate metrics alone ms/pair": r"metrics alone, one process: pcatools (\d+) ms",
    }
    return {k: float(m.group(1)) for k, p in patterns.items() if (m := re.search(p, text))}


values = {}  # (quantity, side) -> [value per round]
for side in ("base", "head"):
    for r in range(1, rounds + 1):
        rows = {
            **losses((out / f"losses.{side}.{r}.txt").read_text()),
            **train_step(out / f"train_step.{side}.{r}.json"),
            **evaluate((out / f"evaluate.{side}.{r}.txt").read_text()),
        }
        for key, value in rows.items():
            values.setdefault((key, side), []).append(float(value))

keys = sorted({k for k, _ in values}, key=lambda k: (k.split()[0], k))
width = max(len(k) for k in keys)
print(f"{'quantity':<{width}}  {'BASE':>10}  {'HEAD':>10}  {'HEAD/BASE':>9}")
for key in keys:
    base, head = values.get((key, "base")), values.get((key, "head"))
    if not base or not head:
        print(f"{key:<{width}}  measured on one side only")
        continue
    b, h = statistics.median(base), statistics.median(head)
    ratio = h / b if b else float("nan")
    print(f"{key:<{width}}  {b:>10.4g}  {h:>10.4g}  {ratio:>9.3f}")
EOF
