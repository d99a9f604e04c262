"""Unit tests of `mtrainer.py train`'s data handling (userdata.py, ownapp.py) on real files:
photos written with Pillow, clips encoded by ffmpeg.

    /usr/bin/python3 -m unittest discover -s trainer -p 'test_*.py'

trainer/smoke.sh runs them (tools/test.sh, CI).
"""

from __future__ import annotations

import argparse
import shutil
import subprocess
import tempfile
import unittest
from pathlib import Path

import numpy as np
from PIL import Image

import userdata as U

SEED = 20180711


def photo(path: Path, seed: int, size=(96, 80), fmt=None) -> Path:
    """A random-texture photo (distinct per seed; no two are near-duplicates)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(seed)
    small = rng.integers(0, 256, (6, 6, 3), dtype=np.uint8)
    Image.fromarray(small).resize(size, Image.BILINEAR).save(path, fmt)
    return path


def clip(path: Path, seconds: float = 3.0, fps: int = 10) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    subprocess.run(["ffmpeg", "-nostdin", "-loglevel", "error", "-y", "-f", "lavfi", "-i",
                    f"testsrc=size=64x48:rate={fps}", "-t", str(seconds), "-c:v", "mpeg4",
                    "-pix_fmt", "yuv420p", str(path)], check=True)
    return path


class Base(unittest.TestCase):
    def setUp(self) -> None:
        self.dir = Path(tempfile.mkdtemp(prefix="test_userdata_"))

    def tearDown(self) -> None:
        shutil.rmtree(self.dir, ignore_errors=True)

    def data_error(self, fn, *args) -> str:
        with self.assertRaises(U.DataError) as cm:
            fn(*args)
        self.assertEqual(cm.exception.code, U.EX_DATAERR)
        return cm.exception.msg


class Photos(Base):
    def test_unreadable_and_truncated_files_are_skipped_counted_and_named(self):
        root = self.dir / "photos"
        for i in range(3):
            photo(root / "positive" / f"p{i}.jpg", i)
            photo(root / "negative" / "deep" / "er" / f"n{i}.png", 100 + i)
        good = (root / "positive" / "p0.jpg").read_bytes()
        (root / "positive" / "cut.jpg").write_bytes(good[: len(good) // 2])
        (root / "negative" / "readme.txt").write_text("hello")
        (root / "negative" / ".hidden.jpg").write_text("ignored")
        rep = U.PhotoReport()
        photos = U.scan_photos(root, rep)
        self.assertEqual(len(photos), 6)
        self.assertEqual(sum(p.label for p in photos), 3)
        self.assertEqual(rep.files, 8)
        skipped = {Path(p).name: why for p, why in rep.skipped}
        self.assertEqual(set(skipped), {"cut.jpg", "readme.txt"})
        self.assertIn("truncated", skipped["cut.jpg"])
        self.assertIn("skipped 2 of 8 files", "\n".join(rep.lines()))

    def test_the_same_photo_in_both_classes_is_an_error_naming_both_files(self):
        root = self.dir / "photos"
        photo(root / "positive" / "a.jpg", 1)
        (root / "negative").mkdir()
        shutil.copy(root / "positive" / "a.jpg", root / "negative" / "b.jpg")
        msg = self.data_error(U.scan_photos, root, U.PhotoReport())
        self.assertIn("a.jpg", msg)
        self.assertIn("b.jpg", msg)

    def test_the_hash_split_is_stable_when_photos_are_added(self):
        root = self.dir / "photos"
        for i in range(30):
            photo(root / "positive" / f"p{i}.jpg", i)
        first = U.scan_photos(root, U.PhotoReport())
        U.assign_splits(first, SEED, U.PhotoReport())
        for i in range(30, 40):
            photo(root / "positive" / f"p{i}.jpg", i)
        second = U.scan_photos(root, U.PhotoReport())
        U.assign_splits(second, SEED, U.PhotoReport())
        before = {p.path.name: p.split for p in first}
        after = {p.path.name: p.split for p in second}
        self.assertEqual({k: after[k] for k in before}, before)
        self.assertEqual(set(before.values()), {"train", "val", "test"})

    def test_few_clip_blocks_still_fill_each_split_to_its_share(self):
        # 12 blocks of 40 frames (six 24 s clips of real footage): a per-block hash split can
        # leave the test split nearly empty; the quota split gives it 20% of the frames.
        for seed in range(5):
            splits = U.quota_splits([(f"clip{c}:{b}", 40) for c in range(6) for b in range(2)], seed)
            frames = {s: 40 * list(splits.values()).count(s) for s in U.SPLITS}
            self.assertGreaterEqual(frames["test"], 80, (seed, frames))
            self.assertGreaterEqual(frames["val"], 80, (seed, frames))
            self.assertGreaterEqual(frames["train"], 240, (seed, frames))
        self.assertEqual(U.quota_splits([("a", 5), ("b", 9), ("c", 1)], SEED),
                         U.quota_splits([("c", 1), ("a", 5), ("b", 9)], SEED))

    def test_near_duplicates_are_reported_and_kept_in_one_split(self):
        root = self.dir / "photos"
        orig = photo(root / "train" / "positive" / "a.jpg", 7, size=(300, 240))
        (root / "test" / "positive").mkdir(parents=True)
        Image.open(orig).resize((150, 120)).save(root / "test" / "positive" / "a_small.jpg", quality=70)
        for i in range(4):
            photo(root / "train" / "negative" / f"n{i}.jpg", 50 + i)
            photo(root / "test" / "negative" / f"t{i}.jpg", 60 + i)
        rep = U.PhotoReport()
        photos = U.scan_photos(root, rep)
        U.assign_splits(photos, SEED, rep)
        split = {p.path.name: p.split for p in photos}
        self.assertEqual(split["a.jpg"], split["a_small.jpg"])
        self.assertEqual(split["a_small.jpg"], "train")  # the earlier split of the two given
        self.assertEqual(len(rep.near_duplicates), 1, rep.near_duplicates)
        self.assertIn("a_small.jpg", rep.near_duplicates[0]["b"] + rep.near_duplicates[0]["a"])
        self.assertEqual({split[f"t{i}.jpg"] for i in range(4)}, {"test"})

    def test_split_folders_and_class_folders_side_by_side_are_refused(self):
        root = self.dir / "photos"
        photo(root / "positive" / "a.jpg", 1)
        photo(root / "train" / "positive" / "b.jpg", 2)
        self.assertIn("both split folders", self.data_error(U.scan_photos, root, U.PhotoReport()))


class Spans(Base):
    def spans(self, text: str, suffix=".csv", fps=10.0):
        f = self.dir / f"c{suffix}"
        f.write_text(text)
        return U.read_spans(f, fps, "app")

    def test_seconds_and_frames_convert_to_inclusive_frame_spans(self):
        got, fps = self.spans("start_s,end_s\n1.0,2.0\n# a comment\n2.55,2.6\n")
        self.assertEqual([(a, b) for a, b, _ in got], [(10, 19), (25, 25)])
        got, _ = self.spans("start_frame,end_frame\n3,7\n")
        self.assertEqual([(a, b) for a, b, _ in got], [(3, 7)])
        got, fps = self.spans('fps = 25\n[[app]]\nname = "app"\nevents = [[1, 4], [9, 9]]\n', ".toml")
        self.assertEqual(([(a, b) for a, b, _ in got], fps), ([(1, 4), (9, 9)], 25.0))

    def test_a_csv_without_its_unit_is_refused_with_the_line(self):
        msg = self.data_error(self.spans, "1,2\n3,4\n")
        self.assertIn("c.csv:1", msg)
        self.assertIn("start_s,end_s", msg)

    def test_a_span_past_the_clips_end_names_the_file_and_line(self):
        raw, fps = self.spans("start_s,end_s\n0.5,1\n2.5,3.5\n")
        msg = self.data_error(U.check_spans, Path("clip.mp4"), raw, 30, fps)
        self.assertIn("c.csv:3", msg)
        self.assertIn("past the clip's end", msg)
        self.assertIn("30 frames", msg)

    def test_overlapping_spans_name_both_lines(self):
        raw, fps = self.spans("start_frame,end_frame\n0,10\n20,25\n8,12\n")
        msg = self.data_error(U.check_spans, Path("clip.mp4"), raw, 100, fps)
        self.assertIn("c.csv:2", msg)
        self.assertIn("c.csv:4", msg)
        self.assertIn("overlaps", msg)

    def test_a_clip_without_any_span_is_refused(self):
        raw, fps = self.spans("start_s,end_s\n")
        self.assertIn("lists no event", self.data_error(U.check_spans, Path("clip.mp4"), raw, 100, fps))

    def test_a_span_that_ends_before_it_starts_is_refused(self):
        self.assertIn("ends before it starts", self.data_error(self.spans, "start_s,end_s\n3,2\n"))

    def test_the_roles_leave_a_margin_around_events_and_the_holdout_cut_falls_between_spans(self):
        role = U.frame_roles(20, [(5, 6), (15, 15)], 2)
        self.assertEqual(role.tolist(), [0, 0, 0, -1, -1, 1, 1, -1, -1, 0, 0, 0, 0, -1, -1, 1, -1, -1, 0, 0])
        cut = U.holdout_cut(100, [(10, 20), (60, 75), (85, 90)], 0.3)
        self.assertEqual(cut, 76)  # wanted 70, inside a span: moved to its end
        self.assertIsNone(U.holdout_cut(100, [(10, 20)], 0.3))


class Clips(Base):
    def test_a_clip_ffmpeg_cannot_decode_is_named(self):
        bad = self.dir / "clips" / "bad.mp4"
        bad.parent.mkdir()
        bad.write_bytes(b"\x00\x00\x00\x18ftypmp42" + bytes(200))
        msg = self.data_error(U.probe, bad)
        self.assertIn("bad.mp4", msg)
        self.assertIn("ffmpeg cannot decode", msg)

    def test_a_clip_without_a_span_file_says_what_to_write(self):
        c = clip(self.dir / "clips" / "a.mp4")
        msg = self.data_error(U.spans_file_of, c)
        self.assertIn("a.csv", msg)
        self.assertIn("start_s,end_s", msg)

    def test_a_real_clip_is_decoded_frame_by_frame_with_its_spans_checked(self):
        c = clip(self.dir / "clips" / "a.mp4", seconds=3.0, fps=10)
        c.with_suffix(".csv").write_text("start_s,end_s\n1,1.5\n")
        info = U.clip_info(c, "app")
        self.assertEqual((info.frames, info.fps, info.width, info.height), (30, 10.0, 64, 48))
        self.assertEqual(info.spans, [(10, 14)])
        c.with_suffix(".csv").write_text("start_s,end_s\n1,3.2\n")
        self.assertIn("past the clip's end", self.data_error(U.clip_info, c, "app"))


class Assemble(Base):
    """ownapp.assemble: the class-count checks (needs torch for mtrainer's types)."""

    def args(self, images=None, clips=None):
        return argparse.Namespace(name="app", images=images, clips=clips, label=None, description=None,
                                  event_length_ms=None, event_frequency=None, correlation=None,
                                  work=self.dir / "work")

    def assemble(self, args):
        import ownapp

        return ownapp.assemble(args, SEED, lambda m: None)

    def test_one_class_only_is_refused(self):
        for i in range(12):
            photo(self.dir / "photos" / "positive" / f"p{i}.jpg", i)
        msg = self.data_error(self.assemble, self.args(images=self.dir / "photos"))
        self.assertIn("one class only", msg)
        self.assertIn("negative", msg)

    def test_too_few_examples_of_a_class_say_the_minimum_and_why(self):
        for i in range(12):
            photo(self.dir / "photos" / "positive" / f"p{i}.jpg", i)
        for i in range(4):
            photo(self.dir / "photos" / "negative" / f"n{i}.jpg", 100 + i)
        msg = self.data_error(self.assemble, self.args(images=self.dir / "photos"))
        self.assertIn(f"4 negative examples", msg)
        self.assertIn(f"at least {U.MIN_PER_CLASS}", msg)
        self.assertIn("test split", msg)

    def test_enough_photos_give_every_split_both_classes(self):
        for i in range(10):
            photo(self.dir / "photos" / "positive" / f"p{i}.jpg", i)
            photo(self.dir / "photos" / "negative" / f"n{i}.jpg", 100 + i)
        data, cal = self.assemble(self.args(images=self.dir / "photos"))
        for s in U.SPLITS:
            self.assertEqual(set(data.labels[s].tolist()), {0, 1}, s)
        self.assertIsNone(data.event)  # photos only: assumed event parameters
        self.assertEqual(cal, [])


if __name__ == "__main__":
    unittest.main()
