#!/bin/sh
# Copies real files of the repository into fuzz/corpus/<target>/ as seeds
# (corpus/ is gitignored and grows as the fuzzer finds new inputs).
# Run from anywhere: sh fuzz/seed-corpus.sh
set -eu
here=$(cd "$(dirname "$0")" && pwd)
repo=$(dirname "$here")
c="$here/corpus"
mkdir -p "$c/config" "$c/package" "$c/manifest" "$c/cli"

# name: a file's repo path with / turned into _, so seeds never collide.
put() { # put TARGET FILE
    cp "$2" "$c/$1/seed_$(echo "${2#"$repo"/}" | tr / _)"
}

# Every TOML file in the tree is a useful seed for the TOML parser behind all
# three TOML targets; each target also gets its own format's real files.
toml_files=$(cd "$repo" && find . -name '*.toml' -not -path './target/*' \
    -not -path './fuzz/target/*' -not -path './fuzz/corpus/*' \
    -not -path './trainer/.venv/*' -not -path './trainer/work/*' | sed "s|^\./|$repo/|")
for f in $toml_files; do
    for t in config package manifest; do put "$t" "$f"; done
done
# The TOML examples of README.md and docs/*.md, one seed per fenced block.
for md in "$repo/README.md" "$repo"/docs/*.md "$repo"/models/README.md; do
    [ -f "$md" ] || continue
    awk -v out="$c/config/seed_$(basename "$md" .md)_block" '
        /^```toml/ { n++; on = 1; next }
        /^```/ { on = 0; next }
        on { print > (out n ".toml") }' "$md"
done
for t in config package manifest cli; do
    for f in "$here/seeds/$t"/*; do put "$t" "$f"; done
done
# The camera-bytes and state-file targets (issue 24): their committed seeds
# (real frames, replay files, state files; make-seeds.sh) and every
# regression input.
for t in preprocess mjpeg y4m eventlog store tail; do
    mkdir -p "$c/$t"
    for f in "$here/seeds/$t"/* "$here/regressions/$t"/*; do
        [ -f "$f" ] && put "$t" "$f"
    done
done
for t in config package manifest cli preprocess mjpeg y4m eventlog store tail; do
    echo "$t: $(ls "$c/$t" | wc -l) files"
done
