//! The fuzz targets of issue 24 (camera bytes and state files), replayed
//! deterministically in the normal test suite.
//!
//! A cargo-fuzz run needs an instrumented build of everything, tract included,
//! which CI has no time for. So CI runs the same harness bodies
//! (`fuzz/src/harness/`, included here as a module) on:
//!
//! - every committed seed, `fuzz/seeds/<target>/` (real frames, replay files,
//!   state files and event logs; `fuzz/make-seeds.sh` made them);
//! - every regression input, `fuzz/regressions/<target>/` (what fuzzing
//!   found; each also has a named test below);
//! - [`MUTANTS`] mutants per target from a fixed-seed generator (bit flips,
//!   JPEG marker bytes, cuts, duplicated and deleted ranges, splices of two
//!   seeds), the same ones on every run.
//!
//! The harnesses panic when an input breaks a guarantee; the input's file (or
//! the mutant's number and its parent) is in the panic message.

#[path = "../fuzz/src/harness/mod.rs"]
mod harness;

use crate::common::repo;
use std::path::PathBuf;

/// Mutants per target per run.
const MUTANTS: usize = 2000;

/// The files of `fuzz/<kind>/<target>/`, sorted (none if the directory is absent).
fn files(kind: &str, target: &str) -> Vec<(PathBuf, Vec<u8>)> {
    let dir = repo(&format!("fuzz/{kind}/{target}"));
    let Ok(entries) = std::fs::read_dir(&dir) else {
        return Vec::new();
    };
    let mut paths: Vec<PathBuf> = entries.flatten().map(|e| e.path()).collect();
    paths.sort();
    paths
        .into_iter()
        .map(|p| {
            let bytes = std::fs::read(&p).unwrap_or_else(|e| panic!("{}: {e}", p.display()));
            (p, bytes)
        })
        .collect()
}

fn target(name: &str) -> fn(&[u8]) {
    harness::TARGETS
        .iter()
        .find(|(n, _)| *n == name)
        .map(|(_, f)| *f)
        .unwrap_or_else(|| panic!("no target {name}"))
}

/// Runs `f` on `input`, naming `what` if it panics.
fn run_named(f: fn(&[u8]), input: &[u8], what: &dyn Fn() -> String) {
    if let Err(p) = std::panic::catch_unwind(|| f(input)) {
        let msg = p
            .downcast_ref::<String>()
            .cloned()
            .or_else(|| p.downcast_ref::<&str>().map(|s| s.to_string()))
            .unwrap_or_default();
        panic!("{}: {msg}", what());
    }
}

/// xorshift64*: a fixed, dependency-free random sequence.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_F491_4F6C_DD1D)
    }

    fn below(&mut self, n: usize) -> usize {
        (self.next() % n.max(1) as u64) as usize
    }
}

/// Bytes that matter to the parsers: JPEG markers, Y4M tags, lengths.
const INTERESTING: [u8; 12] = [
    0x00, 0xFF, 0xD8, 0xD9, 0xDA, 0xC0, 0xC4, 0xDB, 0xDD, 0x7F, 0x80, b'\n',
];

/// One to four random edits of `seed`, some spliced with `other`.
fn mutate(rng: &mut Rng, seed: &[u8], other: &[u8]) -> Vec<u8> {
    let mut v = seed.to_vec();
    for _ in 0..1 + rng.below(4) {
        let len = v.len();
        match rng.below(7) {
            0 if len > 0 => {
                let i = rng.below(len);
                v[i] ^= 1 << rng.below(8);
            }
            1 if len > 0 => {
                let i = rng.below(len);
                v[i] = INTERESTING[rng.below(INTERESTING.len())];
            }
            2 => v.truncate(rng.below(len + 1)),
            3 if len > 1 => {
                let a = rng.below(len);
                let b = (a + 1 + rng.below(64)).min(len);
                v.drain(a..b);
            }
            4 if len > 1 => {
                let a = rng.below(len);
                let b = (a + 1 + rng.below(256)).min(len);
                let chunk = v[a..b].to_vec();
                let at = rng.below(len + 1);
                v.splice(at..at, chunk);
            }
            5 if !other.is_empty() => {
                let cut = rng.below(len + 1);
                let from = rng.below(other.len());
                v.truncate(cut);
                v.extend_from_slice(&other[from..]);
            }
            _ => {
                let at = rng.below(len + 1);
                let n = 1 + rng.below(8);
                let bytes: Vec<u8> = (0..n).map(|_| rng.next() as u8).collect();
                v.splice(at..at, bytes);
            }
        }
    }
    v
}

