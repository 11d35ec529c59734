#!/usr/bin/env bash
# The MAML paper's 2D-navigation comparison in one command: meta-train MAML, pretrained and
# oracle for 3 seeds at the paper's settings (one sweep), evaluate them and random init on the
# same 40 held-out tasks (0..3 gradient steps, 0.1 then 0.05, 40 episodes per step), print the
# table and where the plot is.
# Usage: bash scripts/compare_nav.sh [ITERATIONS] [extra train overrides...]
set -euo pipefail
cd "$(dirname "$0")/.."
ITERATIONS=${1:-50}
shift || true
PY=${PYTHON:-.venv/bin/python}
SWEEP_DIR=${SWEEP_DIR:-outputs/compare_nav/$(date +%Y-%m-%d_%H-%M-%S)}
start=$(date +%s)
$PY -m maml_hydra.train -m env=navigation algorithm=trpo baseline=maml,pretrained,oracle seed=0,1,2 \
  train.iterations="$ITERATIONS" progress=false hydra.sweep.dir="$SWEEP_DIR" "$@"
trained=$(date +%s)
$PY -m maml_hydra.evaluate "$SWEEP_DIR" eval.num_tasks=40 eval.episodes_per_task=40 eval.num_steps=3 \
  eval.lrs=[0.1,0.05] progress=false
end=$(date +%s)
echo "wall time: $((end - start)) s ($((trained - start)) s training 9 runs, $((end - trained)) s evaluation)"
