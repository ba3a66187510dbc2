#!/usr/bin/env bash
# Rebuilds the embedded default weights, hear_sela/assets/default.safetensors: SeLa with recipes/real_sela.yaml on
# the real-audio corpus that scripts/make_real_corpus.sh builds from DFSG-free Debian packages (built first when
# CORPUS has no labels.csv), then an encoder-only float16 export that carries the frontend config and the corpus's
# normalisation statistics. Extra arguments are recipe overrides (key=value). An interrupted run resumes.
#   bash scripts/make_default_weights.sh                      (about 35 CPU-minutes of training on 2 cores)
# Environment: CORPUS (default data/real_corpus), OUT (default runs/default_weights), PY.
set -euo pipefail
cd "$(dirname "$0")/.."
PY=${PY:-.venv/bin/python}
CORPUS=${CORPUS:-data/real_corpus}
OUT=${OUT:-runs/default_weights}
[ -f "$CORPUS/labels.csv" ] || PY="$PY" bash scripts/make_real_corpus.sh "$CORPUS"
"$PY" -m hear_sela.cli train real_sela data.root="$CORPUS" train.out_dir="$OUT" train.resume=auto "$@"
"$PY" -m hear_sela.cli export "$OUT/final.pt" hear_sela/assets/default.safetensors --half
ls -l hear_sela/assets/default.safetensors
