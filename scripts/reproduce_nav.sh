#!/usr/bin/env bash
# Reproduce the MAML paper's 2D navigation result (Table 4) at the paper's settings:
# 20 tasks x 20 episodes x horizon 100, inner lr 0.1, one inner step, TRPO max_kl 0.01, 2x100 ReLU;
# then 40 held-out tasks adapted with 0..3 gradient steps (0.1 then 0.05, 40 episodes per step).
# Usage: bash scripts/reproduce_nav.sh [ITERATIONS] [extra overrides...]
set -euo pipefail
cd "$(dirname "$0")/.."
ITERATIONS=${1:-200}
shift || true
PY=${PYTHON:-.venv/bin/python}
RUN_DIR=${RUN_DIR:-outputs/reproduce_nav/$(date +%Y-%m-%d_%H-%M-%S)}
start=$(date +%s)
$PY -m maml_hydra.train env=navigation algorithm=trpo inner=vpg \
  train.iterations="$ITERATIONS" train.meta_batch_size=20 train.episodes_per_task=20 env.horizon=100 \
  inner.lr=0.1 inner.num_steps=1 algorithm.max_kl=0.01 policy.hidden_sizes=[100,100] policy.activation=relu \
  eval.num_tasks=40 eval.episodes_per_task=40 eval.num_steps=3 eval.lrs=[0.1,0.05] \
  hydra.run.dir="$RUN_DIR" "$@"
end=$(date +%s)
$PY - "$RUN_DIR" "$((end - start))" <<'PY'
import json, sys
run_dir, seconds = sys.argv[1], int(sys.argv[2])
r = json.load(open(f"{run_dir}/eval_results.json"))
paper = [-40.41, -11.68, -3.33, -3.23]
print(f"\n2D navigation, {r['iteration']} meta-iterations, {r['env_steps']} env steps, {seconds} s wall")
print("| gradient steps | maml-hydra (mean ± s.e., 40 tasks) | MAML paper, Table 4 |")
print("|---|---|---|")
for k, (m, s) in enumerate(zip(r["return_mean"], r["return_stderr"])):
    print(f"| {k} | {m:.2f} ± {s:.2f} | {paper[k] if k < len(paper) else '-'} |")
print(f"\nrun directory: {run_dir}")
PY
