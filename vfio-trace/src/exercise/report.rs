//! What an exercise did, as one JSON object (`--json`) or as lines of text.
//!
//! The JSON object:
//! - `device`: the PCI address, `bar`: the BAR index, `bar_size`: its bytes,
//!   `pid`: this process (every fault except sigbus's happens in it).
//! - `phases`: one object per phase done, in order, tagged by `phase`
//!   (`touch`, `refault`, `dma-map`, `decode-off`, `decode-on`, `sigbus`, `reset`,
//!   `sleep`, `contend`),
//!   each with `spec` (as typed) and `elapsed_ns`:
//!   - touch: `map_addr`, `map_align` (largest power of two dividing `map_addr`,
//!     capped at 1 GiB), `size` and `stride` in bytes, `touches` (u32 reads, one per
//!     stride step), `expected` (`order0`, `order9`, `order18`: faults a kernel
//!     from 6.12 on should take; a hint, tracing says what happened). `elapsed_ns`
//!     is the reads only.
//!   - refault: the same mapping fields, `touches_first` and `touches_second` (the
//!     passes before and after the zap), `decode_toggles` (2), `first_ns`,
//!     `zap_ns` (both `PCI_COMMAND` writes), `second_ns`.
//!   - dma-map: the same mapping fields (`stride` is 4096: type1 pins every page,
//!     so `expected` is a 4 KiB walk's), `dma_size` and `iova` (what was
//!     DMA-mapped), `map_dma_ns` (the `VFIO_IOMMU_MAP_DMA` ioctl, which faults the
//!     BAR in), `unmap_dma_ns` (`VFIO_IOMMU_UNMAP_DMA`); `elapsed_ns` is both
//!     ioctls and the munmap.
//!   - decode-off / decode-on: `command_before`, `command_after` (`PCI_COMMAND` read
//!     back after the write).
//!   - sigbus: `map_addr`, `size`, `child_pid` (the process that touched and took
//!     the fault), `sigbus_touches` (1), `sigbus` (whether the child died of SIGBUS),
//!     `child_status` (`SIGBUS`, `exit N` or `signal N`).
//!   - reset, sleep: `elapsed_ns` only.
//! - `totals`: `touches` (BAR reads in this process), `decode_toggles` (`PCI_COMMAND`
//!   writes), `decode_off` (those leaving memory decode off: each zaps the BAR's
//!   mappings), `resets`, `sigbus_touches`, `mmaps` (BAR mmaps made), `dma_maps`
//!   (`VFIO_IOMMU_MAP_DMA` calls that succeeded).
//! - `error`: present when a phase failed; the phases before it are all there.

use std::fmt::Write;

use serde::Serialize;

use super::layout::Expected;
use crate::device::Bdf;

#[derive(Debug, Serialize)]
pub struct Report {
    pub device: Bdf,
    pub bar: u32,
    pub bar_size: u64,
    pub pid: u32,
    pub phases: Vec<PhaseReport>,
    pub totals: Totals,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub error: Option<String>,
}

#[derive(Debug, Default, Clone, Copy, Serialize)]
pub struct Totals {
    pub touches: u64,
    pub decode_toggles: u64,
    pub decode_off: u64,
    pub resets: u64,
    pub sigbus_touches: u64,
    pub mmaps: u64,
    pub dma_maps: u64,
}

#[derive(Debug, Serialize)]
#[serde(tag = "phase", rename_all = "kebab-case")]
pub enum PhaseReport {
    Touch(Touch),
    Refault(Refault),
    DmaMap(DmaMap),
    DecodeOff(Decode),
    DecodeOn(Decode),
    Sigbus(Sigbus),
    Reset(Timed),
    Sleep(Timed),
    Contend(super::contend::Contend),
}

/// Where a walk's mapping landed and what it should cost.
#[derive(Debug, Serialize)]
pub struct MapInfo {
    pub map_addr: u64,
    pub map_align: u64,
    /// Bytes mapped.
    pub size: u64,
    /// Bytes walked from the start of the mapping.
    pub touched: u64,
    pub stride: u64,
    pub expected: Expected,
}

#[derive(Debug, Serialize)]
pub struct Touch {
    pub spec: String,
    #[serde(flatten)]
    pub map: MapInfo,
    pub touches: u64,
    pub elapsed_ns: u64,
}

