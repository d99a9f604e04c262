#!/bin/sh
# Writes the committed seeds of the camera-bytes and state-file targets
# (issue 24) into fuzz/seeds/<target>/, from real data only:
#
#   preprocess  the JPEG fixtures (every subsampling, restart markers,
#               progressive, grey), the vtest camera images, and demo-clip
#               frames (models/demo/demo.mjpeg) re-encoded small by ffmpeg as
#               MJPEG 4:2:0/4:2:2/4:4:4/grey and as raw YUYV, GREY and RGB24;
#   mjpeg       demo-clip frames as MJPEG streams (with garbage between frames,
#               cut in the middle of a frame), the vtest camera images;
#   y4m         the Y4M fixtures (4:2:0, 4:2:2, mono) and demo-clip frames as
#               4:4:4 and 4:2:0 Y4M;
#   eventlog    the events.log a service run wrote, cut and damaged;
#   tail        that events.log, whole and split into events.log.1 and
#               events.log, with delivery cursors (see fuzz/src/harness/tail.rs);
#   store       that run's state.bin, status.bin, profile.bin and planner.bin,
#               whole and as payloads (see fuzz/src/harness/store.rs).
#
# The state files come from `mainstream run` on the demo config, pace fast,
# into a temporary state directory: MAINSTREAM_BIN names the binary (default
# target/release/mainstream, else target/debug/mainstream). Needs ffmpeg and
# python3. Run from anywhere: sh fuzz/make-seeds.sh
set -eu
here=$(cd "$(dirname "$0")" && pwd)
repo=$(dirname "$here")
s="$here/seeds"
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
for t in preprocess mjpeg y4m eventlog store tail; do
    rm -rf "${s:?}/$t"
    mkdir -p "$s/$t"
done
clip="$repo/models/demo/demo.mjpeg"
ff() { ffmpeg -nostdin -hide_banner -loglevel error -y "$@"; }

# prefix OUT HEXBYTES FILE...: OUT is the bytes, then the files' contents.
prefix() {
    out=$1 hex=$2
    shift 2
    python3 - "$out" "$hex" "$@" <<'EOF'
import sys
out, hexbytes, *files = sys.argv[1:]
data = bytes.fromhex(hexbytes)
for f in files:
    data += open(f, 'rb').read()
open(out, 'wb').write(data)
EOF
}

