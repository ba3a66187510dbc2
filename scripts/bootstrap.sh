#!/usr/bin/env bash
# Creates .venv with hear_sela and every extra (hear, s3prl, dev), using uv.
# Why uv: heareval 2021.1.3 declares pins that cannot install on Python >= 3.10 (numpy==1.19.2), and only uv can
# override a dependency's pins from the project's own files (requirements/overrides.txt). uv is itself installed
# with pip if it is not on PATH. Re-running is cheap: nothing happens unless pyproject.toml or requirements/ changed.
set -euo pipefail
cd "$(dirname "$0")/.."
PY=${PYTHON:-python3}
VENV=${HEAR_SELA_VENV:-.venv}
stamp="$VENV/.hear_sela_stamp"
want=$(cat pyproject.toml requirements/*.txt | sha256sum | cut -c1-16)
if [[ -f "$stamp" && "$(cat "$stamp")" == "$want" ]]; then exit 0; fi

# Runs a command with its output held back, shown only when it fails: on success pip's per-package "Location ...
# is ignored" lines (a find-links folder that does not exist here) and its running-as-root warning are noise.
quietly() {
  local log rc=0
  log=$(mktemp)
  "$@" >"$log" 2>&1 || rc=$?
  if (( rc != 0 )); then
    echo "bootstrap: failed ($rc): $*" >&2
    cat "$log" >&2
  fi
  rm -f "$log"
  return "$rc"
}

if command -v uv >/dev/null 2>&1; then UV=uv; else
  if [[ ! -x .tools/bin/uv ]]; then
    echo "bootstrap: installing uv into .tools/ with pip" >&2
    PIP_ROOT_USER_ACTION=ignore quietly "$PY" -m pip install -q --disable-pip-version-check --target .tools \
      'uv>=0.5,<1'
  fi
  UV=.tools/bin/uv
fi
# Local wheel folders (this workplace keeps CUDA torch builds on disk); elsewhere uv takes them from PyPI.
links=()
for d in ${PIP_FIND_LINKS:-} /opt/wheels /opt/pypi-more/files ${HEAR_SELA_FIND_LINKS:-}; do
  [[ -d "$d" ]] && links+=(--find-links "$d")
done
start=$(date +%s)
echo "bootstrap: installing hear_sela and its extras into $VENV with uv (minutes the first time)" >&2
[[ -x "$VENV/bin/python" ]] || quietly "$UV" venv -q -p "$PY" "$VENV"
quietly "$UV" pip install -q -p "$VENV/bin/python" --compile-bytecode "${links[@]}" \
  -c requirements/constraints.txt --override requirements/overrides.txt -e '.[hear,s3prl,analysis,separation,dev]'
echo "$want" > "$stamp"
echo "bootstrap: environment ready in $(( $(date +%s) - start )) s, $(du -sh "$VENV" | cut -f1) in $VENV" >&2