#[derive(Debug, Serialize)]
pub struct Refault {
    pub spec: String,
    #[serde(flatten)]
    pub map: MapInfo,
    pub touches_first: u64,
    pub touches_second: u64,
    pub decode_toggles: u64,
    pub first_ns: u64,
    pub zap_ns: u64,
    pub second_ns: u64,
    pub elapsed_ns: u64,
}

#[derive(Debug, Serialize)]
pub struct DmaMap {
    pub spec: String,
    #[serde(flatten)]
    pub map: MapInfo,
    pub dma_size: u64,
    pub iova: u64,
    pub map_dma_ns: u64,
    pub unmap_dma_ns: u64,
    pub elapsed_ns: u64,
}

#[derive(Debug, Serialize)]
pub struct Decode {
    pub spec: String,
    pub command_before: u16,
    pub command_after: u16,
    pub elapsed_ns: u64,
}

#[derive(Debug, Serialize)]
#[allow(
    clippy::struct_field_names,
    reason = "the field names are the JSON's keys"
)]
pub struct Sigbus {
    pub spec: String,
    pub map_addr: u64,
    pub size: u64,
    pub child_pid: i32,
    pub sigbus_touches: u64,
    pub sigbus: bool,
    pub child_status: String,
    pub elapsed_ns: u64,
}

#[derive(Debug, Serialize)]
pub struct Timed {
    pub spec: String,
    pub elapsed_ns: u64,
}

fn ms(ns: u64) -> String {
    format!("{:.3} ms", ns as f64 / 1e6)
}

fn map_line(out: &mut String, m: &MapInfo) {
    let e = &m.expected;
    let _ = write!(
        out,
        " map={:#x} align={} size={} touched={} stride={} expected(>=6.12) order0={} order9={} order18={}",
        m.map_addr, m.map_align, m.size, m.touched, m.stride, e.order0, e.order9, e.order18
    );
}

impl PhaseReport {
    /// One line of text for a phase.
    pub fn line(&self) -> String {
        let mut out = String::new();
        match self {
            PhaseReport::Touch(t) => {
                let _ = write!(out, "{}: touches={}", t.spec, t.touches);
                map_line(&mut out, &t.map);
                let _ = write!(out, " in {}", ms(t.elapsed_ns));
            }
            PhaseReport::Refault(r) => {
                let _ = write!(
                    out,
                    "{}: touches={}+{} decode_toggles={}",
                    r.spec, r.touches_first, r.touches_second, r.decode_toggles
                );
                map_line(&mut out, &r.map);
                let _ = write!(
                    out,
                    " first {} zap {} second {}",
                    ms(r.first_ns),
                    ms(r.zap_ns),
                    ms(r.second_ns)
                );
            }
            PhaseReport::DmaMap(d) => {
                let _ = write!(
                    out,
                    "{}: dma_size={} iova={:#x}",
                    d.spec, d.dma_size, d.iova
                );
                map_line(&mut out, &d.map);
                let _ = write!(
                    out,
                    " map_dma {} unmap_dma {}",
                    ms(d.map_dma_ns),
                    ms(d.unmap_dma_ns)
                );
            }
            PhaseReport::DecodeOff(d) | PhaseReport::DecodeOn(d) => {
                let _ = write!(
                    out,
                    "{}: PCI_COMMAND {:#06x} -> {:#06x} in {}",
                    d.spec,
                    d.command_before,
                    d.command_after,
                    ms(d.elapsed_ns)
                );
            }
            PhaseReport::Sigbus(s) => {
                let _ = write!(
                    out,
                    "{}: child {} touched {:#x} once: {}",
                    s.spec, s.child_pid, s.map_addr, s.child_status
                );
            }
            PhaseReport::Reset(t) | PhaseReport::Sleep(t) => {
                let _ = write!(out, "{}: done in {}", t.spec, ms(t.elapsed_ns));
            }
            PhaseReport::Contend(c) => {
                let _ = write!(
                    out,
                    "{}: {} threads, {} resets, touches {:?} in {}",
                    c.spec,
                    c.threads,
                    c.resets,
                    c.touches,
                    ms(c.elapsed_ns)
                );
            }
        }
        out
    }
}

impl Report {
    pub fn header(&self) -> String {
        format!(
            "{} BAR{} ({} bytes), pid {}",
            self.device, self.bar, self.bar_size, self.pid
        )
    }

