//! A tracing session: plan, offsets, load, per-device rings, attach, readers;
//! and the orderly stop that loses nothing already recorded.

use std::{collections::BTreeMap, sync::Arc};

use aya::maps::{MapData, StackTraceMap};
use thiserror::Error;
use tokio::sync::{mpsc, watch};

use crate::event::Event;

use super::{
    Host,
    attach::error_chain,
    diagnostics, floor,
    flush::Flush,
    kallsyms::Symbols,
    load::{KernelCounts, LoadError, Tracer},
    offsets::Field,
    plan::{self, PlannedProbe, Status},
    preflight::{NotReady, Preflight},
    rings::{self, Reader, ReaderStats},
    role::Role,
    yielding::Yielding,
};
use crate::device::Bdf;

#[derive(Debug, Error)]
pub enum SessionError {
    #[error(transparent)]
    NotReady(#[from] NotReady),
    #[error("creating the ring buffer of {device}: {message}")]
    Ring { device: String, message: String },
    #[error(transparent)]
    Load(#[from] LoadError),
}

#[derive(Debug, Clone)]
#[expect(
    clippy::struct_excessive_bools,
    reason = "independent switches of one session, each named where it is set"
)]
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
    /// Attach empty programs to the fault handler only (see `floor`).
    pub floor: bool,
    /// Print the programs' diagnostics to stderr as they come.
    pub verbose: bool,
    /// The collector will yield the CPU ([`Session::yield_cpu`]): the
    /// programs then wake its readers only at quarter marks, since a
    /// yielding reader lags by design.
    pub yield_cpu: bool,
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
    /// Read from kallsyms when the first stack is named, not at start-up.
    symbols: std::sync::OnceLock<Symbols>,
    diagnostics: Option<diagnostics::Reader>,
    /// Why the programs' diagnostics cannot be read, if they cannot.
    pub diagnostics_error: Option<String>,
    yielding: Arc<Yielding>,
    /// Drain requests to the readers.
    flush: Flush,
}

/// What a stopped session leaves: final plan status, kernel counts and ring counts.
pub struct Stopped {
    pub plan: Vec<PlannedProbe>,
    pub kernel: KernelCounts,
    pub rings: Vec<RingCount>,
    /// Zap stacks by id, as function names, innermost first.
    pub stacks: BTreeMap<i32, Vec<String>>,
    /// False when the stack map could not be opened: every cause reads unknown.
    pub stack_map_readable: bool,
}

