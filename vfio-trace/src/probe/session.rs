//! A tracing session: plan, offsets, load, per-device rings, attach, readers;
//! and the orderly stop that loses nothing already recorded.

use std::{collections::BTreeMap, path::Path};

use aya::maps::{MapData, StackTraceMap};
use thiserror::Error;
use tokio::sync::{mpsc, watch};

use crate::event::Event;

use super::{
    btf_object,
    kallsyms::Symbols,
    load::{KernelCounts, LoadError, Tracer, error_chain},
    offsets::{self, Field},
    plan::{self, PlannedProbe},
    preempt,
    rings::{self, Reader, ReaderStats},
};
use crate::device::Bdf;

use super::KPROBE_PMU;

#[derive(Debug, Error)]
pub enum SessionError {
    #[error("this kernel cannot attach kprobes ({KPROBE_PMU} missing); run `vfio-trace check`")]
    NoKprobes,
    #[error("reading kernel BTF: {0}")]
    Btf(String),
    #[error("BTF lacks {0}; run `vfio-trace check`")]
    MissingFields(String),
    #[error("reading /proc/kallsyms: {0}")]
    Kallsyms(std::io::Error),
    #[error("creating the ring buffer of {device}: {message}")]
    Ring { device: String, message: String },
    #[error(transparent)]
    Load(#[from] LoadError),
}

#[derive(Debug, Clone)]
pub struct Options {
    /// Devices that get their own ring.
    pub devices: Vec<Bdf>,
    /// Trace only these devices (filtered in the kernel); `None` traces all.
    pub only: Option<Vec<Bdf>>,
    /// Trace only this process.
    pub pid: Option<u32>,
    /// Bytes per device ring (power of two, multiple of the page size).
    pub ring_bytes: u32,
    /// Use fentry/fexit where the plan has them (else kprobes only).
    pub trampolines: bool,
}

/// What one ring's reader did.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RingCount {
    /// `None` for the shared ring.
    pub device: Option<Bdf>,
    pub stats: ReaderStats,
    /// Why the reader failed, if it did: its events after the failure are lost.
    pub error: Option<String>,
}

pub struct Session {
    tracer: Tracer,
    readers: Vec<(Option<Bdf>, Reader)>,
    stop: watch::Sender<bool>,
    /// Decoded events, a batch per ring drain.
    pub events: mpsc::UnboundedReceiver<Vec<Event>>,
    pub offsets: Vec<Field>,
    stacks: Option<StackTraceMap<MapData>>,
    symbols: Symbols,
}

/// What a stopped session leaves: final plan status, kernel counts and ring counts.
pub struct Stopped {
    pub plan: Vec<PlannedProbe>,
    pub kernel: KernelCounts,
    pub rings: Vec<RingCount>,
    pub events: mpsc::UnboundedReceiver<Vec<Event>>,
    /// Zap stacks by id, as function names, innermost first.
    pub stacks: BTreeMap<i32, Vec<String>>,
    /// False when the stack map could not be opened: every cause reads unknown.
    pub stack_map_readable: bool,
}

