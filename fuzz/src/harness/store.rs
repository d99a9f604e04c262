//! `store`: any bytes as the service's state files, loaded by the functions
//! the service boots with: `state.bin` ([`state::load_state`]), `status.bin`
//! ([`state::load_status`]), `profile.bin` ([`profile::load`]) and the
//! planner table cached in `planner.bin` ([`PlannerTable::from_bytes`], then
//! evaluated).
//!
//! Input: byte 0 picks the file (bits 0-1) and whether the rest is the whole
//! file (bit 2 clear) or the postcard payload that the harness wraps in a
//! valid envelope of that file (bit 2 set: right magic, version, length and
//! CRC, so mutations reach the payload decoder instead of stopping at the
//! checksum); byte 1 the planning budget (0 to 6.3 cores).
//!
//! Checks: the state and the profile always load (damage moves the file
//! aside, `NAME.corrupt` with the same bytes, and starts from nothing); a
//! state file [`store::decode`] accepts is the state loaded and stays in
//! place; the status loads or fails as `CorruptState`; whatever is accepted
//! encodes to bytes that decode and encode to the same bytes again; a table
//! `from_bytes` accepts passes `check_invariants`, round-trips the same way
//! and can be evaluated without a panic.

use mainstream::daemon::state::{self, State, Status, STATE_MAGIC, STATE_VERSION};
use mainstream::planner::table::PlannerTable;
use mainstream::planner::Strategy;
use mainstream::profile::{self, Profile};
use mainstream::store;
use mainstream::ErrorKind;
use serde::de::DeserializeOwned;
use serde::Serialize;
use std::path::Path;
use std::sync::OnceLock;

/// The base network hash a profile is looked up for.
const SHA: &str = "0a1c6aeba5d0b88e0e6d5d1a5c73c5a1b37c76f1a5fe8d3ad4d6f2c7b9b3a1e0";

/// (magic, version) of the status and profile files, whose constants are
/// private: read from files the code itself writes.
fn envelopes() -> &'static ([u8; 6], [u8; 6]) {
    static E: OnceLock<([u8; 6], [u8; 6])> = OnceLock::new();
    E.get_or_init(|| {
        let dir = super::scratch::dir();
        state::save_status(&dir, &Status::default()).expect("writing a status");
        let profile = Profile {
            base_sha256: SHA.into(),
            cpu: profile::cpu_model(),
            segment_ms: vec![1.0],
            runs: 1,
            frames: Vec::new(),
        };
        profile::save(&dir, &profile).expect("writing a profile");
        let head = |name: &str| -> [u8; 6] {
            let b = std::fs::read(dir.join(name)).expect("reading back");
            b[..6].try_into().expect("an envelope header")
        };
        (head(state::STATUS_FILE), head(profile::FILE))
    })
}

fn wrap(head: &[u8; 6], payload: &[u8]) -> Vec<u8> {
    let mut out = head.to_vec();
    out.extend_from_slice(&(payload.len() as u32).to_le_bytes());
    out.extend_from_slice(&store::crc32(payload).to_le_bytes());
    out.extend_from_slice(payload);
    out
}

pub fn run(data: &[u8]) {
    let Some((&[b0, b1], rest)) = data.split_first_chunk::<2>() else {
        return;
    };
    let wrapped = b0 & 4 != 0;
    let (status_head, profile_head) = envelopes();
    let mut state_head = [0u8; 6];
    state_head[..4].copy_from_slice(&STATE_MAGIC);
    state_head[4..].copy_from_slice(&STATE_VERSION.to_le_bytes());
    match b0 & 3 {
        0 => {
            let bytes = if wrapped {
                wrap(&state_head, rest)
            } else {
                rest.to_vec()
            };
            check_state(&bytes);
        }
        1 => {
            let bytes = if wrapped {
                wrap(status_head, rest)
            } else {
                rest.to_vec()
            };
            let dir = super::scratch::dir();
            std::fs::write(state::status_path(&dir), &bytes).expect("writing");
            match state::load_status(&dir) {
                Ok(Some(s)) => round_trip(status_head, &s),
                Ok(None) => panic!("status.bin exists but loaded as missing"),
                Err(e) => assert_eq!(e.kind(), ErrorKind::CorruptState, "{e}"),
            }
        }
        2 => {
            let bytes = if wrapped {
                wrap(profile_head, rest)
            } else {
                rest.to_vec()
            };
            check_profile(profile_head, &bytes);
        }
        _ => check_table(rest, f64::from(b1) / 40.0),
    }
}

