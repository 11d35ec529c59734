#!/usr/bin/env bash
# The short MuJoCo Ant run of docs/RESULTS.md (about 40 minutes on 2 cores): MAML-TRPO on Ant
# target velocity, a quarter of the paper's batch (20 tasks x 10 episodes x 200 steps), GAE
# lambda 0.9, inner lr 0.5, CG's Fisher-vector products on 4 of the 20 tasks; held-out
# evaluation on 20 tasks x 20 episodes every 50 iterations and at the end. Then the numbers of
# its TensorBoard curves (scripts/run_summary.py).
# Usage: bash scripts/ant_short.sh [ITERATIONS] [extra overrides...]
set -euo pipefail
cd "$(dirname "$0")/.."
ITERATIONS=${1:-200}
shift || true
PY=${PYTHON:-.venv/bin/python}
RUN_DIR=${RUN_DIR:-outputs/ant_short/$(date +%Y-%m-%d_%H-%M-%S)}
start=$(date +%s)
$PY -m maml_hydra.train env=ant seed=1 train.iterations="$ITERATIONS" \
  train.meta_batch_size=20 train.episodes_per_task=10 train.gae_lambda=0.9 inner.lr=0.5 \
  algorithm.fvp_task_fraction=0.2 train.eval_every=50 \
  eval.num_tasks=20 eval.episodes_per_task=20 eval.num_steps=1 'eval.lrs=[0.5]' \
  progress=false hydra.run.dir="$RUN_DIR" "$@"
end=$(date +%s)
echo "wall time: $((end - start)) s"
$PY scripts/run_summary.py "$RUN_DIR"