/// Seeds, regression inputs, then the mutants, through target `name`.
fn replay(name: &str, rng_seed: u64) {
    let f = target(name);
    let seeds = files("seeds", name);
    assert!(!seeds.is_empty(), "no seeds in fuzz/seeds/{name}");
    for (path, bytes) in seeds.iter().chain(&files("regressions", name)) {
        run_named(f, bytes, &|| path.display().to_string());
    }
    let mut rng = Rng(rng_seed);
    for i in 0..MUTANTS {
        let a = rng.below(seeds.len());
        let b = rng.below(seeds.len());
        let input = mutate(&mut rng, &seeds[a].1, &seeds[b].1);
        run_named(f, &input, &|| {
            format!(
                "{name} mutant {i} of {} (seed {rng_seed:#x})",
                seeds[a].0.display()
            )
        });
    }
}

#[test]
fn preprocess_every_format_survives_seeds_and_mutants() {
    replay("preprocess", 0x9E37_79B9_7F4A_7C15);
}

#[test]
fn mjpeg_reader_survives_seeds_and_mutants() {
    replay("mjpeg", 0xD1B5_4A32_D192_ED03);
}

#[test]
fn y4m_reader_survives_seeds_and_mutants() {
    replay("y4m", 0x8CB9_2BA7_2F3D_8DD7);
}

#[test]
fn event_log_recovery_survives_seeds_and_mutants() {
    replay("eventlog", 0xA076_1D64_78BD_642F);
}

#[test]
fn state_files_survive_seeds_and_mutants() {
    replay("store", 0xE703_7ED1_A0B4_28DB);
}

#[test]
fn mqtt_log_reader_survives_seeds_and_mutants() {
    replay("tail", 0x5851_F42D_4C95_7F2D);
}

/// Found while writing the `y4m` harness (issue 24), and by the `y4m`
/// target itself after 49,854 executions (`fuzz/regressions/y4m/
/// found_by_fuzzer_header_tag_U+0204`): a Y4M header token that starts with a
/// multi-byte UTF-8 character panicked in `parse_y4m_header`, which split
/// the tag off with `split_at(1)` inside the character. The appliance build aborts on
/// a panic, so such a replay file restarted the service in a loop. An unknown
/// tag is ignored, as `I`, `A` and `X` are.
#[test]
fn y4m_header_token_starting_with_a_multibyte_character_is_ignored() {
    use mainstream::camera::replay::parse_y4m_header;
    let h = std::panic::catch_unwind(|| parse_y4m_header("YUV4MPEG2 W8 H6 \u{e9}x F25:1"))
        .expect("parse_y4m_header panicked")
        .expect("an unknown tag is ignored");
    assert_eq!((h.width, h.height, h.fps), (8, 6, Some(25.0)));
    let e = std::panic::catch_unwind(|| parse_y4m_header("YUV4MPEG2 \u{e9}8 H6"))
        .expect("parse_y4m_header panicked")
        .expect_err("no width");
    assert_eq!(e.kind(), mainstream::ErrorKind::InvalidConfig);
    for name in [
        "header_token_multibyte_first_char.y4m",
        "found_by_fuzzer_header_tag_U+0204",
    ] {
        let file = repo(&format!("fuzz/regressions/y4m/{name}"));
        let bytes = std::fs::read(&file).expect("regression input");
        run_named(target("y4m"), &bytes, &|| file.display().to_string());
    }
}

/// Found while writing the `tail` harness (issue 21): a delivery cursor
/// whose offset is near `u64::MAX` (a damaged or foreign `mqtt.cursor`) made
/// the MQTT publisher's reader overflow `offset + 8` (a panic with overflow
/// checks, a wrapped read position without). Now such a cursor is not in
/// the file, and delivery starts at the oldest file's start.
#[test]
fn a_cursor_offset_near_the_end_of_u64_is_refused_without_overflow() {
    let input = std::fs::read(repo("fuzz/regressions/tail/cursor_offset_near_u64_max")).unwrap();
    assert_eq!(input[0], 3);
    assert_eq!(
        u64::from_le_bytes(input[1..9].try_into().unwrap()),
        u64::MAX - 2
    );
    run_named(target("tail"), &input, &|| {
        "cursor_offset_near_u64_max".to_owned()
    });
}
