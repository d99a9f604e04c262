#!/usr/bin/env bash
# Regenerates the camera replay fixtures in tests/fixtures/camera/ from real footage:
# OpenCV's vtest.avi (Debian opencv-doc, Apache-2.0/BSD-3; 768x576, 10 fps, a fixed elevated
# camera over a campus path). Needs Debian's ffmpeg and apt-get (no root needed for download).
#
#   vtest_mjpg_320x240.mjpeg     16 frames, concatenated baseline JPEGs: what `ffmpeg -f mjpeg`
#                                writes and what a UVC camera sends in MJPG mode
#   vtest_i420_64x48.y4m         6 frames, 4:2:0 planar (header C420jpeg), 10 fps
#   vtest_i422_32x24.y4m         3 frames, 4:2:2 planar (C422)
#   vtest_mono_32x24.y4m         3 frames, luma only (Cmono)
#   images/vtest_00{1..4}.jpg    4 single JPEG files 160x120, for the image-directory source
#
# vtest.avi is reused from trainer/work/preprocess/ if another script fetched it there (hash
# checked); otherwise it is fetched into trainer/work/camera/. ffmpeg output is deterministic
# for a given ffmpeg build (-bitexact, no metadata); a different ffmpeg version may produce
# different bytes, which is fine: the tests check structure, not hashes.
#
# Usage: bash trainer/make_camera_fixtures.sh
set -euo pipefail

here=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
root=$(dirname "$here")
work="$here/work/camera"
out="$root/tests/fixtures/camera"
want=45cddc9490be69345cbdab64ca583be65987e864ca408038e648db99e10516cf
mkdir -p "$work" "$out/images"

check() { [ -f "$1" ] && [ "$(sha256sum "$1" | cut -d' ' -f1)" = "$want" ]; }

src=""
for cand in "$here/work/preprocess/vtest.avi" "$work/vtest.avi"; do
    if check "$cand"; then src=$cand; break; fi
done
if [ -z "$src" ]; then
    (cd "$work" && rm -f opencv-doc_*.deb && apt-get download opencv-doc >/dev/null \
        && dpkg-deb --fsys-tarfile opencv-doc_*.deb \
            | tar -x --strip-components=7 ./usr/share/doc/opencv-doc/examples/data/vtest.avi)
    check "$work/vtest.avi" || { echo "vtest.avi: sha256 mismatch" >&2; exit 1; }
    src="$work/vtest.avi"
fi
echo "source: $src"

ff() { ffmpeg -nostdin -loglevel error -y -i "$src" -bitexact -map_metadata -1 "$@"; }

# Start 10 s in, where several people are walking.
ff -ss 10 -frames:v 16 -vf scale=320:240 -q:v 6 -f mjpeg "$out/vtest_mjpg_320x240.mjpeg"
ff -ss 10 -frames:v 6 -vf scale=64:48 -pix_fmt yuv420p -f yuv4mpegpipe "$out/vtest_i420_64x48.y4m"
ff -ss 10 -frames:v 3 -vf scale=32:24 -pix_fmt yuv422p -f yuv4mpegpipe "$out/vtest_i422_32x24.y4m"
ff -ss 10 -frames:v 3 -vf scale=32:24 -pix_fmt gray -f yuv4mpegpipe "$out/vtest_mono_32x24.y4m"
rm -f "$out"/images/*.jpg
ff -ss 20 -frames:v 4 -vf scale=160:120 -q:v 6 -f image2 "$out/images/vtest_%03d.jpg"

ls -l "$out" "$out/images"
du -sh "$out"
