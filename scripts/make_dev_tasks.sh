#!/usr/bin/env bash
# Rebuild the real-audio dev tasks (HEAR scene tasks and two event tasks, heareval --tasks-dir OUT) from their public
# sources.
#   scripts/make_dev_tasks.sh OUT [TASK ...]      (default: all tasks; OUT/READY lists the finished ones)
# Sources (pinned commits) come from $MIRROR/<owner>+<name>/repo bare git dirs when MIRROR is set and they exist,
# else are cloned from GitHub into OUT/sources. Never commit the audio. Keep these sources out of any pretraining corpus.
set -euo pipefail
OUT=${1:?usage: make_dev_tasks.sh OUT [TASK ...]}
shift
TASKS=("$@")
[ ${#TASKS[@]} -eq 0 ] && TASKS=(keywords speakers sound_sources pitch instrument events drums)
HERE=$(cd "$(dirname "$0")" && pwd)
PY=${PYTHON:-python}
HEAR_SELA=${HEAR_SELA:-hear-sela}
MIRROR=${MIRROR:-}  # optional: a folder of bare git mirrors, <owner>+<name>/repo
mkdir -p "$OUT/sources" "$OUT/labels"

# repo commit (pinned: the versions the numbers in docs/results/ were measured on)
declare -A COMMIT=(
  [vinsis/speech-commands-recognition]=53317d51bc2c75de6118ede48b0da06a412a1341
  [tmrsgv/interactive-sound-keyboard]=6417ff3b3da1a44182751bcc87c2d7550c8468b3
  [skratchdot/philharmonia-samples]=717b7de2bcae05e44aa8a3dde143c8d093b8f6c8
  # drum-machine one-shots, public domain per its README (the second event task)
  [smpldsnds/drum-machines]=a894cb8c72abe15b05e7b4fd4b8ee561c0f9e960
)

# only these paths of a repo are extracted (default: all); drum-machines holds each sound as .ogg, .m4a and
# sometimes .mp3 beside each other, and two files of one name but another extension would be one clip id
declare -A INCLUDE=([smpldsnds/drum-machines]='*.ogg')

source_dir() {  # owner/name -> extracted tree at the pinned commit
  local repo=$1 dest="$OUT/sources/${1/\//+}" include=${INCLUDE[$1]:-*}
  if [ ! -f "$dest/.extracted" ]; then
    rm -rf "$dest" && mkdir -p "$dest"
    local git_dir="${MIRROR:+$MIRROR/${repo/\//+}/repo}"
    if [ -z "$git_dir" ] || [ ! -d "$git_dir" ]; then
      git clone --quiet --bare "https://github.com/$repo" "$dest.git"
      git_dir="$dest.git"
    fi
    # blob by blob, only those present: a snapshot may lack its largest files (dev_task_labels.py leaves those out)
    git -c core.quotePath=false --git-dir="$git_dir" ls-tree -r "${COMMIT[$repo]}" \
      | while IFS=$'\t' read -r meta path; do
          read -r _ kind sha <<< "$meta"
          [ "$kind" = blob ] && git --git-dir="$git_dir" cat-file -e "$sha" 2>/dev/null || continue
          # shellcheck disable=SC2053  # a glob on purpose
          [[ $path == $include ]] || continue
          mkdir -p "$dest/$(dirname "$path")"
          git --git-dir="$git_dir" cat-file blob "$sha" > "$dest/$path"
        done
    touch "$dest/.extracted"
  fi
  echo "$dest"
}

build() {  # task repo subdir hear-sela-tasks-args...
  local task=$1 repo=$2 sub=$3
  shift 3
  local src
  src="$(source_dir "$repo")/$sub"
  "$PY" "$HERE/dev_task_labels.py" "$task" "$src" "$OUT/labels/$task.csv"
  rm -rf "${OUT:?}/$task"
  "$HEAR_SELA" tasks "$src" --labels "$OUT/labels/$task.csv" --out "$OUT" --name "$task" "$@"
  touch "$OUT/READY" && grep -qx "$task" "$OUT/READY" || echo "$task" >> "$OUT/READY"
}

for task in "${TASKS[@]}"; do
  case $task in
    keywords) build keywords vinsis/speech-commands-recognition speech_commands_v0.01 \
                --group-by speaker --folds 5 --clip-seconds 1.0 ;;
    speakers) build speakers vinsis/speech-commands-recognition speech_commands_v0.01 \
                --group-by word --folds 5 --clip-seconds 1.0 ;;
    sound_sources) build sound_sources tmrsgv/interactive-sound-keyboard . \
                --group-by source --cut --clip-seconds 2.0 --max-clips-per-file 12 --folds 5 ;;
    pitch) build pitch skratchdot/philharmonia-samples audio --group-by instrument --folds 5 --clip-seconds 2.0 ;;
    instrument) build instrument skratchdot/philharmonia-samples audio --group-by note --folds 5 --clip-seconds 2.0 ;;
    events) build events skratchdot/philharmonia-samples audio --events --group-by source --clips 240 \
                --clip-seconds 4.0 --split tvt ;;
    drums) build drums smpldsnds/drum-machines . --events --group-by kit_sound --clips 240 --clip-seconds 4.0 \
                --split tvt --max-events 8 ;;
    *) echo "unknown task $task" >&2; exit 2 ;;
  esac
done
