//! `record --events FILE`: every fault, zap, write hold, lock wait and task
//! name as one JSON line, times in nanoseconds since the probes attached.
//! The same types read the file back (`report --trace-event`).

use std::io::{BufRead, Write};

use serde::{Deserialize, Serialize};

use crate::{
    device::Bdf,
    event::Event,
    kernel::Generation,
    model::fault::{Origin, Outcome, comm, locate},
};
use vfio_trace_common::{UNKNOWN_DEVICE, lock_flags};

/// One line of the events file.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum EventLine {
    Fault {
        t_ns: u64,
        dur_ns: u64,
        device: Option<Bdf>,
        pid: u32,
        tid: u32,
        order: u32,
        result: Outcome,
        /// Absent in files written before origins were traced.
        #[serde(default = "unknown_origin")]
        origin: Origin,
        bar: Option<u32>,
        page: u64,
        vma_start: u64,
        /// 4 KiB, 2 MiB and 1 GiB entries inserted, pages remapped.
        pte: u32,
        pmd: u32,
        pud: u32,
        remap_pages: u64,
        /// Pages this fault brought back after a zap.
        #[serde(default)]
        refaulted_pages: u64,
    },
    Zap {
        t_ns: u64,
        dur_ns: u64,
        device: Option<Bdf>,
        pid: u32,
        tid: u32,
        comm: String,
        range_start: u64,
        range_len: u64,
        pages: u64,
        vmas: u32,
    },
    /// How long a zap's writer held `memory_lock`, from the zap's start.
    WriteHold {
        t_ns: u64,
        dur_ns: u64,
        device: Option<Bdf>,
    },
    LockWait {
        t_ns: u64,
        dur_ns: u64,
        device: Option<Bdf>,
        pid: u32,
        tid: u32,
        /// `read` (a fault), `write` (a zap) or `other`.
        mode: String,
    },
    Task {
        pid: u32,
        tid: u32,
        comm: String,
    },
    /// A dma-buf revoke (`revoked`) or restore of the device's exports (6.19+).
    DmaBufMove {
        t_ns: u64,
        dur_ns: u64,
        device: Option<Bdf>,
        pid: u32,
        tid: u32,
        revoked: bool,
    },
    /// A config write setting memory decode in the command register.
    DecodeOn {
        t_ns: u64,
        device: Option<Bdf>,
        pid: u32,
        tid: u32,
    },
    /// A `VFIO_IOMMU_MAP_DMA`; `device` is the one its first vfio fault hit.
    DmaMap {
        t_ns: u64,
        dur_ns: u64,
        device: Option<Bdf>,
        pid: u32,
        tid: u32,
        vaddr: u64,
        iova: u64,
        size: u64,
        faults: u32,
        fault_ns: u64,
        lookups: u32,
        ret: i32,
    },
}

fn unknown_origin() -> Origin {
    Origin::Other
}

fn device(key: u64) -> Option<Bdf> {
    (key != UNKNOWN_DEVICE).then(|| Bdf::from_key(key))
}

/// A device's BARs as (index, physical start, size).
pub type Layout = Vec<(u32, u64, u64)>;

/// Turns kernel events into lines: times from the origin, faults placed on
/// their BAR and page.
pub struct Lines {
    generation: Generation,
    origin_ns: u64,
    /// BARs as (index, physical start, size) per device, to place faults before 6.10.
    layouts: Vec<(Bdf, Layout)>,
}

impl Lines {
    #[must_use]
    pub fn new(generation: Generation, origin_ns: u64, layouts: Vec<(Bdf, Layout)>) -> Self {
        Self {
            generation,
            origin_ns,
            layouts,
        }
    }

    fn since(&self, ns: u64) -> u64 {
        ns.saturating_sub(self.origin_ns)
    }