impl Session {
    /// Must run inside a tokio runtime (the readers are tasks).
    pub fn start(opts: &Options) -> Result<Self, SessionError> {
        if !Path::new(KPROBE_PMU).exists() {
            return Err(SessionError::NoKprobes);
        }
        let (vmlinux_btf, module_btf) = offsets::parse(
            Path::new(offsets::VMLINUX_BTF),
            Path::new(offsets::VFIO_PCI_CORE_BTF),
        )
        .map_err(|e| SessionError::Btf(e.to_string()))?;
        let found = offsets::from_btf(&vmlinux_btf, module_btf.as_ref());
        let missing: Vec<&str> = found
            .missing()
            .filter(|f| f.needed_for.contains("every fault"))
            .map(|f| f.name)
            .collect();
        if !missing.is_empty() {
            return Err(SessionError::MissingFields(missing.join(", ")));
        }
        let symbols = Symbols::load().map_err(SessionError::Kallsyms)?;
        let no_trampolines = if opts.trampolines {
            preempt::avoid_trampolines()
        } else {
            Some("--kprobes-only".to_owned())
        };
        let mut plan = plan::plan(&symbols, no_trampolines.as_deref());
        for p in plan.iter_mut().filter(|p| p.btf_program.is_some()) {
            let btf = match p.module.as_deref() {
                None => Some(&vmlinux_btf),
                Some("vfio_pci_core") => module_btf.as_ref(),
                Some(_) => None,
            };
            p.btf_id = btf
                .zip(p.symbol.as_deref())
                .and_then(|(btf, sym)| btf_object::func_id(btf, sym));
        }
        // The parsed BTF is the largest thing this process ever holds; give
        // its memory back before the rings are mapped.
        drop(module_btf);
        drop(vmlinux_btf);
        // SAFETY: malloc_trim only returns free heap pages to the kernel.
        unsafe { libc::malloc_trim(0) };
        let mut config = found.config;
        config.handler_has_order = u32::from(plan::handler_has_order(&plan));
        config.inserts_from_result = u32::from(config.handler_has_order != 0);
        // A quarter of the smallest ring: the reader wakes well before any
        // ring fills, and otherwise drains on its timer.
        config.wake_bytes = opts.ring_bytes.min(vfio_trace_common::SHARED_RING_BYTES) / 4;
        config.filter_pid = opts.pid.unwrap_or(0);
        config.filter_devices = u32::from(opts.only.is_some());
        if let Some(format) = super::tracefs::read_format("lock", "contention_begin") {
            config.tp_lock_addr =
                super::tracefs::field_offset(&format, "lock_addr").unwrap_or(config.tp_lock_addr);
            config.tp_flags =
                super::tracefs::field_offset(&format, "flags").unwrap_or(config.tp_flags);
        }
        if let Some(format) = super::tracefs::read_format("lock", "contention_end") {
            config.tp_ret = super::tracefs::field_offset(&format, "ret").unwrap_or(config.tp_ret);
        }

        let mut tracer = Tracer::load(config, plan)?;
        let stacks = tracer
            .take_stacks()
            .and_then(|m| StackTraceMap::try_from(m).ok());
        if let Some(only) = &opts.only {
            let keys: Vec<u32> = only.iter().map(|d| d.key()).collect();
            tracer.filter_devices(&keys)?;
        }
        let (tx, events) = mpsc::unbounded_channel();
        let (stop, stop_rx) = watch::channel(false);
        let mut readers = Vec::new();
        for &bdf in &opts.devices {
            let ring_err = |message: String| SessionError::Ring {
                device: bdf.to_string(),
                message,
            };
            let data = rings::create(opts.ring_bytes).map_err(|e| ring_err(error_chain(&e)))?;
            tracer.add_device_ring(bdf.key(), &data)?;
            let reader = rings::spawn(rings::as_map(data), tx.clone(), stop_rx.clone())
                .map_err(|e| ring_err(error_chain(&e)))?;
            readers.push((Some(bdf), reader));
        }
        let shared = tracer.take_shared_ring()?;
        let reader = rings::spawn(shared, tx, stop_rx).map_err(|e| SessionError::Ring {
            device: "shared".into(),
            message: error_chain(&e),
        })?;
        readers.push((None, reader));
        tracer.attach()?;
        Ok(Self {
            tracer,
            readers,
            stop,
            events,
            offsets: found.fields,
            stacks,
            symbols,
        })
    }

    /// The plan with attach status.
    pub fn plan(&self) -> &[PlannedProbe] {
        &self.tracer.plan
    }

    /// Detaches every probe, then lets each reader drain its ring and end.
    pub async fn stop(self) -> Stopped {
        let plan = self.tracer.plan.clone();
        let kernel = self.tracer.detach();
        let _ = self.stop.send(true);
        let mut rings = Vec::new();
        for (device, reader) in self.readers {
            let (stats, error) = match reader.handle.await {
                Ok(Ok(stats)) => (stats, None),
                Ok(Err(e)) => (ReaderStats::default(), Some(e.to_string())),
                Err(e) => (ReaderStats::default(), Some(e.to_string())),
            };
            rings.push(RingCount {
                device,
                stats,
                error,
            });
        }
        let stack_map_readable = self.stacks.is_some();
        let stacks = self
            .stacks
            .as_ref()
            .map(|m| name_stacks(m, &self.symbols))
            .unwrap_or_default();
        Stopped {
            plan,
            kernel,
            rings,
            events: self.events,
            stacks,
            stack_map_readable,
        }
    }
}

/// Every stack in the map, as function names.
fn name_stacks(map: &StackTraceMap<MapData>, symbols: &Symbols) -> BTreeMap<i32, Vec<String>> {
    map.iter()
        .filter_map(Result::ok)
        .map(|(id, trace)| {
            let names = trace
                .frames()
                .iter()
                .map(|f| {
                    symbols
                        .name_at(f.ip)
                        .map_or_else(|| format!("{:#x}", f.ip), str::to_owned)
                })
                .collect();
            (id as i32, names)
        })
        .collect()
}
