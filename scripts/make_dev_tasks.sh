#!/usr/bin/env bash
# Rebuild the real-audio dev tasks (HEAR scene tasks and two event tasks, heareval --tasks-dir OUT) from their public
# sources.
#   scripts/make_dev_tasks.sh OUT [TASK ...]      (default: all tasks; OUT/READY lists the finished ones)
#   SUITE=v1 (the default): the first suite, 6 tasks, which the docs' numbers so far were measured on (its keywords
#   and speakers keep the clips of Speech Commands v0.02 test speakers); SUITE=v2: the dev suite v2, 11 tasks
#   (docs/results/real_sound.md, "Dev suite v2"), whose keywords and speakers leave those speakers out
# Sources (pinned commits) come from $MIRROR/<owner>+<name>/repo bare git dirs when MIRROR is set and they exist,
# else are cloned from GitHub into OUT/sources. Never commit the audio. Keep these sources out of any pretraining corpus.
set -euo pipefail
OUT=${1:?usage: make_dev_tasks.sh OUT [TASK ...]}
shift
TASKS=("$@")
SUITE=${SUITE:-v1}
case $SUITE in
  v1) LABEL_FLAGS=(--keep-v002-test); ALL=(keywords speakers sound_sources pitch instrument events drums) ;;
  v2) LABEL_FLAGS=(); ALL=(keywords speakers emotion actors sound_sources game_sfx pitch instrument dynamics
          articulation events drums) ;;
  *) echo "SUITE must be v1 or v2, not $SUITE" >&2; exit 2 ;;
esac
[ ${#TASKS[@]} -eq 0 ] && TASKS=("${ALL[@]}")
HERE=$(cd "$(dirname "$0")" && pwd)
PY=${PYTHON:-python}
HEAR_SELA=${HEAR_SELA:-hear-sela}
MIRROR=${MIRROR:-}  # optional: a folder of bare git mirrors, <owner>+<name>/repo
mkdir -p "$OUT/sources" "$OUT/labels"

# repo commit (pinned: the versions the numbers in docs/results/ were measured on). Licences (the audio's):
#   vinsis/speech-commands-recognition  Speech Commands v0.01 subset, CC BY 4.0 (its LICENSE file)
#   tmrsgv/interactive-sound-keyboard   GPL-3.0 per its README (the sounds' own provenance is not stated)
#   skratchdot/philharmonia-samples     Philharmonia Orchestra free samples: use in any work, no selling or
#                                       redistributing them as samples (no licence file): build locally, never share
#   ZenvilleErasmus/RAVDESS-emotions-speech-audio-only  RAVDESS speech, audio only: CC BY-NC-SA 4.0 (its README;
#                                       the repository's MIT licence is for its code): non-commercial, local only
#   Fris0uman/CDDA-Soundpacks           CC BY-SA 4.0 (LICENSE.txt); each sound CC0 or CC BY from freesound.org,
#                                       credited in the credits.md beside it
declare -A COMMIT=(
  [vinsis/speech-commands-recognition]=53317d51bc2c75de6118ede48b0da06a412a1341
  [tmrsgv/interactive-sound-keyboard]=6417ff3b3da1a44182751bcc87c2d7550c8468b3
  [skratchdot/philharmonia-samples]=717b7de2bcae05e44aa8a3dde143c8d093b8f6c8
  [Fris0uman/CDDA-Soundpacks]=88586bb600eae4b053a8928bddbd5371d0b1ecc6
  [ZenvilleErasmus/RAVDESS-emotions-speech-audio-only]=29dc10e08b419f805a29c691c4dbc03da0b2b43e
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
    [ -n "$git_dir" ] && [ -d "$git_dir/.git" ] && git_dir="$git_dir/.git"  # a mirror with a work tree
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
  "$PY" "$HERE/dev_task_labels.py" "$task" "$src" "$OUT/labels/$task.csv" ${LABEL_FLAGS[@]+"${LABEL_FLAGS[@]}"}
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
    dynamics) build dynamics skratchdot/philharmonia-samples audio --group-by instrument --folds 5 \
                --clip-seconds 2.0 ;;
    articulation) build articulation skratchdot/philharmonia-samples audio --group-by note --folds 5 \
                --clip-seconds 2.0 ;;
    game_sfx) build game_sfx Fris0uman/CDDA-Soundpacks sound/CC-Sounds --group-by source --folds 5 \
                --clip-seconds 1.0 ;;
    emotion) build emotion ZenvilleErasmus/RAVDESS-emotions-speech-audio-only Audio_Speech_Actors_01-24 \
                --group-by actor --folds 5 --clip-seconds 4.0 ;;
    actors) build actors ZenvilleErasmus/RAVDESS-emotions-speech-audio-only Audio_Speech_Actors_01-24 \
                --group-by emotion --folds 5 --clip-seconds 4.0 ;;
    events) build events skratchdot/philharmonia-samples audio --events --group-by source --clips 240 \
                --clip-seconds 4.0 --split tvt ;;
    drums) build drums smpldsnds/drum-machines . --events --group-by kit_sound --clips 240 --clip-seconds 4.0 \
                --split tvt --max-events 8 ;;
    *) echo "unknown task $task" >&2; exit 2 ;;
  esac
done
