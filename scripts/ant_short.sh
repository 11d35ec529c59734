#!/usr/bin/env bash
# The short MuJoCo Ant run of docs/RESULTS.md (about 40 minutes on 2 cores):
# `experiment=ant_short` (conf/experiment/ant_short.yaml holds and explains the settings), then
# the numbers of its TensorBoard curves (python -m maml_hydra.results summary).
# Usage: bash scripts/ant_short.sh [ITERATIONS] [extra overrides...]
set -euo pipefail
cd "$(dirname "$0")/.."
ITERATIONS=${1:-200}
shift || true
PY=${PYTHON:-.venv/bin/python}
RUN_DIR=${RUN_DIR:-outputs/ant_short/$(date +%Y-%m-%d_%H-%M-%S)}
start=$(date +%s)
$PY -m maml_hydra.train experiment=ant_short train.iterations="$ITERATIONS" \
  hydra.run.dir="$RUN_DIR" "$@"
end=$(date +%s)
echo "wall time: $((end - start)) s"
$PY -m maml_hydra.results summary "$RUN_DIR"