    /// The line of `event`, which brought `refaulted` pages back after zaps.
    #[must_use]
    pub fn line(&self, event: &Event, refaulted: u64) -> EventLine {
        match event {
            Event::Fault(e) => {
                let dev = device(e.device);
                let layout = self
                    .layouts
                    .iter()
                    .find(|(b, _)| Some(*b) == dev)
                    .map_or(&[][..], |(_, l)| &l[..]);
                let at = locate(self.generation, e.vma_pgoff, e.page_in_vma, layout);
                EventLine::Fault {
                    t_ns: self.since(e.start_ns),
                    dur_ns: e.latency_ns,
                    device: dev,
                    pid: e.pid,
                    tid: e.tid,
                    order: e.order,
                    result: Outcome::from_vm_fault(e.result),
                    origin: Origin::from_event(e.origin),
                    bar: at.bar,
                    page: at.page,
                    vma_start: e.vma_start,
                    pte: e.inserts_pte,
                    pmd: e.inserts_pmd,
                    pud: e.inserts_pud,
                    remap_pages: e.remap_pages,
                    refaulted_pages: refaulted,
                }
            }
            Event::Zap(e) => EventLine::Zap {
                t_ns: self.since(e.start_ns),
                dur_ns: e.latency_ns,
                device: device(e.device),
                pid: e.pid,
                tid: e.tid,
                comm: comm(&e.comm),
                range_start: e.range_start,
                range_len: e.range_len,
                pages: e.pages,
                vmas: e.vmas,
            },
            Event::Hold(e) => EventLine::WriteHold {
                t_ns: self.since(e.zap_start_ns),
                dur_ns: e.hold_ns,
                device: device(e.device),
            },
            Event::Lock(e) => EventLine::LockWait {
                t_ns: self.since(e.start_ns),
                dur_ns: e.wait_ns,
                device: device(e.device),
                pid: e.pid,
                tid: e.tid,
                mode: if e.flags & lock_flags::WRITE != 0 {
                    "write"
                } else if e.flags & lock_flags::READ != 0 {
                    "read"
                } else {
                    "other"
                }
                .to_owned(),
            },
            Event::Task(e) => EventLine::Task {
                pid: e.pid,
                tid: e.tid,
                comm: comm(&e.comm),
            },
            Event::DmaBufMove(e) => EventLine::DmaBufMove {
                t_ns: self.since(e.start_ns),
                dur_ns: e.latency_ns,
                device: device(e.device),
                pid: e.pid,
                tid: e.tid,
                revoked: e.revoked != 0,
            },
            Event::DecodeOn(e) => EventLine::DecodeOn {
                t_ns: self.since(e.start_ns),
                device: device(e.device),
                pid: e.pid,
                tid: e.tid,
            },
            Event::DmaMap(e) => EventLine::DmaMap {
                t_ns: self.since(e.start_ns),
                dur_ns: e.latency_ns,
                device: device(e.device),
                pid: e.pid,
                tid: e.tid,
                vaddr: e.vaddr,
                iova: e.iova,
                size: e.size,
                faults: e.faults,
                fault_ns: e.fault_ns,
                lookups: e.lookups,
                ret: e.ret,
            },
        }
    }

    /// Writes the line of an event.
    ///
    /// # Errors
    /// When the writer fails.
    pub fn write(
        &self,
        out: &mut impl Write,
        event: &Event,
        refaulted: u64,
    ) -> std::io::Result<()> {
        serde_json::to_writer(&mut *out, &self.line(event, refaulted))?;
        out.write_all(b"\n")
    }
}

/// The events file of a recording: opened before anything attaches, given
/// its clock once the probes are attached, written batch by batch. A write
/// that fails ends the file (the recording goes on) and is said at the end.
pub struct EventSink {
    path: String,
    out: std::io::BufWriter<std::fs::File>,
    lines: Option<Lines>,
    error: Option<String>,
    pub lines_written: u64,
}

