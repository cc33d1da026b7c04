//! Loading the embedded eBPF object, attaching the plan, and detaching.
//!
//! The attach order and what a failure leaves behind are `attach`'s; this
//! file is aya's side of its `Programs` seam.

use std::collections::BTreeMap;

use aya::{
    Ebpf, EbpfLoader,
    maps::{Array, ArrayOfMaps, HashMap, MapData},
    programs::Program,
};
use thiserror::Error;
use vfio_trace_common::{Config, counter, fault_return, maps};

use super::{
    attach::{self, AttachError, Programs, RequiredFailed},
    btf_object, counters, diagnostics,
    plan::PlannedProbe,
    role::Role,
};

/// The eBPF object built by build.rs from vfio-trace-ebpf.
static OBJECT: &[u8] = aya::include_bytes_aligned!(concat!(env!("OUT_DIR"), "/vfio-trace"));

#[derive(Debug, Error)]
pub enum LoadError {
    #[error("loading the eBPF object: {0}")]
    Load(#[from] aya::EbpfError),
    #[error("eBPF map {0} is missing from the object")]
    MissingMap(&'static str),
    #[error("eBPF map {name}: {source}")]
    Map {
        name: &'static str,
        #[source]
        source: aya::maps::MapError,
    },
    #[error("mapping eBPF map {name}: {source}")]
    Mapping {
        name: &'static str,
        #[source]
        source: std::io::Error,
    },
    #[error(transparent)]
    Required(#[from] RequiredFailed),
}

/// Loaded programs with the plan's attach status.
pub struct Tracer {
    ebpf: Ebpf,
    pub plan: Vec<PlannedProbe>,
    /// The counters' mapping; `None` when it could not be made.
    counters: Option<counters::Mapped>,
    /// Losses by device as last read, and the ring-full total they were read
    /// at: the loss map is read with a syscall only after a new loss.
    lost: std::sync::Mutex<(u64, BTreeMap<u64, u64>, bool)>,
    /// The fault return is an fexit, and the entries know it: fault entries
    /// and returns are not counted.
    returns_by_fexit: bool,
}

fn map_err(name: &'static str) -> impl FnOnce(aya::maps::MapError) -> LoadError {
    move |source| LoadError::Map { name, source }
}

impl Tracer {
    /// Loads the programs with `config`; no probe is attached yet.
    pub fn load(config: Config, plan: Vec<PlannedProbe>) -> Result<Self, LoadError> {
        // No CO-RE relocations: offsets come in Config, so the kernel's BTF
        // need not be parsed a second time.
        let rows = counters::rows();
        let ebpf = EbpfLoader::without_kernel_btf()
            .override_global(maps::CONFIG, &config, true)
            .map_max_entries(maps::COUNTERS, rows * counter::STRIDE)
            // Task storage (per-thread fault state) has no aya wrapper; the
            // programs are its only users.
            .allow_unsupported_maps()
            .load(OBJECT)?;
        let counters = match ebpf.map(maps::COUNTERS) {
            Some(aya::maps::Map::Array(data)) => counters::Mapped::new(data, rows).ok(),
            _ => None,
        };
        Ok(Self {
            ebpf,
            plan,
            counters,
            lost: std::sync::Mutex::new((0, BTreeMap::new(), true)),
            returns_by_fexit: false,
        })
    }

    /// A hash map of the object keyed by device key.
    fn device_map<V: aya::Pod>(
        &mut self,
        name: &'static str,
    ) -> Result<HashMap<&mut MapData, u64, V>, LoadError> {
        let map = self.ebpf.map_mut(name).ok_or(LoadError::MissingMap(name))?;
        HashMap::try_from(map).map_err(map_err(name))
    }

    /// Restricts tracing to these device keys (takes effect when `Config::filter_devices` is set).
    pub fn filter_devices(&mut self, keys: &[u64]) -> Result<(), LoadError> {
        let mut filter = self.device_map::<u8>(maps::DEVICE_FILTER)?;
        for key in keys {
            filter
                .insert(key, 1, 0)
                .map_err(map_err(maps::DEVICE_FILTER))?;
        }
        Ok(())
    }

    /// Gives a device its own ring buffer (`inner` must be a ring buffer
    /// map) in ring slot `slot`: each device a slot of its own.
    pub fn add_device_ring(
        &mut self,
        key: u64,
        slot: u32,
        inner: &MapData,
    ) -> Result<(), LoadError> {
        let map = self
            .ebpf
            .map_mut(maps::DEVICE_RINGS)
            .ok_or(LoadError::MissingMap(maps::DEVICE_RINGS))?;
        let mut rings: ArrayOfMaps<&mut MapData, MapData> =
            ArrayOfMaps::try_from(map).map_err(map_err(maps::DEVICE_RINGS))?;
        rings
            .set(slot, inner, 0)
            .map_err(map_err(maps::DEVICE_RINGS))?;
        self.device_map::<u32>(maps::RING_SLOTS)?
            .insert(key, slot, 0)
            .map_err(map_err(maps::RING_SLOTS))
    }

    /// Takes the shared ring buffer out of the object.
    pub fn take_shared_ring(&mut self) -> Result<aya::maps::Map, LoadError> {
        self.ebpf
            .take_map(maps::SHARED_RING)
            .ok_or(LoadError::MissingMap(maps::SHARED_RING))
    }

    /// Attaches every probe whose symbol exists; failures are kept in the plan.
    /// Fails only when a required probe did not attach, having detached the rest.
    pub fn attach(&mut self) -> Result<(), LoadError> {
        attach::attach_plan(&mut self.plan, &mut self.ebpf)?;
        // What the programs were told, as they hold it.
        self.returns_by_fexit = self
            .ebpf
            .map(maps::FAULT_RETURN)
            .and_then(|m| Array::<&MapData, u32>::try_from(m).ok())
            .and_then(|a| a.get(&0, 0).ok())
            == Some(fault_return::FEXIT);
        Ok(())
    }

    /// Maps the programs' diagnostics array, read without syscalls.
    pub fn map_diagnostics(&self) -> Result<counters::Mapped, LoadError> {
        let Some(aya::maps::Map::Array(data)) = self.ebpf.map(maps::DIAGNOSED) else {
            return Err(LoadError::MissingMap(maps::DIAGNOSED));
        };
        let words = diagnostics::KINDS * diagnostics::WORDS;
        counters::Mapped::words(data, words).map_err(|source| LoadError::Mapping {
            name: maps::DIAGNOSED,
            source,
        })
    }

    /// Takes the map of zap stacks out of the object, to read after detach.
    pub fn take_stacks(&mut self) -> Option<aya::maps::Map> {
        self.ebpf.take_map(maps::STACKS)
    }

    /// What the kernel side has counted so far: losses, and the programs'
    /// run time. Reads maps and program info only; nothing changes.
    #[must_use]
    pub fn counts(&self) -> KernelCounts {
        let names = attach::detach_order(&self.plan);
        // The kernel keeps run time only while `kernel.bpf_stats_enabled` is on.
        let (mut run_ns, mut run_cnt, mut recursion_misses) = (0, 0, 0);
        let mut skipped_runs = BTreeMap::new();
        // A return program's skipped runs are missed returns, not recursion.
        let mut returns_skipped = 0;
        let returns: Vec<&str> = self
            .plan
            .iter()
            .filter(|p| p.role == Role::FaultReturn)
            .filter_map(|p| p.program)
            .collect();
        for name in &names {
            if let Some(info) = self.ebpf.program(name).and_then(|p| p.info().ok()) {
                run_ns += u64::try_from(info.run_time().as_nanos()).unwrap_or(u64::MAX);
                run_cnt += info.run_count();
                if info.recursion_misses() > 0 {
                    skipped_runs.insert(*name, info.recursion_misses());
                }
                if returns.contains(name) {
                    returns_skipped += info.recursion_misses();
                } else {
                    recursion_misses += info.recursion_misses();
                }
            }
        }
        let (counters, lost_by_device, loss_maps_readable) = self.losses(false);
        KernelCounts {
            lost_by_device,
            counters,
            loss_maps_readable,
            bpf_run_ns: run_ns,
            bpf_run_cnt: run_cnt,
            recursion_misses,
            // A kretprobe's skipped runs are already entries without returns.
            fexit_returns_skipped: if self.returns_by_fexit {
                returns_skipped
            } else {
                0
            },
            skipped_runs,
            // Set by the session once its diagnostics reader has ended.
            diagnostics: 0,
            diagnostics_error: None,
        }
    }

    /// Stops new events: unloads entries first, then everything else.
    /// Returns what the kernel side counted: losses, and the programs' run time.
    pub fn detach(mut self) -> KernelCounts {
        // Run time is read before anything unloads.
        let run = self.counts();
        // Entries first, so nothing starts that cannot finish.
        for name in attach::detach_order(&self.plan) {
            self.ebpf.unload(name);
        }
        // Losses are read after: events of runs still in flight count.
        let (counters, lost_by_device, loss_maps_readable) = self.losses(true);
        KernelCounts {
            lost_by_device,
            counters,
            loss_maps_readable,
            ..run
        }
    }

    /// The counters, losses by device, and whether both could be read. The
    /// loss map is read (with syscalls) only when the ring-full count moved
    /// since the last read, or when `fresh` asks for it.
    fn losses(&self, fresh: bool) -> ([u64; counter::COUNT as usize], BTreeMap<u64, u64>, bool) {
        let Some(mapped) = &self.counters else {
            // Without the counters the losses are a floor.
            return ([0; counter::COUNT as usize], lost(&self.ebpf).0, false);
        };
        let counts = mapped.read();
        let ring_full = counts[counter::RING_FULL as usize];
        let mut cache = self
            .lost
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        if fresh || cache.0 != ring_full {
            let (by_device, ok) = lost(&self.ebpf);
            *cache = (ring_full, by_device, ok);
        }
        (counts, cache.1.clone(), cache.2)
    }
}

/// What the programs counted by the time they were detached.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct KernelCounts {
    /// Events dropped to full rings, by device key.
    pub lost_by_device: BTreeMap<u64, u64>,
    /// Losses by cause and fault entries/returns, summed over CPUs
    /// (indexed by `vfio_trace_common::counter`).
    pub counters: [u64; counter::COUNT as usize],
    /// False when a loss map could not be read: the losses above are then a floor.
    pub loss_maps_readable: bool,
    /// Time the programs ran and how often (0 unless BPF stats are enabled).
    pub bpf_run_ns: u64,
    pub bpf_run_cnt: u64,
    /// Program runs the kernel skipped because another program was running
    /// on the same CPU: each is an event never seen.
    pub recursion_misses: u64,
    /// Runs of an fexit fault return the kernel skipped. Fault entries and
    /// returns are counted only while the return is a kretprobe, which may
    /// run out of instances; an fexit misses a return only this way.
    pub fexit_returns_skipped: u64,
    /// The same, by program (return programs included), where not 0.
    pub skipped_runs: BTreeMap<&'static str, u64>,
    /// Diagnostics the programs noted (each kind at most once per run).
    pub diagnostics: u64,
    /// Why the diagnostics could not be read, if they could not.
    pub diagnostics_error: Option<String>,
}

impl KernelCounts {
    /// Faults whose return was never seen: entries without a return while a
    /// kretprobe returns them, the kernel's skipped runs of an fexit.
    #[must_use]
    pub fn missed_returns(&self) -> u64 {
        let by = |which: u32| self.counters[which as usize];
        by(counter::FAULT_ENTRIES).saturating_sub(by(counter::FAULT_RETURNS))
            + self.fexit_returns_skipped
    }
}

impl Programs for Ebpf {
    fn attach_trampoline(
        &mut self,
        program: &'static str,
        btf_id: u32,
        module: Option<&str>,
    ) -> Result<(), AttachError> {
        let name = module.unwrap_or("vmlinux");
        let fd = btf_object::fd_by_name(name).map_err(|source| AttachError::BtfObject {
            name: name.to_owned(),
            source,
        })?;
        match self
            .program_mut(program)
            .ok_or(AttachError::NoProgram(program))?
        {
            Program::FEntry(p) => {
                p.load_in_btf_object(btf_id, fd)
                    .map_err(AttachError::Load)?;
                p.attach().map_err(AttachError::Attach)?;
            }
            Program::FExit(p) => {
                p.load_in_btf_object(btf_id, fd)
                    .map_err(AttachError::Load)?;
                p.attach().map_err(AttachError::Attach)?;
            }
            _ => return Err(AttachError::WrongType(program)),
        }
        Ok(())
    }

    fn attach_probe(&mut self, program: &'static str, symbol: &str) -> Result<(), AttachError> {
        match self
            .program_mut(program)
            .ok_or(AttachError::NoProgram(program))?
        {
            Program::KProbe(kprobe) => {
                // One program may serve several roles (hold_end): load it once.
                if kprobe.fd().is_err() {
                    kprobe.load().map_err(AttachError::Load)?;
                }
                kprobe.attach(symbol, 0).map_err(AttachError::Attach)?;
            }
            Program::TracePoint(tp) => {
                let (category, name) = symbol
                    .split_once(':')
                    .ok_or_else(|| AttachError::NotTracepoint(symbol.to_owned()))?;
                tp.load().map_err(AttachError::Load)?;
                tp.attach(category, name).map_err(AttachError::Attach)?;
            }
            _ => return Err(AttachError::WrongType(program)),
        }
        Ok(())
    }

    fn fault_returns_by_fexit(&mut self, fexit: bool) {
        let mode = if fexit {
            fault_return::FEXIT
        } else {
            fault_return::KRETPROBE
        };
        // Should the write fail, entries keep using the task's storage and
        // counting, which an fexit handles too: slower, never wrong.
        if let Some(map) = self.map_mut(maps::FAULT_RETURN)
            && let Ok(mut array) = Array::<&mut MapData, u32>::try_from(map)
        {
            let _ = array.set(0, mode, 0);
        }
    }

    fn unload(&mut self, program: &'static str) {
        // Unloading detaches every link; a failure leaves nothing to retry.
        let _ = match self.program_mut(program) {
            Some(Program::KProbe(p)) => p.unload(),
            Some(Program::TracePoint(p)) => p.unload(),
            Some(Program::FEntry(p)) => p.unload(),
            Some(Program::FExit(p)) => p.unload(),
            _ => Ok(()),
        };
    }
}

fn lost(ebpf: &Ebpf) -> (BTreeMap<u64, u64>, bool) {
    let Some(map) = ebpf.map(maps::LOST) else {
        return (BTreeMap::new(), false);
    };
    let Ok(lost) = HashMap::<&MapData, u64, u64>::try_from(map) else {
        return (BTreeMap::new(), false);
    };
    let mut ok = true;
    let counts = lost
        .iter()
        .filter_map(|r| r.map_err(|_| ok = false).ok())
        .collect();
    (counts, ok)
}