impl Session {
    /// Traces what `preflight` found, if it found the machine ready.
    /// Must run inside a tokio runtime (the readers are tasks).
    pub fn start(preflight: Preflight, opts: &Options) -> Result<Self, SessionError> {
        preflight.ensure_ready()?;
        let Preflight {
            mut probes,
            mut config,
            offsets,
            ..
        } = preflight;
        if !opts.trampolines {
            plan::use_kprobes(&mut probes, "--kprobes-only");
        }
        if opts.floor {
            floor::apply(&mut probes);
        }
        config.handler_has_order = u32::from(plan::handler_has_order(&probes));
        config.inserts_from_result = u32::from(config.handler_has_order != 0);
        // A quarter of a device ring (the shared ring wakes at a quarter of
        // its own): the reader wakes well before a ring fills, and
        // otherwise drains on its timer. A mark that suited the smallest
        // ring woke an 8 MiB ring's reader up to 7 times in a 64 MiB storm.
        config.wake_bytes = opts.ring_bytes / 4;
        config.wake_past_mark = u32::from(!opts.yield_cpu);
        config.filter_pid = opts.pid.unwrap_or(0);
        config.filter_devices = u32::from(opts.only.is_some());

        let mut tracer = Tracer::load(config, probes)?;
        let stacks = tracer
            .take_stacks()
            .and_then(|m| StackTraceMap::try_from(m).ok());
        if let Some(only) = &opts.only {
            let keys: Vec<u64> = only.iter().map(|d| d.key()).collect();
            tracer.filter_devices(&keys)?;
        }
        let (tx, events) = mpsc::unbounded_channel();
        let (stop, stop_rx) = watch::channel(false);
        // Without diagnostics the trace is still whole: note why, go on.
        let (diagnostics, diagnostics_error) = match tracer.map_diagnostics() {
            Ok(array) => (
                Some(diagnostics::spawn(array, opts.verbose, stop_rx.clone())),
                None,
            ),
            Err(e) => (None, Some(error_chain(&e))),
        };
        let yielding = Arc::new(Yielding::new(opts.yield_cpu));
        let flush = Flush::default();
        let mut readers = Vec::new();
        for (slot, &bdf) in (0..).zip(&opts.devices) {
            let ring_err = |message: String| SessionError::Ring {
                device: bdf.to_string(),
                message,
            };
            let data = rings::create(opts.ring_bytes).map_err(|e| ring_err(error_chain(&e)))?;
            tracer.add_device_ring(bdf.key(), slot, &data)?;
            let reader = rings::spawn(
                rings::as_map(data),
                opts.ring_bytes,
                Arc::clone(&yielding),
                tx.clone(),
                stop_rx.clone(),
                flush.reader(),
            )
            .map_err(|e| ring_err(error_chain(&e)))?;
            readers.push((Some(bdf), reader));
        }
        let shared = tracer.take_shared_ring()?;
        let shared_bytes = vfio_trace_common::SHARED_RING_BYTES;
        let reader = rings::spawn(
            shared,
            shared_bytes,
            Arc::clone(&yielding),
            tx,
            stop_rx,
            flush.reader(),
        )
        .map_err(|e| SessionError::Ring {
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
            offsets,
            stacks,
            symbols: std::sync::OnceLock::new(),
            diagnostics,
            diagnostics_error,
            yielding,
            flush,
        })
    }

    /// Has every reader drain its ring now, deferring nothing, waits until
    /// they have (a reader that does not answer within 2 s is passed), and
    /// returns every batch waiting in [`Session::events`]. A live view calls
    /// it before it reads the model, so a collector that yields the CPU
    /// still shows everything up to that moment.
    pub async fn flush(&mut self) -> Vec<Vec<Event>> {
        self.flush.now().await;
        std::iter::from_fn(|| self.events.try_recv().ok()).collect()
    }

    /// From now on the collector's thread gives way to other work while its
    /// rings have room (see `yielding`). Call it from the thread that runs
    /// the readers, after starting the workload, which would otherwise
    /// inherit the low priority. Returns whether it yields: only a session
    /// started with `Options::yield_cpu`, in a process allowed to raise its
    /// priority again, does.
    pub fn yield_cpu(&self) -> bool {
        self.yielding.start()
    }

    /// Times the collector stopped yielding because a ring was about to
    /// leave less than its room free.
    pub fn catch_ups(&self) -> u64 {
        self.yielding.catch_ups()
    }

    /// Whether the collector yields the CPU (see [`Session::yield_cpu`]).
    pub fn yields(&self) -> bool {
        self.yielding.yielding()
    }

    /// The plan with attach status.
    pub fn plan(&self) -> &[PlannedProbe] {
        &self.tracer.plan
    }

    /// Whether zaps report the VMAs and pages they walked: the per-VMA zap
    /// probe attached.
    #[must_use]
    pub fn zap_walks_known(&self) -> bool {
        self.plan()
            .iter()
            .any(|p| p.role == Role::ZapRange && p.status == Status::Attached)
    }

    /// What attached, for the one line commands print once tracing starts.
    #[must_use]
    pub fn summary(&self) -> String {
        let attached = self
            .plan()
            .iter()
            .filter(|p| p.status == Status::Attached)
            .count();
        let rings = self.readers.iter().filter(|(d, _)| d.is_some()).count();
        format!(
            "{attached}/{} probes attached, {rings} device ring(s)",
            self.plan().len()
        )
    }

    /// What the kernel side has counted so far (losses, run time), read
    /// while tracing goes on.
    #[must_use]
    pub fn counts(&self) -> KernelCounts {
        self.tracer.counts()
    }

