#!/usr/bin/env bash
# Regenerates the preprocessing test fixtures and their independent reference outputs
# from real footage, and the 640x480 benchmark frames.
#
# Footage: vtest.avi from Debian's opencv-doc package (768x576 DivX, a fixed camera over
# a campus path), fetched through apt like /work/shared/ASSETS.md says. ffmpeg (Debian's)
# makes the frames in the formats cameras send; Pillow (PyPI, in a private venv) makes
# the references:
#
#   *.jpg         ffmpeg's MJPEG encoder (what `ffmpeg -f mjpeg` writes), 640x480
#   *.pil224.rgb  Pillow: open/convert("RGB"), resize((224, 224), BILINEAR), raw RGB
#   *.yuyv        ffmpeg yuyv422 rawvideo (BT.601 limited range, as webcams send)
#   *.ffmpeg.rgb  ffmpeg's own yuyv422 -> rgb24 (BT.601, tv -> pc range, accurate
#                 rounding, nearest-neighbour chroma), raw RGB at the source size
#   *.pil112crop.rgb  Pillow resize((112, 112), BILINEAR, box=centre square)
#   *_y.pil224.grey   Pillow resize of the Y plane as an "L" image, raw 8-bit
#
# Outputs:
#   tests/fixtures/preprocess/   small committed fixtures (+ SHA256SUMS)
#   $WORK/frames/                benchmark frames (gitignored; see benches/preprocess.rs)
#
# WORK defaults to trainer/work/preprocess (gitignored); override with PREPROCESS_WORK.
# Needs: apt-get (or an existing vtest.avi in $WORK), ffmpeg, /usr/bin/python3 with venv
# (Debian python3-venv) and PyPI access for Pillow.
# Usage: bash trainer/make_preprocess_fixtures.sh
set -euo pipefail

here=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
root=$(dirname "$here")
work=${PREPROCESS_WORK:-$here/work/preprocess}
fixtures="$root/tests/fixtures/preprocess"
vtest_sha256="45cddc9490be69345cbdab64ca583be65987e864ca408038e648db99e10516cf"
py_pkgs=(Pillow==13.0.0)
# Benchmark frames: every 16th of the first 768 frames.
bench_frames=48

die() {
    echo "make_preprocess_fixtures.sh: error: $*" >&2
    exit 1
}

fetch_vtest() {
    local avi="$work/vtest.avi"
    if [[ -f $avi && $(sha256sum "$avi" | cut -d' ' -f1) == "$vtest_sha256" ]]; then
        return
    fi
    local tmp
    tmp=$(mktemp -d "$work/apt.XXXXXX")
    (cd "$tmp" && apt-get download opencv-doc >/dev/null) || die "apt-get download opencv-doc failed"
    dpkg-deb --fsys-tarfile "$tmp"/opencv-doc_*.deb |
        tar -x -C "$tmp" ./usr/share/doc/opencv-doc/examples/data/vtest.avi
    mv "$tmp/usr/share/doc/opencv-doc/examples/data/vtest.avi" "$avi"
    rm -rf "$tmp"
    [[ $(sha256sum "$avi" | cut -d' ' -f1) == "$vtest_sha256" ]] || die "vtest.avi sha256 mismatch"
}

ensure_venv() {
    local venv="$work/venv"
    if [[ -x $venv/bin/python ]] && "$venv/bin/python" -c "import PIL" 2>/dev/null; then
        return
    fi
    rm -rf "$venv"
    /usr/bin/python3 -m venv "$venv"
    "$venv/bin/pip" install --quiet --disable-pip-version-check "${py_pkgs[@]}" ||
        die "pip install ${py_pkgs[*]} failed"
}

# ff ARGS...: ffmpeg, quiet, deterministic output.
ff() {
    ffmpeg -nostdin -hide_banner -loglevel error -y "$@"
}

# frame N W H: filter selecting frame N of vtest.avi scaled to WxH.
frame() {
    echo "select=eq(n\,$1),scale=$2:$3"
}

# yuyv_to_rgb W H IN OUT: ffmpeg's BT.601 limited-range YUYV -> full-range RGB24.
yuyv_to_rgb() {
    ff -f rawvideo -pix_fmt yuyv422 -s "$1x$2" -color_range tv -colorspace bt470bg -i "$3" \
        -vf "scale=in_color_matrix=bt601:in_range=tv:out_range=pc:flags=neighbor+accurate_rnd+full_chroma_int+bitexact,format=rgb24" \
        -f rawvideo "$4"
}

