#!/usr/bin/env bash
# Rebuilds the embedded default weights, hear_sela/assets/default.safetensors: SeLa trained with
# recipes/default_weights.yaml on the embedded synth corpus (written on the fly; no download, no public data), then
# an encoder-only float16 export that carries the frontend config and its normalisation statistics.
# Extra arguments are recipe overrides (key=value). An interrupted run resumes from its last checkpoint.
#   bash scripts/make_default_weights.sh
set -euo pipefail
cd "$(dirname "$0")/.."
PY=${PY:-.venv/bin/python}
OUT=${OUT:-runs/default_weights}
"$PY" -m hear_sela.cli train recipes/default_weights.yaml train.out_dir="$OUT" train.resume=auto "$@"
"$PY" -m hear_sela.cli export "$OUT/final.pt" hear_sela/assets/default.safetensors --half
ls -l hear_sela/assets/default.safetensors