    /// The stacks of `ids` only: a scrape reads what it has not named yet,
    /// not the whole map (each read is a syscall; see `counters`).
    #[must_use]
    pub fn stacks_of(&self, ids: &[i32]) -> BTreeMap<i32, Vec<String>> {
        let Some(map) = &self.stacks else {
            return BTreeMap::new();
        };
        ids.iter()
            .filter_map(|&id| {
                let trace = map.get(&id.cast_unsigned(), 0).ok()?;
                Some((id, name_frames(&trace, loaded(&self.symbols))))
            })
            .collect()
    }

    /// Whether the zap stack map could be opened.
    #[must_use]
    pub fn stack_map_readable(&self) -> bool {
        self.stacks.is_some()
    }

    /// Ring records dropped as undecodable so far, over every reader.
    #[must_use]
    pub fn undecodable(&self) -> u64 {
        self.readers
            .iter()
            .map(|(_, r)| r.undecodable.load(std::sync::atomic::Ordering::Relaxed))
            .sum()
    }

    /// Diagnostics the programs logged so far (rare paths; not losses).
    #[must_use]
    pub fn diagnostics(&self) -> u64 {
        self.diagnostics
            .as_ref()
            .map_or(0, diagnostics::Reader::received)
    }

    /// Ring readers that have ended while tracing: their later events are lost.
    #[must_use]
    pub fn failed_readers(&self) -> usize {
        self.readers
            .iter()
            .filter(|(_, r)| r.handle.is_finished())
            .count()
    }

    /// The programs' run time (ns) and runs so far; both 0 unless
    /// `kernel.bpf_stats_enabled` is on.
    #[must_use]
    pub fn run_stats(&self) -> (u64, u64) {
        let c = self.counts();
        (c.bpf_run_ns, c.bpf_run_cnt)
    }

    /// Events dropped to full rings so far, by device key.
    #[must_use]
    pub fn lost_by_device(&self) -> BTreeMap<u64, u64> {
        self.counts().lost_by_device
    }

    /// Detaches every probe, then lets each reader drain its ring and end,
    /// handing `take` each batch as it comes: a ring left full by a storm
    /// holds 260,000 records, which decoded and queued until the last
    /// reader ended added 15 MiB to the peak RSS.
    pub async fn stop(self, mut take: impl FnMut(Vec<Event>)) -> Stopped {
        let plan = self.tracer.plan.clone();
        let mut kernel = self.tracer.detach();
        let _ = self.stop.send(true);
        kernel.diagnostics_error = self.diagnostics_error;
        if let Some(reader) = self.diagnostics {
            (kernel.diagnostics, kernel.diagnostics_error) = reader.finish().await;
        }
        let mut events = self.events;
        let mut rings = Vec::new();
        for (device, reader) in self.readers {
            let mut handle = reader.handle;
            let joined = loop {
                tokio::select! {
                    Some(batch) = events.recv() => take(batch),
                    joined = &mut handle => break joined,
                }
            };
            let (stats, error) = match joined {
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
        // Every reader has ended: what they sent is all in the channel.
        while let Ok(batch) = events.try_recv() {
            take(batch);
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
            stacks,
            stack_map_readable,
        }
    }
}

/// The kernel's symbols, read from kallsyms on first use.
fn loaded(symbols: &std::sync::OnceLock<Symbols>) -> &Symbols {
    symbols.get_or_init(|| Host::current().kallsyms().unwrap_or_default())
}

/// Every stack in the map, as function names; kallsyms is read only if
/// there is one.
fn name_stacks(
    map: &StackTraceMap<MapData>,
    symbols: &std::sync::OnceLock<Symbols>,
) -> BTreeMap<i32, Vec<String>> {
    let traces: Vec<_> = map.iter().filter_map(Result::ok).collect();
    traces
        .iter()
        .map(|(id, trace)| (id.cast_signed(), name_frames(trace, loaded(symbols))))
        .collect()
}

fn name_frames(trace: &aya::maps::stack_trace::StackTrace, symbols: &Symbols) -> Vec<String> {
    trace
        .frames()
        .iter()
        .map(|f| {
            symbols
                .name_at(f.ip)
                .map_or_else(|| format!("{:#x}", f.ip), str::to_owned)
        })
        .collect()
}
