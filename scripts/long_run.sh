#!/usr/bin/env bash
# The learning-curve runs: recipes/real_sela.yaml or recipes/real_byola.yaml at 10x their steps, with online
# evaluation (frozen-encoder kNN and logistic-regression probes on the dev tasks, docs/training.md) at step 0,
# every 1000 steps and at the end. SeLa: 80 epochs (the recipe's 8 x 10), 20 label updates spread as the recipe's
# first ones and then every 4-8 epochs; BYOL-A: 40 epochs, the same CPU time (a BYOL-A step costs ~2x a SeLa step
# on the CPU). Checkpoints every 200 steps, the encoder kept at each evaluated step (OUT/steps/); rerunning the
# same command resumes (train.resume=auto).
#   bash scripts/long_run.sh sela|byola CORPUS DEV_TASKS OUT [key=value ...]
#   hear-sela curves OUT --out OUT/curves.png
set -euo pipefail
[ $# -ge 4 ] || { echo "usage: $0 sela|byola CORPUS DEV_TASKS OUT [key=value ...]" >&2; exit 2; }
KIND=$1 CORPUS=$2 DEV=$3 OUT=$4
shift 4
PY=${PY:-$(cd "$(dirname "$0")/.." && pwd)/.venv/bin/python}
case $KIND in
  sela) ARGS=(real_sela train.epochs=80
              "sela.update_epochs=[0,1,2,3,4,6,8,11,14,18,22,27,32,38,44,50,57,64,72,80]") ;;
  byola) ARGS=(real_byola train.epochs=40) ;;
  *) echo "$0: sela or byola, not $KIND" >&2; exit 2 ;;
esac
exec "$PY" -m hear_sela.cli train "${ARGS[@]}" data.root="$CORPUS" train.out_dir="$OUT" train.resume=auto \
  train.ckpt_every_steps=200 online_eval.tasks_dir="$DEV" online_eval.every_steps=1000 online_eval.keep_exports=true "$@"
