#!/usr/bin/env bash
# The prepared GPU check: `make gpu-test`, then the three benchmarks at GPU sizes, then one summary table against
# docs/results/gpu_anchors.md (scripts/gpu_summary.py). Budget < 8 min on one H100/H200: each step has a hard
# limit (gpu-test 150 s, sinkhorn 180 s, train_throughput 120 s, hear_overhead 60 s), so a slow step costs its limit
# and the table still prints. Logs: $GPU_CHECK_LOGS, else $OUT/gpu_check (the device machine), else runs/gpu_check.
#   bash scripts/gpu_check.sh                      # PY=python3 bash scripts/gpu_check.sh where .venv is absent
#   SINKHORN_SIZES=40966x1000x10 bash scripts/gpu_check.sh
#   GPU_CHECK_DTYPES=1 bash scripts/gpu_check.sh   # + the solver's float32/float64 table (benchmarks/sinkhorn.py
#                                                  #   --dtypes, log only; adds up to 2 min)
set -uo pipefail
cd "$(dirname "$0")/.."
PY=${PY:-.venv/bin/python}
[[ -x $PY ]] || PY=$(command -v python3)
LOGS=${GPU_CHECK_LOGS:-${OUT:+$OUT/gpu_check}}
LOGS=${LOGS:-runs/gpu_check}
mkdir -p "$LOGS"
export POT_BACKEND_DISABLE_JAX=1 PYTHONPATH=$PWD${PYTHONPATH:+:$PYTHONPATH}

run() {  # run NAME LIMIT_S CMD...: output to LOGS/NAME.log, exit status and seconds beside it
  local name=$1 limit=$2 start=$SECONDS
  shift 2
  echo "== $name (limit ${limit} s): $*" >&2
  timeout --kill-after=10 "$limit" "$@" > "$LOGS/$name.log" 2>&1
  echo $? > "$LOGS/$name.rc"
  echo $(( SECONDS - start )) > "$LOGS/$name.seconds"
  tail -n 3 "$LOGS/$name.log" >&2
}

if [[ -x .venv/bin/python && $PY == .venv/bin/python ]]; then
  run gpu_test 150 make gpu-test
else  # no project venv (the device machine brings its own Python): what `make gpu-test` runs, with $PY
  run gpu_test 150 "$PY" -m pytest -q -m gpu
fi
run sinkhorn 180 "$PY" benchmarks/sinkhorn.py --device cuda \
  --sizes "${SINKHORN_SIZES:-40966x1000x10,40966x3000x10,1000000x1000x10}"
run train_throughput 120 "$PY" benchmarks/train_throughput.py --device cuda --steps 30
run hear_overhead 60 "$PY" benchmarks/hear_overhead.py --device cuda --clips 256 --seconds 4 --long-seconds 600 \
  --repeats 3
if [[ ${GPU_CHECK_DTYPES:-0} == 1 ]]; then  # issue 13's float32-vs-float64 lines at 50k-100k (out of CPU reach)
  run sinkhorn_dtypes 120 "$PY" benchmarks/sinkhorn.py --device cuda --dtypes --line-seconds 15
fi
echo "total ${SECONDS} s; logs in $LOGS" >&2
"$PY" scripts/gpu_summary.py "$LOGS"
