//! Phase specs (`touch:4k:64m:2m`, `decode-off`, ...) and byte sizes, parsed strictly.

use std::fmt;

use thiserror::Error;

pub const PAGE: u64 = 4096;
pub const GIB: u64 = 1 << 30;

#[derive(Debug, Error, PartialEq, Eq)]
pub enum SpecError {
    #[error("bad size '{0}': expected bytes or a number with a k, m or g suffix")]
    Size(String),
    #[error("bad phase '{spec}': {why}")]
    Phase { spec: String, why: String },
}

/// Parses `4096`, `4k`, `64m`, `1g` (powers of 1024). Zero is refused.
pub fn parse_size(s: &str) -> Result<u64, SpecError> {
    let bad = || SpecError::Size(s.to_owned());
    let (digits, shift) = match s.as_bytes().last() {
        Some(b'k' | b'K') => (&s[..s.len() - 1], 10),
        Some(b'm' | b'M') => (&s[..s.len() - 1], 20),
        Some(b'g' | b'G') => (&s[..s.len() - 1], 30),
        _ => (s, 0),
    };
    // u64::from_str accepts a leading '+'; a size is digits only.
    if digits.is_empty() || !digits.bytes().all(|b| b.is_ascii_digit()) {
        return Err(bad());
    }
    let n: u64 = digits.parse().map_err(|_| bad())?;
    let bytes = n.checked_mul(1u64 << shift).ok_or_else(bad)?;
    if bytes == 0 {
        return Err(bad());
    }
    Ok(bytes)
}

/// What a touch walks: `size` bytes of the BAR from offset 0, one read per `stride`,
/// through a mapping of `map` bytes (at least `size`; a VMM maps the whole BAR
/// while its guest touches part of it) at an address aligned to exactly
/// `align` when given.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Walk {
    pub stride: u64,
    pub size: u64,
    pub align: Option<u64>,
    pub map: u64,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Phase {
    Touch(Walk),
    Refault(Walk),
    /// `VFIO_IOMMU_MAP_DMA` of the walk's mapping, as a VMM maps a BAR for
    /// peer-to-peer DMA; the stride is always 4 KiB (type1 pins every page).
    DmaMap(Walk),
    DecodeOff,
    DecodeOn,
    Sigbus {
        size: u64,
    },
    Reset,
    Sleep {
        ms: u64,
    },
    Contend {
        threads: u32,
        resets: u32,
        size: u64,
    },
}

impl Phase {
    /// Bytes of the BAR this phase maps, to check against the BAR size.
    pub fn mapped_size(&self) -> Option<u64> {
        match self {
            Phase::Touch(w) | Phase::Refault(w) | Phase::DmaMap(w) => Some(w.map),
            Phase::Sigbus { size } | Phase::Contend { size, .. } => Some(*size),
            _ => None,
        }
    }
}

/// A phase as typed and as understood.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PhaseSpec {
    pub text: String,
    pub phase: Phase,
}

impl fmt::Display for PhaseSpec {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.text)
    }
}

pub const PHASE_HELP: &str = "touch:STRIDE:SIZE[:ALIGN[:MAP]], refault:STRIDE:SIZE[:ALIGN[:MAP]], \
     dma-map:SIZE[:ALIGN[:MAP]], decode-off, decode-on, sigbus:SIZE, reset, sleep:MS, contend:THREADS:RESETS:SIZE";

