#!/usr/bin/env bash
# One locomotion family end to end: meta-train MAML, pretrained and oracle for the given seeds
# (one sweep of experiment=FAMILY, conf/experiment/FAMILY.yaml), evaluate them and random init
# on the same held-out tasks, write the compact result files under docs/results/FAMILY/ and
# print the tables (python -m maml_hydra.results table) with the plots (adaptation, learning curves)
# beside the files.
# Usage: bash scripts/family_results.sh FAMILY SEEDS [extra train overrides...]
#   e.g. bash scripts/family_results.sh halfcheetah_dir 0,1,2 hydra/launcher=slurm
# Environment: SWEEP_DIR (default outputs/FAMILY/<date>), OUT (default docs/results/FAMILY),
# EVAL (the report's settings; default 40 tasks x 20 episodes at the runs' inner.lr), PYTHON,
# VARIANTS (what is swept besides the seeds; default baseline=maml,pretrained,oracle), e.g. the
# meta-optimizers at one budget (equal env steps: they sample the same batches):
#   VARIANTS=algorithm=trpo,ppo,promp OUT=docs/results/algorithms/navigation \
#     bash scripts/family_results.sh reproduce_nav 0,1,2
set -euo pipefail
main() {
cd "$(dirname "$0")/.."
FAMILY=$1
SEEDS=$2
shift 2
PY=${PYTHON:-.venv/bin/python}
SWEEP_DIR=${SWEEP_DIR:-outputs/$FAMILY/$(date +%Y-%m-%d_%H-%M-%S)}
OUT=${OUT:-docs/results/$FAMILY}
read -r -a EVAL_ARGS <<< "${EVAL:-eval.num_tasks=40 eval.episodes_per_task=20}"
# evaluated at the step size the runs meta-trained with (the experiment's inner.lr, or an
# inner.lr= among the overrides), unless EVAL sets eval.lrs
if [[ " ${EVAL_ARGS[*]} " != *" eval.lrs="* ]]; then
  LR=$($PY -c 'import sys, maml_hydra.config; from hydra import compose, initialize_config_dir as at
with at(config_dir=sys.argv[1], version_base="1.3"):
    print(compose("config", overrides=["experiment=" + sys.argv[2]]).inner.lr)' "$PWD/conf" "$FAMILY")
  for a in "$@"; do case $a in inner.lr=*) LR=${a#inner.lr=} ;; esac; done
  EVAL_ARGS+=("eval.lrs=[$LR]")
fi
# one torch thread per process: runs that share the cores do not oversubscribe them (MuJoCo's
# rollout threads are env.threads; pass env.threads=1 too when jobs run side by side)
export OMP_NUM_THREADS=${OMP_NUM_THREADS:-1}
$PY -m maml_hydra.train -m "experiment=$FAMILY" "${VARIANTS:-baseline=maml,pretrained,oracle}" \
  "seed=$SEEDS" progress=false "hydra.sweep.dir=$SWEEP_DIR" "$@"
$PY -m maml_hydra.evaluate "$SWEEP_DIR" "${EVAL_ARGS[@]}" progress=false >/dev/null
$PY -m maml_hydra.results export "$SWEEP_DIR" --out "$OUT" >/dev/null
$PY -m maml_hydra.results table "$OUT" --plot "$OUT/adaptation.png" --curves "$OUT/curves.png"
}
main "$@"; exit  # on the line that runs main: nothing after it is read