/// `decode(encode(v))` encodes to the same bytes (compared as bytes: plans
/// hold floats, and NaN is not equal to itself).
fn round_trip<T: Serialize + DeserializeOwned>(head: &[u8; 6], v: &T) {
    let magic = head[..4].try_into().expect("4 bytes");
    let version = u16::from_le_bytes([head[4], head[5]]);
    let bytes = store::encode(magic, version, v).expect("encoding what was decoded");
    let back: T = store::decode(magic, version, &bytes).expect("decoding what was encoded");
    let again = store::encode(magic, version, &back).expect("encoding again");
    assert_eq!(bytes, again, "encode/decode is not stable");
}

fn check_state(bytes: &[u8]) {
    let dir = super::scratch::dir();
    let path = state::state_path(&dir);
    std::fs::write(&path, bytes).expect("writing");
    let direct = store::decode::<State>(STATE_MAGIC, STATE_VERSION, bytes);
    let loaded = match state::load_state(&dir) {
        Ok(s) => s,
        Err(e) => panic!("the service refuses to boot over its state: {e}"),
    };
    match direct {
        Ok(s) => {
            assert_eq!(encode_state(&loaded), encode_state(&s));
            assert_eq!(std::fs::read(&path).expect("still there"), bytes);
            let mut head = [0u8; 6];
            head[..4].copy_from_slice(&STATE_MAGIC);
            head[4..].copy_from_slice(&STATE_VERSION.to_le_bytes());
            round_trip(&head, &s);
        }
        Err(e) => {
            assert_eq!(e.kind(), ErrorKind::CorruptState, "{e}");
            assert_eq!(loaded, State::default());
            quarantined(&path, bytes);
        }
    }
}

fn encode_state(s: &State) -> Vec<u8> {
    store::encode(STATE_MAGIC, STATE_VERSION, s).expect("encoding a state")
}

fn quarantined(path: &Path, bytes: &[u8]) {
    assert!(!path.exists(), "{} left in place", path.display());
    let mut aside = path.as_os_str().to_owned();
    aside.push(".corrupt");
    assert_eq!(std::fs::read(&aside).expect("moved aside"), bytes);
}

fn check_profile(head: &[u8; 6], bytes: &[u8]) {
    let dir = super::scratch::dir();
    let path = dir.join(profile::FILE);
    std::fs::write(&path, bytes).expect("writing");
    let magic = head[..4].try_into().expect("4 bytes");
    let version = u16::from_le_bytes([head[4], head[5]]);
    let direct = store::decode::<Profile>(magic, version, bytes);
    let loaded = match profile::load(&dir, SHA) {
        Ok(p) => p,
        Err(e) => panic!("loading a profile failed: {e}"),
    };
    match direct {
        Ok(p) => {
            let mine = p.base_sha256 == SHA && p.cpu == profile::cpu_model();
            assert_eq!(loaded.is_some(), mine);
            round_trip(head, &p);
        }
        Err(_) => match store::decode::<ProfileV2>(magic, 2, bytes) {
            // A version 2 profile is read without frame costs, not moved aside.
            Ok(p) => {
                let mine = p.base_sha256 == SHA && p.cpu == profile::cpu_model();
                assert_eq!(loaded.is_some(), mine);
                if let Some(l) = loaded {
                    let bits = |v: &[f64]| v.iter().map(|x| x.to_bits()).collect::<Vec<_>>();
                    assert_eq!(bits(&l.segment_ms), bits(&p.segment_ms));
                    assert_eq!(l.runs, p.runs);
                    assert!(l.frames.is_empty());
                }
                assert_eq!(std::fs::read(&path).expect("left in place"), bytes);
            }
            Err(_) => {
                assert!(loaded.is_none());
                quarantined(&path, bytes);
            }
        },
    }
}

/// A version 2 profile (before frame costs), as `profile::load` reads it.
#[derive(serde::Deserialize)]
struct ProfileV2 {
    base_sha256: String,
    cpu: String,
    segment_ms: Vec<f64>,
    runs: u32,
}

fn check_table(bytes: &[u8], budget: f64) {
    let Ok(t) = PlannerTable::from_bytes(bytes) else {
        return;
    };
    t.check_invariants()
        .expect("from_bytes returns checked tables");
    let again = t.to_bytes().expect("encoding a table");
    let t2 = PlannerTable::from_bytes(&again).expect("a table encoded by us loads");
    assert_eq!(again, t2.to_bytes().expect("encoding again"));
    for strategy in [Strategy::Greedy, Strategy::MaxMin] {
        let _ = t.evaluate(budget, strategy);
    }
}