impl PhaseSpec {
    pub fn parse(text: &str) -> Result<Self, SpecError> {
        let fail = |why: String| SpecError::Phase {
            spec: text.to_owned(),
            why,
        };
        let size = |s: &str| parse_size(s).map_err(|e| fail(e.to_string()));
        let mut parts = text.split(':');
        let name = parts.next().unwrap_or_default();
        let args: Vec<&str> = parts.collect();
        let want = |n: usize, usage: &str| {
            if args.len() == n {
                Ok(())
            } else {
                Err(fail(format!("expected {usage}")))
            }
        };
        // SIZE[:ALIGN[:MAP]]; an empty ALIGN (`touch:4k:64m::1g`) leaves the
        // address to mmap.
        let walk = |stride: u64, rest: &[&str]| -> Result<Walk, SpecError> {
            let touched = size(rest[0])?;
            let align = match rest.get(1) {
                Some(a) if !a.is_empty() => Some(size(a)?),
                _ => None,
            };
            let walk = Walk {
                stride,
                size: touched,
                align,
                map: rest.get(2).map_or(Ok(touched), |m| size(m))?,
            };
            check_walk(&walk).map_err(fail)?;
            Ok(walk)
        };
        let phase = match name {
            "touch" | "refault" => {
                if !(2..=4).contains(&args.len()) {
                    return Err(fail(format!("expected {name}:STRIDE:SIZE[:ALIGN[:MAP]]")));
                }
                let walk = walk(size(args[0])?, &args[1..])?;
                if name == "touch" {
                    Phase::Touch(walk)
                } else {
                    Phase::Refault(walk)
                }
            }
            "dma-map" => {
                if !(1..=3).contains(&args.len()) {
                    return Err(fail("expected dma-map:SIZE[:ALIGN[:MAP]]".to_owned()));
                }
                Phase::DmaMap(walk(PAGE, &args)?)
            }
            "sigbus" => {
                want(1, "sigbus:SIZE")?;
                let size = size(args[0])?;
                check_page_multiple("size", size).map_err(fail)?;
                Phase::Sigbus { size }
            }
            "sleep" => {
                want(1, "sleep:MS")?;
                let ms = args[0]
                    .parse()
                    .ok()
                    .filter(|_| args[0].bytes().all(|b| b.is_ascii_digit()))
                    .ok_or_else(|| {
                        fail(format!("'{}' is not a number of milliseconds", args[0]))
                    })?;
                Phase::Sleep { ms }
            }
            "contend" => {
                want(3, "contend:THREADS:RESETS:SIZE")?;
                let count = |s: &str, what: &str, max: u32| {
                    s.parse::<u32>()
                        .ok()
                        .filter(|n| (1..=max).contains(n) && s.bytes().all(|b| b.is_ascii_digit()))
                        .ok_or_else(|| {
                            fail(format!("'{s}' is not a number of {what} from 1 to {max}"))
                        })
                };
                let size = size(args[2])?;
                check_page_multiple("size", size).map_err(fail)?;
                Phase::Contend {
                    threads: count(args[0], "threads", 64)?,
                    resets: count(args[1], "resets", 1000)?,
                    size,
                }
            }
            "decode-off" => want(0, "decode-off").map(|()| Phase::DecodeOff)?,
            "decode-on" => want(0, "decode-on").map(|()| Phase::DecodeOn)?,
            "reset" => want(0, "reset").map(|()| Phase::Reset)?,
            _ => return Err(fail(format!("unknown phase; expected one of {PHASE_HELP}"))),
        };
        Ok(Self {
            text: text.to_owned(),
            phase,
        })
    }
}

fn check_page_multiple(what: &str, n: u64) -> Result<(), String> {
    if n.is_multiple_of(PAGE) {
        Ok(())
    } else {
        Err(format!("{what} {n} is not a multiple of 4096"))
    }
}

