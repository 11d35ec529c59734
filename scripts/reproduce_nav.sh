#!/usr/bin/env bash
# Reproduce the MAML paper's 2D navigation result (Table 4): `experiment=reproduce_nav`
# (conf/experiment/reproduce_nav.yaml holds and explains the settings), then 40 held-out tasks
# adapted with 0..3 gradient steps twice: on the run's own held-out goals and on the 40 goals of
# the original evaluation script (numpy seed 1, uniform in the box); then the table of
# `python -m maml_hydra.results seeds` for the run.
# Usage: bash scripts/reproduce_nav.sh [ITERATIONS] [extra overrides...]
set -euo pipefail
# The whole script is one function, called on its last line: bash parses all of it before any
# of it runs, so editing this file cannot change or break a reproduction already running.
main() {
cd "$(dirname "$0")/.."
ITERATIONS=${1:-100}
shift || true
PY=${PYTHON:-.venv/bin/python}
RUN_DIR=${RUN_DIR:-outputs/reproduce_nav/$(date +%Y-%m-%d_%H-%M-%S)}
start=$(date +%s)
$PY -m maml_hydra.train experiment=reproduce_nav train.iterations="$ITERATIONS" \
  hydra.run.dir="$RUN_DIR" "$@"
end=$(date +%s)
# the same adaptation settings (step sizes, steps, episodes) on the original goals
EVAL_ARGS=()
for arg in "$@"; do
  case "$arg" in eval.lrs=* | eval.num_steps=* | eval.episodes_per_task=*) EVAL_ARGS+=("$arg") ;; esac
done
GOALS=$($PY -c "import numpy as np; np.random.seed(1); print(np.random.uniform(-0.5, 0.5, size=(40, 2)).tolist())" | tr -d ' ')
$PY -m maml_hydra.evaluate "$RUN_DIR" "eval.tasks=$GOALS" ${EVAL_ARGS[@]+"${EVAL_ARGS[@]}"} \
  include_random=false progress=false >/dev/null
echo
echo "2D navigation reproduction: $((end - start)) s of wall time for training, in $RUN_DIR"
# the Table 4 columns, beside the paper's numbers (maml_hydra/results/paper.py)
$PY -m maml_hydra.results seeds "$RUN_DIR"
}
main "$@"; exit  # on the line that runs main: nothing after it is read
