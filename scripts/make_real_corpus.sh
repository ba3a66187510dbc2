#!/usr/bin/env bash
# Builds the real-audio pretraining corpus into OUT from the DFSG-free Debian packages listed in
# scripts/real_corpus_sources.yaml: `apt-get download` into a cache folder, `dpkg-deb -x` into one folder per package
# (no system install, no root needed beyond what apt-get download needs), audio inside .zip/.pk3/.wz archives unpacked
# beside it, then `hear-sela corpus` decodes, deduplicates, cuts and writes OUT/<source>/*.flac, OUT/labels.csv and
# OUT/manifest.json. Extra arguments go to `hear-sela corpus` (e.g. --dry-run, --max-hours-per-source 0.5).
#   bash scripts/make_real_corpus.sh OUT [--dry-run]
# Environment: CACHE (default ~/.cache/hear_sela/debs) holds the .deb files and the extracted trees; PY the Python.
set -euo pipefail
[ $# -ge 1 ] || { echo "usage: $0 OUT [hear-sela corpus options]" >&2; exit 2; }
OUT=$1; shift
HERE="$(cd "$(dirname "$0")/.." && pwd)"
PY=${PY:-$HERE/.venv/bin/python}
SOURCES=${SOURCES:-$HERE/scripts/real_corpus_sources.yaml}
CACHE=${CACHE:-$HOME/.cache/hear_sela/debs}
mkdir -p "$CACHE/deb" "$CACHE/x"
mapfile -t PKGS < <(grep -oE 'package: *[A-Za-z0-9.+-]+' "$SOURCES" | sed 's/package: *//' | sort -u)
missing=()
for p in "${PKGS[@]}"; do compgen -G "$CACHE/deb/${p}_*.deb" > /dev/null || missing+=("$p"); done
if [ ${#missing[@]} -gt 0 ]; then
  echo "downloading ${#missing[@]} package(s): ${missing[*]}"
  (cd "$CACHE/deb" && apt-get download "${missing[@]}")
fi
for p in "${PKGS[@]}"; do
  deb=$(ls "$CACHE/deb/${p}"_*.deb | sort | tail -1)
  dest="$CACHE/x/$p"
  version=$(dpkg-deb -f "$deb" Version)
  if [ "$(cat "$dest/.version" 2>/dev/null)" != "$version" ]; then
    echo "extracting $p $version"
    rm -rf "$dest" && mkdir -p "$dest"
    dpkg-deb -x "$deb" "$dest"
    bash "$HERE/scripts/unpack_audio_archives.sh" "$dest"
    echo "$version" > "$dest/.version"  # written last: a half-extracted package is redone
  fi
done
exec "$PY" -m hear_sela.cli corpus "$OUT" --sources "$SOURCES" --base "$CACHE/x" "$@"