    pub fn footer(&self) -> String {
        let t = &self.totals;
        format!(
            "totals: touches={} decode_toggles={} decode_off={} resets={} sigbus_touches={} mmaps={} dma_maps={}",
            t.touches,
            t.decode_toggles,
            t.decode_off,
            t.resets,
            t.sigbus_touches,
            t.mmaps,
            t.dma_maps
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A report of device 1:00.0's 1 GiB BAR 2.
    fn report(phases: Vec<PhaseReport>, totals: Totals, error: Option<String>) -> Report {
        Report {
            device: Bdf::parse("1:00.0").expect("valid address"),
            bar: 2,
            bar_size: 1 << 30,
            pid: 42,
            phases,
            totals,
            error,
        }
    }

    #[test]
    fn json_shape() {
        let report = report(
            vec![
                PhaseReport::Touch(Touch {
                    spec: "touch:4k:64m:4k".into(),
                    map: MapInfo {
                        map_addr: 0x1000,
                        map_align: 4096,
                        size: 64 << 20,
                        touched: 64 << 20,
                        stride: 4096,
                        expected: Expected {
                            order0: 16384,
                            order9: 0,
                            order18: 0,
                        },
                    },
                    touches: 16384,
                    elapsed_ns: 7,
                }),
                PhaseReport::Reset(Timed {
                    spec: "reset".into(),
                    elapsed_ns: 1,
                }),
            ],
            Totals::default(),
            Some("boom".into()),
        );
        let v = serde_json::to_value(&report).expect("serializes");
        assert_eq!(v["phases"][0]["phase"], "touch");
        assert_eq!(v["phases"][0]["map_align"], 4096);
        assert_eq!(v["phases"][0]["expected"]["order0"], 16384);
        assert_eq!(v["phases"][0]["touches"], 16384);
        assert_eq!(v["phases"][1]["phase"], "reset");
        assert_eq!(v["totals"]["mmaps"], 0);
        assert_eq!(v["error"], "boom");
    }

    fn dma_map() -> PhaseReport {
        PhaseReport::DmaMap(DmaMap {
            spec: "dma-map:64m:2m".into(),
            map: MapInfo {
                map_addr: 0x7f00_0020_0000,
                map_align: 2 << 20,
                size: 64 << 20,
                touched: 64 << 20,
                stride: 4096,
                expected: Expected {
                    order0: 0,
                    order9: 32,
                    order18: 0,
                },
            },
            dma_size: 64 << 20,
            iova: 1 << 32,
            map_dma_ns: 1_500_000,
            unmap_dma_ns: 250_000,
            elapsed_ns: 2_000_000,
        })
    }

    #[test]
    fn dma_map_json() {
        let v = serde_json::to_value(dma_map()).expect("serializes");
        let keys: Vec<&str> = v
            .as_object()
            .expect("an object")
            .keys()
            .map(String::as_str)
            .collect();
        let mut want = vec![
            "phase",
            "spec",
            "map_addr",
            "map_align",
            "size",
            "touched",
            "stride",
            "expected",
            "dma_size",
            "iova",
            "map_dma_ns",
            "unmap_dma_ns",
            "elapsed_ns",
        ];
        let mut got = keys.clone();
        got.sort_unstable();
        want.sort_unstable();
        assert_eq!(got, want);
        assert_eq!(v["phase"], "dma-map");
        assert_eq!(v["map_addr"], 0x7f00_0020_0000_u64);
        assert_eq!(v["map_align"], 2 << 20);
        assert_eq!(v["dma_size"], 64 << 20);
        assert_eq!(v["iova"], 1_u64 << 32);
        assert_eq!(v["map_dma_ns"], 1_500_000);
        assert_eq!(v["unmap_dma_ns"], 250_000);
        assert_eq!(v["expected"]["order9"], 32);
    }

    #[test]
    fn dma_map_line() {
        assert_eq!(
            dma_map().line(),
            "dma-map:64m:2m: dma_size=67108864 iova=0x100000000 map=0x7f0000200000 \
             align=2097152 size=67108864 touched=67108864 stride=4096 expected(>=6.12) \
             order0=0 order9=32 order18=0 map_dma 1.500 ms unmap_dma 0.250 ms"
        );
    }

    #[test]
    fn footer_counts_dma_maps() {
        let report = report(
            vec![dma_map()],
            Totals {
                mmaps: 1,
                dma_maps: 1,
                ..Totals::default()
            },
            None,
        );
        assert!(report.footer().ends_with(" mmaps=1 dma_maps=1"));
        let v = serde_json::to_value(&report).expect("serializes");
        assert_eq!(v["totals"]["dma_maps"], 1);
        assert_eq!(v["phases"][0]["phase"], "dma-map");
    }
}