fn check_walk(w: &Walk) -> Result<(), String> {
    check_page_multiple("stride", w.stride)?;
    check_page_multiple("size", w.size)?;
    check_page_multiple("mapping size", w.map)?;
    if w.stride > w.size {
        return Err(format!(
            "stride {} is larger than size {}",
            w.stride, w.size
        ));
    }
    if w.map < w.size {
        return Err(format!(
            "mapping size {} is smaller than the {} bytes touched",
            w.map, w.size
        ));
    }
    if let Some(a) = w.align
        && (!a.is_power_of_two() || !(PAGE..=GIB).contains(&a))
    {
        return Err(format!("alignment {a} is not a power of two from 4k to 1g"));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn phase(s: &str) -> Phase {
        PhaseSpec::parse(s).expect("valid spec").phase
    }

    fn why(s: &str) -> String {
        PhaseSpec::parse(s).expect_err("invalid spec").to_string()
    }

    #[test]
    fn sizes() {
        assert_eq!(parse_size("4096"), Ok(4096));
        assert_eq!(parse_size("4k"), Ok(4096));
        assert_eq!(parse_size("64M"), Ok(64 << 20));
        assert_eq!(parse_size("1g"), Ok(1 << 30));
        assert_eq!(parse_size("32g"), Ok(32 << 30));
        for bad in [
            "",
            "k",
            "0",
            "0k",
            "-4k",
            "+4k",
            "4kb",
            "4 k",
            "1.5m",
            "4t",
            "99999999999999g",
        ] {
            assert_eq!(parse_size(bad), Err(SpecError::Size(bad.into())), "{bad}");
        }
    }

    #[test]
    fn touch_and_refault() {
        let w = |stride, size, align| Walk {
            stride,
            size,
            align,
            map: size,
        };
        assert_eq!(
            phase("touch:4k:64m:4k"),
            Phase::Touch(w(4096, 64 << 20, Some(4096)))
        );
        assert_eq!(
            phase("touch:2m:1g:1g"),
            Phase::Touch(w(2 << 20, GIB, Some(GIB)))
        );
        assert_eq!(
            phase("refault:4k:4m"),
            Phase::Refault(w(4096, 4 << 20, None))
        );
        assert_eq!(
            phase("touch:4k:64m:2m:1g"),
            Phase::Touch(Walk {
                map: GIB,
                ..w(4096, 64 << 20, Some(2 << 20))
            })
        );
        assert_eq!(
            phase("touch:4k:64m::1g"),
            Phase::Touch(Walk {
                map: GIB,
                ..w(4096, 64 << 20, None)
            })
        );
    }

    #[test]
    fn dma_map() {
        let w = |size, align, map| Walk {
            stride: PAGE,
            size,
            align,
            map,
        };
        assert_eq!(
            phase("dma-map:64m"),
            Phase::DmaMap(w(64 << 20, None, 64 << 20))
        );
        assert_eq!(
            phase("dma-map:64m:2m"),
            Phase::DmaMap(w(64 << 20, Some(2 << 20), 64 << 20))
        );
        assert_eq!(
            phase("dma-map:64m:4k:1g"),
            Phase::DmaMap(w(64 << 20, Some(PAGE), GIB))
        );
        assert_eq!(phase("dma-map:4k::1g"), Phase::DmaMap(w(PAGE, None, GIB)));
        assert_eq!(phase("dma-map:1g:1g").mapped_size(), Some(GIB));
        let usage = "bad phase 'dma-map': expected dma-map:SIZE[:ALIGN[:MAP]]";
        assert_eq!(why("dma-map"), usage);
        assert!(why("dma-map:64m:4k:1g:1").ends_with("expected dma-map:SIZE[:ALIGN[:MAP]]"));
        assert_eq!(
            why("dma-map:6000"),
            "bad phase 'dma-map:6000': size 6000 is not a multiple of 4096"
        );
        assert_eq!(
            why("dma-map:64m:3m"),
            "bad phase 'dma-map:64m:3m': alignment 3145728 is not a power of two from 4k to 1g"
        );
        assert_eq!(
            why("dma-map:64m:4k:32m"),
            "bad phase 'dma-map:64m:4k:32m': mapping size 33554432 is smaller than the \
             67108864 bytes touched"
        );
        assert_eq!(
            why("dma-map:64x"),
            "bad phase 'dma-map:64x': bad size '64x': expected bytes or a number with a k, m \
             or g suffix"
        );
        assert!(why("dma-map:").contains("bad size ''"));
        assert!(why("dma").contains("dma-map:SIZE[:ALIGN[:MAP]]"));
    }

    #[test]
    fn simple_phases() {
        assert_eq!(phase("decode-off"), Phase::DecodeOff);
        assert_eq!(phase("decode-on"), Phase::DecodeOn);
        assert_eq!(phase("reset"), Phase::Reset);
        assert_eq!(phase("sigbus:4k"), Phase::Sigbus { size: 4096 });
        assert_eq!(phase("sleep:250"), Phase::Sleep { ms: 250 });
        assert_eq!(
            phase("contend:4:10:4m"),
            Phase::Contend {
                threads: 4,
                resets: 10,
                size: 4 << 20
            }
        );
        for bad in [
            "contend:0:1:4m",
            "contend:4:1",
            "contend:x:1:4m",
            "contend:4:1:5000",
        ] {
            assert!(PhaseSpec::parse(bad).is_err(), "{bad} should be refused");
        }
    }

    #[test]
    fn bad_specs() {
        assert!(why("touch:4k").contains("expected touch:STRIDE:SIZE[:ALIGN[:MAP]]"));
        assert!(why("touch:4k:64m:4k:1g:1").contains("expected touch:STRIDE:SIZE[:ALIGN[:MAP]]"));
        assert!(
            why("touch:4k:64m:4k:32m")
                .contains("mapping size 33554432 is smaller than the 67108864 bytes touched")
        );
        assert!(
            why("touch:4k:64m:4k:6000").contains("mapping size 6000 is not a multiple of 4096")
        );
        assert!(why("touch:100:64m").contains("stride 100 is not a multiple of 4096"));
        assert!(why("touch:4k:6000").contains("size 6000 is not a multiple of 4096"));
        assert!(why("touch:8k:4k").contains("stride 8192 is larger than size 4096"));
        assert!(why("touch:4k:64m:3m").contains("not a power of two"));
        assert!(why("touch:4k:64m:2g").contains("not a power of two from 4k to 1g"));
        assert!(why("touch:4k:64x").contains("bad size '64x'"));
        assert!(why("decode-off:1").contains("expected decode-off"));
        assert!(why("reset:now").contains("expected reset"));
        assert!(why("sigbus").contains("expected sigbus:SIZE"));
        assert!(why("sigbus:100").contains("not a multiple of 4096"));
        assert!(why("sleep:-1").contains("not a number of milliseconds"));
        assert!(why("poke").starts_with("bad phase 'poke': unknown phase"));
        assert!(why("").starts_with("bad phase '': unknown phase"));
    }
}