make_fixtures() {
    local avi="$work/vtest.avi" f="$fixtures"
    mkdir -p "$f"
    # MJPEG as ffmpeg writes it by default: 4:2:0, optimised Huffman tables.
    ff -i "$avi" -vf "$(frame 100 640 480)" -frames:v 1 -q:v 3 -f mjpeg "$f/vtest_0100_640x480_420.jpg"
    # Webcam-like MJPEG: 4:2:2 with the standard (Annex K) Huffman tables.
    ff -i "$avi" -vf "$(frame 200 640 480)" -frames:v 1 -pix_fmt yuvj422p -huffman default \
        -q:v 3 -f mjpeg "$f/vtest_0200_640x480_422std.jpg"
    # YUYV: a 320x240 frame (a 640x480 one would be 600 KiB) and ffmpeg's colour test
    # pattern, whose saturated colours make a wrong matrix or range obvious.
    ff -i "$avi" -vf "$(frame 300 320 240)" -frames:v 1 -pix_fmt yuyv422 -f rawvideo \
        "$f/vtest_0300_320x240.yuyv"
    ff -f lavfi -i "testsrc2=size=160x120:rate=1" -frames:v 1 -pix_fmt yuyv422 -f rawvideo \
        "$f/testsrc2_160x120.yuyv"
    yuyv_to_rgb 320 240 "$f/vtest_0300_320x240.yuyv" "$f/vtest_0300_320x240.ffmpeg.rgb"
    yuyv_to_rgb 160 120 "$f/testsrc2_160x120.yuyv" "$f/testsrc2_160x120.ffmpeg.rgb"

    "$work/venv/bin/python" - "$f" <<'EOF'
import sys
from pathlib import Path
from PIL import Image

f = Path(sys.argv[1])
BIL = Image.Resampling.BILINEAR

for name in ["vtest_0100_640x480_420", "vtest_0200_640x480_422std"]:
    im = Image.open(f / f"{name}.jpg").convert("RGB")
    (f / f"{name}.pil224.rgb").write_bytes(im.resize((224, 224), BIL).tobytes())

name = "vtest_0300_320x240"
rgb = Image.frombytes("RGB", (320, 240), (f / f"{name}.ffmpeg.rgb").read_bytes())
(f / f"{name}.pil224.rgb").write_bytes(rgb.resize((224, 224), BIL).tobytes())
# Centre crop: the middle 240x240 square, resized to 112x112 (the filter reads past
# the box edge, as ours does).
crop = rgb.resize((112, 112), BIL, box=(40, 0, 280, 240))
(f / f"{name}.pil112crop.rgb").write_bytes(crop.tobytes())
# GREY camera frames are a luma plane: take the Y samples of the YUYV frame.
y = (f / f"{name}.yuyv").read_bytes()[0::2]
grey = Image.frombytes("L", (320, 240), y)
(f / f"{name}_y.pil224.grey").write_bytes(grey.resize((224, 224), BIL).tobytes())
EOF
    (cd "$f" && sha256sum -- *.jpg *.yuyv *.rgb *.grey >SHA256SUMS)
    echo "make_preprocess_fixtures.sh: fixtures in $f ($(du -sh "$f" | cut -f1))"
}

make_bench_frames() {
    local avi="$work/vtest.avi" out="$work/frames"
    local sel="select=not(mod(n\,16)),scale=640:480"
    rm -rf "$out"
    mkdir -p "$out/mjpeg420" "$out/mjpeg422std"
    ff -i "$avi" -vf "$sel" -vsync passthrough -frames:v "$bench_frames" -q:v 3 "$out/mjpeg420/%03d.jpg"
    ff -i "$avi" -vf "$sel" -vsync passthrough -frames:v "$bench_frames" -pix_fmt yuvj422p \
        -huffman default -q:v 3 "$out/mjpeg422std/%03d.jpg"
    local fmt
    for fmt in yuyv422 gray rgb24; do
        ff -i "$avi" -vf "$sel" -vsync passthrough -frames:v "$bench_frames" -pix_fmt "$fmt" \
            -f rawvideo "$out/$fmt.raw"
    done
    echo "make_preprocess_fixtures.sh: benchmark frames in $out"
}

main() {
    command -v ffmpeg >/dev/null || die "ffmpeg not found (apt-get install ffmpeg)"
    mkdir -p "$work"
    fetch_vtest
    ensure_venv
    make_fixtures
    make_bench_frames
}

main "$@"
