//! Which kernels a network runs (issue 23): our AVX-512F tiles, our
//! AVX2+FMA tiles, our NEON tiles, our portable rows, or tract's stock
//! kernels only.
//!
//! The best path this CPU runs is chosen at run time (on x86_64 AVX-512F
//! first, then AVX2 with FMA, else portable; on aarch64 NEON);
//! `MAINSTREAM_KERNEL=avx512|avx2|neon|portable|stock` forces one, read once
//! per network build. `MAINSTREAM_STOCK_ENGINE=1` (the older switch) is an
//! alias of `stock`. A forced path the CPU lacks is refused with a
//! configuration error, never run.
//!
//! On a CPU with none of those (an x86_64 without AVX2+FMA, another
//! architecture) the unforced choice is `portable`, which there keeps
//! tract's kernels for the 1x1 and first convolutions (tract has its own
//! SIMD ones) and runs only our depthwise op; forced `portable` runs our
//! portable pointwise rows too.

use crate::error::Result;

/// The environment variable that forces a path.
pub const KERNEL_ENV: &str = "MAINSTREAM_KERNEL";

/// One way of running a network's convolutions.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum KernelPath {
    /// Our ops, pointwise and im2col tiles in AVX-512F (x86_64).
    Avx512,
    /// Our ops, pointwise and im2col tiles in AVX2 with FMA (x86_64).
    Avx2,
    /// Our ops, pointwise and im2col tiles in NEON (aarch64).
    Neon,
    /// Our ops, plain Rust rows (any CPU).
    Portable,
    /// tract's own kernels, none of our rewrites.
    Stock,
}

impl KernelPath {
    /// Every path, fastest first.
    pub const ALL: [KernelPath; 5] = [
        KernelPath::Avx512,
        KernelPath::Avx2,
        KernelPath::Neon,
        KernelPath::Portable,
        KernelPath::Stock,
    ];

    /// The name `MAINSTREAM_KERNEL` and `bench --json` use.
    pub fn name(self) -> &'static str {
        match self {
            KernelPath::Avx512 => "avx512",
            KernelPath::Avx2 => "avx2",
            KernelPath::Neon => "neon",
            KernelPath::Portable => "portable",
            KernelPath::Stock => "stock",
        }
    }

    /// The path named `s` (as [`KernelPath::name`] spells it).
    pub fn parse(s: &str) -> Option<KernelPath> {
        KernelPath::ALL.into_iter().find(|p| p.name() == s)
    }

    /// Whether this CPU runs the path.
    pub fn supported(self) -> bool {
        match self {
            KernelPath::Avx512 => avx512(),
            KernelPath::Avx2 => avx2_fma(),
            KernelPath::Neon => neon(),
            KernelPath::Portable | KernelPath::Stock => true,
        }
    }

    /// The fastest path this CPU runs.
    pub fn best() -> KernelPath {
        KernelPath::ALL
            .into_iter()
            .find(|p| p.supported())
            .unwrap_or(KernelPath::Portable)
    }

    /// The path the environment forces (`MAINSTREAM_KERNEL`, else
    /// `MAINSTREAM_STOCK_ENGINE=1`), `None` where it forces none (then
    /// [`KernelPath::best`] runs). An unknown name or a path this CPU lacks
    /// is a configuration error.
    pub fn from_env() -> Result<Option<KernelPath>> {
        let kernel = std::env::var(KERNEL_ENV).ok();
        let stock = std::env::var_os("MAINSTREAM_STOCK_ENGINE").is_some_and(|v| v == "1");
        KernelPath::choose(kernel.as_deref(), stock)
    }

    /// [`KernelPath::from_env`] on given values: `kernel` is the value of
    /// `MAINSTREAM_KERNEL` (empty or absent: not set), `stock` whether
    /// `MAINSTREAM_STOCK_ENGINE=1`.
    pub fn choose(kernel: Option<&str>, stock: bool) -> Result<Option<KernelPath>> {
        let asked = match kernel.map(str::trim).filter(|k| !k.is_empty()) {
            Some(name) => KernelPath::parse(name).ok_or_else(|| {
                crate::err!(
                    InvalidConfig,
                    "{KERNEL_ENV}={name}: unknown kernel path (one of {})",
                    KernelPath::ALL.map(KernelPath::name).join(", ")
                )
            })?,
            None if stock => KernelPath::Stock,
            None => return Ok(None),
        };
        if !asked.supported() {
            crate::bail!(
                InvalidConfig,
                "{KERNEL_ENV}={}: this CPU lacks {} (paths it runs: {})",
                asked.name(),
                match asked {
                    KernelPath::Avx512 => "AVX-512F",
                    KernelPath::Neon => "NEON (an aarch64 CPU)",
                    _ => "AVX2 with FMA",
                },
                KernelPath::ALL
                    .into_iter()
                    .filter(|p| p.supported())
                    .map(KernelPath::name)
                    .collect::<Vec<_>>()
                    .join(", ")
            );
        }
        Ok(Some(asked))
    }
}

