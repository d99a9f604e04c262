//! `cli`: arbitrary bytes as the command line (without the program name).
//!
//! The input is split at NUL bytes into arguments, the way the kernel hands
//! them to a process; arguments need not be UTF-8. A refused command line
//! must be a usage error (exit 2), never an internal one, and an accepted one
//! must hold only values in the documented ranges.

#![no_main]

use libfuzzer_sys::fuzz_target;
use mainstream::cli::{self, Command};
use mainstream::ErrorKind;
use std::ffi::OsStr;
use std::os::unix::ffi::OsStrExt;

fuzz_target!(|data: &[u8]| {
    let args = if data.is_empty() {
        Vec::new()
    } else {
        data.split(|&b| b == 0)
            .map(|a| OsStr::from_bytes(a).to_owned())
            .collect()
    };
    match cli::parse(args) {
        Err(e) => {
            assert_eq!(e.kind(), ErrorKind::Usage, "{e}");
            assert!(!e.to_string().is_empty());
        }
        Ok(Command::Help(topic)) => {
            assert!(
                cli::help_for(topic.as_deref()).is_some(),
                "no help for {topic:?}"
            );
        }
        Ok(Command::Plan {
            budget: Some(b), ..
        }) => assert!(b > 0.0 && b <= 1024.0, "{b}"),
        Ok(Command::Simulate(s)) => assert!((1..=100_000).contains(&s.workloads), "{s:?}"),
        Ok(Command::Bench(b)) => {
            assert!(
                !b.apps.is_empty() && b.apps.iter().all(|n| (1..=64).contains(n)),
                "{b:?}"
            );
            assert!(!b.sharing.is_empty(), "{b:?}");
            assert!((1..=100_000).contains(&b.frames), "{b:?}");
            assert!((1..=100).contains(&b.runs), "{b:?}");
            assert!(!b.inputs.is_empty(), "{b:?}");
        }
        Ok(_) => {}
    }
});