impl EventSink {
    /// # Errors
    /// When the file cannot be created.
    pub fn create(path: &std::path::Path) -> anyhow::Result<Self> {
        let file = std::fs::File::create(path)
            .map_err(|e| anyhow::anyhow!("cannot write {}: {e}", path.display()))?;
        Ok(Self {
            path: path.display().to_string(),
            // Large writes: the file may be on a slow filesystem (9p, NFS), and
            // each write there costs the traced CPU far more than a line.
            out: std::io::BufWriter::with_capacity(1 << 20, file),
            lines: None,
            error: None,
            lines_written: 0,
        })
    }

    pub fn start(&mut self, lines: Lines) {
        self.lines = Some(lines);
    }

    /// Writes an event that brought `refaulted` pages back after zaps.
    pub fn write(&mut self, event: &Event, refaulted: u64) {
        let Some(lines) = &self.lines else { return };
        if self.error.is_some() {
            return;
        }
        match lines.write(&mut self.out, event, refaulted) {
            Ok(()) => self.lines_written += 1,
            Err(e) => self.error = Some(format!("writing {}: {e}", self.path)),
        }
    }

    /// Flushes; the error that ended the file, if any.
    #[must_use]
    pub fn finish(mut self) -> Option<String> {
        if self.error.is_none()
            && let Err(e) = self.out.flush()
        {
            self.error = Some(format!("writing {}: {e}", self.path));
        }
        self.error
    }
}

/// Reads an events file back; a bad line is named by its number.
///
/// # Errors
/// When reading fails or a line is not an event.
pub fn read(input: impl BufRead, path: &str) -> anyhow::Result<Vec<EventLine>> {
    input
        .lines()
        .enumerate()
        .filter(|(_, l)| l.as_ref().map_or(true, |l| !l.trim().is_empty()))
        .map(|(i, l)| {
            let l = l.map_err(|e| anyhow::anyhow!("cannot read {path}: {e}"))?;
            serde_json::from_str(&l)
                .map_err(|e| anyhow::anyhow!("{path}:{}: not a vfio-trace event: {e}", i + 1))
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use vfio_trace_common::{FaultEvent, ZapEvent};

    #[test]
    fn events_write_as_lines_and_read_back() {
        let bdf = Bdf::parse("0000:01:00.0").expect("bdf");
        let lines = Lines::new(Generation::HugeFault, 1_000, vec![]);
        let mut f = FaultEvent::zeroed();
        f.device = bdf.key();
        f.vma_pgoff = 2 << 28;
        f.page_in_vma = 7;
        f.order = 9;
        f.result = 0x800;
        f.start_ns = 1_500;
        f.latency_ns = 300;
        let mut z = ZapEvent::zeroed();
        z.device = bdf.key();
        z.start_ns = 3_000;
        z.latency_ns = 40;
        z.pages = 16;
        let mut out = Vec::new();
        lines.write(&mut out, &Event::Fault(f), 0).expect("writes");
        lines.write(&mut out, &Event::Zap(z), 0).expect("writes");
        let text = String::from_utf8(out).expect("utf-8");
        let first = text.lines().next().expect("a line");
        assert!(
            first.starts_with(
                r#"{"kind":"fault","t_ns":500,"dur_ns":300,"device":"0000:01:00.0","pid":0,"tid":0,"order":9,"result":"fallback","origin":"other","bar":2,"page":7,"#
            ),
            "{first}"
        );
        let back = read(text.as_bytes(), "ev.jsonl").expect("reads");
        assert_eq!(back.len(), 2);
        assert!(matches!(
            back[1],
            EventLine::Zap {
                t_ns: 2_000,
                pages: 16,
                ..
            }
        ));
        let err = read("{\"kind\":\"nope\"}\n".as_bytes(), "ev.jsonl").expect_err("bad");
        assert!(
            err.to_string()
                .starts_with("ev.jsonl:1: not a vfio-trace event"),
            "{err}"
        );
    }
}
