#!/usr/bin/env bash
# Unpacks the audio (.ogg, .wav, .flac, .mp3) inside the zip archives found under DIR into DIR/_unzipped/<archive
# name without extension>/, keeping their inner folders. Zip archives go by several names in game data: .zip,
# .pk3 (Quake-engine games: OpenArena, Nexuiz, UFO:AI) and .wz (Warzone 2100). Used by make_real_corpus.sh on each
# extracted package.
#   bash scripts/unpack_audio_archives.sh DIR
set -euo pipefail
[ $# -eq 1 ] && [ -d "$1" ] || { echo "usage: $0 DIR (an existing folder)" >&2; exit 2; }
dest=$1
find "$dest" -type f \( -name '*.zip' -o -name '*.pk3' -o -name '*.wz' \) -not -path "$dest/_unzipped/*" -print0 |
  while IFS= read -r -d '' z; do
    name=$(basename "$z"); name=${name%.*}
    mkdir -p "$dest/_unzipped/$name"
    # unzip exits 11 when an archive holds no audio: that is fine, any other failure is not
    unzip -qo "$z" '*.ogg' '*.wav' '*.flac' '*.mp3' -d "$dest/_unzipped/$name" || [ $? -eq 11 ]
  done