/// x86_64 with AVX-512F.
fn avx512() -> bool {
    #[cfg(target_arch = "x86_64")]
    {
        std::arch::is_x86_feature_detected!("avx512f")
    }
    #[cfg(not(target_arch = "x86_64"))]
    {
        false
    }
}

/// x86_64 with AVX2 and FMA.
fn avx2_fma() -> bool {
    #[cfg(target_arch = "x86_64")]
    {
        std::arch::is_x86_feature_detected!("avx2") && std::arch::is_x86_feature_detected!("fma")
    }
    #[cfg(not(target_arch = "x86_64"))]
    {
        false
    }
}

/// aarch64 with NEON (every aarch64 Linux CPU has it; asked anyway).
fn neon() -> bool {
    #[cfg(target_arch = "aarch64")]
    {
        std::arch::is_aarch64_feature_detected!("neon")
    }
    #[cfg(not(target_arch = "aarch64"))]
    {
        false
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn neon_is_the_best_path_on_aarch64_and_refused_elsewhere() {
        let neon = KernelPath::choose(Some("neon"), false);
        if cfg!(target_arch = "aarch64") {
            assert_eq!(KernelPath::best(), KernelPath::Neon);
            assert_eq!(neon.unwrap(), Some(KernelPath::Neon));
        } else {
            assert_ne!(KernelPath::best(), KernelPath::Neon);
            let e = neon.unwrap_err();
            assert_eq!(e.kind(), crate::ErrorKind::InvalidConfig);
            assert!(e.to_string().contains("this CPU lacks NEON"), "{e}");
        }
    }

    #[test]
    fn every_path_is_named_and_parsed_back() {
        for p in KernelPath::ALL {
            assert_eq!(KernelPath::parse(p.name()), Some(p));
        }
        assert_eq!(KernelPath::parse("AVX2"), None);
    }

    #[test]
    fn the_switch_forces_a_path_and_the_old_one_is_an_alias_of_stock() {
        assert_eq!(KernelPath::choose(None, false).unwrap(), None);
        assert_eq!(KernelPath::choose(Some(""), false).unwrap(), None);
        assert_eq!(
            KernelPath::choose(None, true).unwrap(),
            Some(KernelPath::Stock)
        );
        assert_eq!(
            KernelPath::choose(Some("portable"), true).unwrap(),
            Some(KernelPath::Portable)
        );
        assert_eq!(
            KernelPath::choose(Some("stock"), false).unwrap(),
            Some(KernelPath::Stock)
        );
    }

    #[test]
    fn an_unknown_or_unsupported_path_is_a_config_error() {
        let e = KernelPath::choose(Some("sve"), false).unwrap_err();
        assert_eq!(e.kind(), crate::ErrorKind::InvalidConfig);
        assert!(e.to_string().contains("MAINSTREAM_KERNEL=sve"), "{e}");
        assert!(e.to_string().contains("avx2, neon, portable"), "{e}");
        for p in KernelPath::ALL {
            match KernelPath::choose(Some(p.name()), false) {
                Ok(got) => assert!(p.supported() && got == Some(p)),
                Err(e) => {
                    assert!(!p.supported());
                    assert_eq!(e.kind(), crate::ErrorKind::InvalidConfig);
                    assert!(e.to_string().contains("this CPU lacks"), "{e}");
                }
            }
        }
    }
}
