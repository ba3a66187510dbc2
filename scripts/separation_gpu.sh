#!/usr/bin/env bash
# The seed-003 separation table at the paper's scale (recipes/separation/paper.yaml) on a CUDA machine, one command:
#   bash scripts/separation_gpu.sh [key=value ...]      # e.g. seeds=[0] student.updates=20000
# Needs espeak-ng (apt-get install -y espeak-ng) and the project installed (.venv, or PY=python3). Writes
# runs/separation_paper/{table.md,results.json}; a rerun reuses the teacher cache and finished students.
set -euo pipefail
cd "$(dirname "$0")/.."
PY=${PY:-.venv/bin/python}
[[ -x $PY ]] || PY=$(command -v python3)
command -v espeak-ng > /dev/null || { echo "espeak-ng not found: apt-get install -y espeak-ng" >&2; exit 1; }
"$PY" -c "import torch, sys; sys.exit(0 if torch.cuda.is_available() else 'no CUDA device: this recipe is for a GPU')"
export PYTHONPATH=$PWD${PYTHONPATH:+:$PYTHONPATH}
exec "$PY" -m hear_sela.cli separation-table recipes/separation/paper.yaml student.device=cuda "$@"