# --- preprocess: byte 0 = format | fit << 2 | kernels << 4 | 0x40 (own size)
jp="$repo/tests/fixtures/preprocess/jpeg"
for f in "$jp"/*.jpg "$repo"/tests/fixtures/camera/images/vtest_001.jpg; do
    prefix "$s/preprocess/jpeg_$(basename "$f" .jpg)" 4000001717 "$f"
done
# The same frame, the decoder's other kernels and fits.
prefix "$s/preprocess/jpeg_crop97x61_420_restart_sse41_crop" 5417170f0f "$jp/crop97x61_420_restart.jpg"
prefix "$s/preprocess/jpeg_crop97x61_422_portable_resizecrop" 6817171717 "$jp/crop97x61_422_restart3mcu.jpg"
# A frame whose size is not the configured one.
prefix "$s/preprocess/jpeg_wrong_size" 003f2f1f1f "$jp/crop97x61_444.jpg"
# Demo-clip frames, small, at every JPEG subsampling the decoder handles.
i=0
for pix in yuvj420p yuvj422p yuvj444p gray; do
    i=$((i + 1))
    ff -i "$clip" -vf "select=eq(n\,$((40 * i))),scale=64:48" -frames:v 1 \
        -pix_fmt $pix -f mjpeg "$tmp/demo_$pix.jpg"
    prefix "$s/preprocess/jpeg_demo_64x48_$pix" 4000001f17 "$tmp/demo_$pix.jpg"
done
# Raw formats: w = byte 1 + 1, h = byte 2 + 1 (48x36), input byte 3/4 + 1.
ff -i "$clip" -vf "select=eq(n\,200),scale=48:36" -frames:v 1 -pix_fmt yuyv422 -f rawvideo "$tmp/f.yuyv"
ff -i "$clip" -vf "select=eq(n\,200),scale=48:36" -frames:v 1 -pix_fmt gray -f rawvideo "$tmp/f.grey"
ff -i "$clip" -vf "select=eq(n\,200),scale=48:36" -frames:v 1 -pix_fmt rgb24 -f rawvideo "$tmp/f.rgb"
prefix "$s/preprocess/yuyv_demo_48x36_stretch" 012f231f1f "$tmp/f.yuyv"
prefix "$s/preprocess/yuyv_demo_48x36_crop_portable" 252f230f17 "$tmp/f.yuyv"
prefix "$s/preprocess/grey_demo_48x36_resizecrop" 0a2f232f2f "$tmp/f.grey"
prefix "$s/preprocess/grey_demo_48x36_short" 022f23 "$tmp/f.grey"
prefix "$s/preprocess/rgb24_demo_48x36_sse41" 132f231010 "$tmp/f.rgb"
prefix "$s/preprocess/rgb24_demo_48x36_upscale" 0f2f2380a0 "$tmp/f.rgb"

# --- mjpeg: byte 0 = limit (bits 0-1) | scanner piece size (bits 2-7)
ff -i "$clip" -vf "select=between(n\,100\,103),scale=64:48" -fps_mode passthrough -f mjpeg "$tmp/four.mjpeg"
prefix "$s/mjpeg/demo_64x48_four_frames" 00 "$tmp/four.mjpeg"
prefix "$s/mjpeg/demo_64x48_four_frames_limit600" 1e "$tmp/four.mjpeg"
python3 - "$tmp/four.mjpeg" "$s/mjpeg" <<'EOF'
import sys
data = open(sys.argv[1], 'rb').read()
out = sys.argv[2]
starts = [i for i in range(len(data) - 2) if data[i:i + 3] == b'\xff\xd8\xff']
a, b = starts[1], starts[2]
# Garbage between frames, a frame cut short by the next one, a cut stream.
open(out + '/demo_garbage_between', 'wb').write(b'\x00' + data[:a] + b'not a frame\xff\xd8' + data[a:])
open(out + '/demo_cut_by_next', 'wb').write(b'\x04' + data[:a + (b - a) // 2] + data[b:])
open(out + '/demo_cut_at_end', 'wb').write(b'\x08' + data[:b + 100])
EOF
for f in "$repo"/tests/fixtures/camera/images/vtest_00[12].jpg; do
    prefix "$s/mjpeg/$(basename "$f" .jpg)" 01 "$f"
done

# --- y4m: the fixtures, and 4:4:4 / 4:2:0 from the demo clip.
cp "$repo"/tests/fixtures/camera/vtest_i422_32x24.y4m "$repo"/tests/fixtures/camera/vtest_mono_32x24.y4m "$s/y4m/"
ff -i "$clip" -vf "select=between(n\,250\,251),scale=16:12" -fps_mode passthrough -pix_fmt yuv444p -f yuv4mpegpipe "$s/y4m/demo_444_16x12.y4m"
ff -i "$clip" -vf "select=between(n\,250\,252),scale=16:12" -fps_mode passthrough -pix_fmt yuv420p -f yuv4mpegpipe "$s/y4m/demo_420_16x12.y4m"
ff -i "$clip" -vf "select=eq(n\,260),scale=15:11" -frames:v 1 -pix_fmt gray -strict -1 -f yuv4mpegpipe "$s/y4m/demo_mono_15x11.y4m"

# --- eventlog and store: the files a service run writes.
bin=${MAINSTREAM_BIN:-}
if [ -z "$bin" ]; then
    for b in "$repo/target/release/mainstream" "$repo/target/debug/mainstream"; do
        if [ -x "$b" ]; then bin=$b; break; fi
    done
fi
[ -n "$bin" ] || { echo "no mainstream binary: build it or set MAINSTREAM_BIN" >&2; exit 1; }
state="$tmp/state"
mkdir -p "$tmp/demo"
cp -r "$repo/demo/apps.d" "$tmp/demo/"
sed -e "s|^state_dir = .*|state_dir = \"$state\"|" \
    -e "s|\"\.\./|\"$repo/|g" \
    -e 's|^pace = .*|pace = "fast"|' "$repo/demo/config.toml" >"$tmp/demo/config.toml"
sed -i "s|\"\.\./\.\./|\"$repo/|g; s|\"\.\./|\"$repo/|g" "$tmp/demo/apps.d"/*.toml
"$bin" run --config "$tmp/demo/config.toml" >"$tmp/run.out" 2>"$tmp/run.err" || {
    cat "$tmp/run.err" >&2
    exit 1
}
ls -l "$state" >&2
python3 - "$state" "$s" <<'EOF'
import os, sys
state, s = sys.argv[1:]
def rd(n):
    return open(os.path.join(state, n), 'rb').read()
def wr(t, name, data):
    open(os.path.join(s, t, name), 'wb').write(data)
log = rd('events.log')
wr('eventlog', 'run', log)
# Records: u32 length, u32 CRC, payload, after the 8-byte header.
ends, at = [], 8
while at + 8 <= len(log):
    n = int.from_bytes(log[at:at + 4], 'little')
    at += 8 + n
    ends.append(at)
assert len(ends) >= 2, f'{len(ends)} records: need 2'
wr('eventlog', 'torn_tail', log[:ends[-1] - 3])
mid = ends[0] + 5
wr('eventlog', 'bad_sector_middle', log[:mid] + b'\x00' * 16 + log[mid + 16:])
wr('eventlog', 'header_only', log[:8])
wr('eventlog', 'not_a_log', b'{"type":"event"}\n' * 4)
# --- tail: the MQTT publisher's log reader (fuzz/src/harness/tail.rs): the
# same log as events.log alone, split into events.log.1 + events.log, and
# with cursors at, before and after damage.
def tail_seed(name, mode, offset, index, old, cur):
    wr('tail', name, bytes([mode]) + offset.to_bytes(8, 'little') + index.to_bytes(8, 'little')
       + len(old).to_bytes(2, 'little') + old + cur)
head, recs = log[:8], log[8:]
split = ends[len(ends) // 2]
tail_seed('first_start', 0, 0, 0, b'', log)
tail_seed('from_start', 1, 0, 0, b'', log)
tail_seed('rotated_from_start', 2, 0, 0, log[:split], head + log[split:])
tail_seed('cursor_after_second', 3, ends[1], 2, b'', log)
tail_seed('cursor_in_rotated', 4, ends[0], 1, log[:split], head + log[split:])
tail_seed('stale_cursor', 5, ends[0], 1, log[:split], head + log[split:])
bad = log[:ends[0]] + b'\x00' * 16 + log[ends[0] + 16:]
tail_seed('cursor_before_damage', 3, ends[0], 1, b'', bad)
tail_seed('damage_middle', 1, 0, 0, b'', log[:mid] + b'\x00' * 16 + log[mid + 16:])
for kind, name in [(0, 'state.bin'), (1, 'status.bin'), (2, 'profile.bin')]:
    data = rd(name)
    stem = name.split('.')[0]
    wr('store', f'{stem}_file', bytes([kind, 0]) + data)
    wr('store', f'{stem}_payload', bytes([kind | 4, 0]) + data[14:])
    wr('store', f'{stem}_file_cut', bytes([kind, 0]) + data[:len(data) // 2])
# planner.bin: the envelope's payload is postcard (u32 key, Vec<u8> table).
p = rd('planner.bin')[14:]
def varint(b, i):
    v = shift = 0
    while True:
        v |= (b[i] & 0x7F) << shift
        i += 1
        if b[i - 1] < 0x80:
            return v, i
        shift += 7
_, i = varint(p, 0)
n, i = varint(p, i)
table = p[i:i + n]
wr('store', 'planner_table_budget1', bytes([3, 40]) + table)
wr('store', 'planner_table_budget0', bytes([3, 0]) + table)
EOF
for t in preprocess mjpeg y4m eventlog store tail; do
    echo "$t: $(ls "$s/$t" | wc -l) files, $(du -sk "$s/$t" | cut -f1) KiB"
done
