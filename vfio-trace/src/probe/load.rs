//! Loading the embedded eBPF object, attaching the plan, and detaching.
//!
//! Module functions are probed with kprobes: aya cannot fentry into split
//! module BTF. Attach order matters: inserts first, fault return, then fault
//! entry, so no fault is half-seen at start; entry goes first at detach.

use std::collections::BTreeMap;

use aya::{
    Ebpf, EbpfLoader,
    maps::{HashMap, HashOfMaps, MapData, PerCpuArray},
};
use thiserror::Error;
use vfio_trace_common::{Config, counter, maps};

use super::{
    btf_object,
    plan::{Kind, PlannedProbe, Status},
    role::{Role, Stage},
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
    #[error("no required probe attached: {0}")]
    Required(String),
}

/// Loaded programs with the plan's attach status.
pub struct Tracer {
    ebpf: Ebpf,
    pub plan: Vec<PlannedProbe>,
}

fn map_err(name: &'static str) -> impl FnOnce(aya::maps::MapError) -> LoadError {
    move |source| LoadError::Map { name, source }
}

impl Tracer {
    /// Loads the programs with `config`; no probe is attached yet.
    pub fn load(config: Config, plan: Vec<PlannedProbe>) -> Result<Self, LoadError> {
        // No CO-RE relocations: offsets come in Config, so the kernel's BTF
        // need not be parsed a second time.
        let ebpf = EbpfLoader::without_kernel_btf()
            .override_global(maps::CONFIG, &config, true)
            // Task storage (per-thread fault state) has no aya wrapper; the
            // programs are its only users.
            .allow_unsupported_maps()
            .load(OBJECT)?;
        Ok(Self { ebpf, plan })
    }

    /// Restricts tracing to these device keys (takes effect when `Config::filter_devices` is set).
    pub fn filter_devices(&mut self, keys: &[u32]) -> Result<(), LoadError> {
        let map = self
            .ebpf
            .map_mut(maps::DEVICE_FILTER)
            .ok_or(LoadError::MissingMap(maps::DEVICE_FILTER))?;
        let mut filter: HashMap<&mut MapData, u32, u8> =
            HashMap::try_from(map).map_err(map_err(maps::DEVICE_FILTER))?;
        for key in keys {
            filter
                .insert(key, 1, 0)
                .map_err(map_err(maps::DEVICE_FILTER))?;
        }
        Ok(())
    }

    /// Gives a device its own ring buffer (`inner` must be a ring buffer map).
    pub fn add_device_ring(&mut self, key: u32, inner: &MapData) -> Result<(), LoadError> {
        let map = self
            .ebpf
            .map_mut(maps::DEVICE_RINGS)
            .ok_or(LoadError::MissingMap(maps::DEVICE_RINGS))?;
        let mut rings: HashOfMaps<&mut MapData, u32, MapData> =
            HashOfMaps::try_from(map).map_err(map_err(maps::DEVICE_RINGS))?;
        rings
            .insert(key, inner, 0)
            .map_err(map_err(maps::DEVICE_RINGS))
    }

    /// Takes the shared ring buffer out of the object.
    pub fn take_shared_ring(&mut self) -> Result<aya::maps::Map, LoadError> {
        self.ebpf
            .take_map(maps::SHARED_RING)
            .ok_or(LoadError::MissingMap(maps::SHARED_RING))
    }

    /// Attaches every probe whose symbol exists; failures are kept in the plan.
    /// Fails only when a required probe did not attach.
    pub fn attach(&mut self) -> Result<(), LoadError> {
        // Entries last, so every event that starts also finishes.
        let mut idx: Vec<usize> = (0..self.plan.len()).collect();
        idx.sort_by_key(|&i| self.plan[i].role.stage());
        for i in idx {
            let probe = &mut self.plan[i];
            let (Some(symbol), Some(program)) = (probe.symbol.clone(), probe.program) else {
                continue;
            };
            let mut fell_back = None;
            if let Some(btf_program) = probe.btf_program {
                let attached = match probe.btf_id {
                    Some(id) => {
                        attach_btf(&mut self.ebpf, btf_program, id, probe.module.as_deref())
                    }
                    None => Err(format!("no BTF function {symbol}")),
                };
                match attached {
                    Ok(()) => {
                        probe.program = Some(btf_program);
                        probe.status = Status::Attached;
                        probe.reason = None;
                        continue;
                    }
                    Err(reason) => fell_back = Some(reason),
                }
            }
            if probe.btf_program.is_some() {
                probe.kind = match probe.kind {
                    Kind::Fentry => Kind::Kprobe,
                    Kind::Fexit => Kind::Kretprobe,
                    other => other,
                };
            }
            match attach_one(&mut self.ebpf, program, &symbol) {
                Ok(()) => {
                    probe.status = Status::Attached;
                    probe.reason =
                        fell_back.map(|r| format!("trampoline refused ({r}); kprobe used"));
                }
                Err(reason) => {
                    probe.status = Status::Failed;
                    probe.reason = Some(reason);
                }
            }
        }
        let failed: Vec<String> = self
            .plan
            .iter()
            .filter(|p| p.required && p.status != Status::Attached)
            .map(|p| {
                format!(
                    "{}: {}",
                    p.role,
                    p.reason.as_deref().unwrap_or("not attached")
                )
            })
            .collect();
        if failed.is_empty() {
            Ok(())
        } else {
            Err(LoadError::Required(failed.join("; ")))
        }
    }

    /// Takes the map of zap stacks out of the object, to read after detach.
    pub fn take_stacks(&mut self) -> Option<aya::maps::Map> {
        self.ebpf.take_map(maps::STACKS)
    }

    /// Stops new events: unloads entries first, then everything else.
    /// Returns what the kernel side counted: losses, and the programs' run time.
    pub fn detach(mut self) -> KernelCounts {
        // Entries first, so nothing starts that cannot finish.
        let mut names: Vec<(bool, &'static str)> = self
            .plan
            .iter()
            .filter(|p| p.status == Status::Attached)
            .filter_map(|p| {
                let later = p.role.stage() != Stage::Entry;
                p.program.map(|prog| (later, prog))
            })
            .collect();
        names.sort_unstable();
        names.dedup();
        let names: Vec<&'static str> = names.into_iter().map(|(_, n)| n).collect();
        // Run time is read before anything unloads; the kernel keeps it only
        // while `kernel.bpf_stats_enabled` is on.
        let (mut run_ns, mut run_cnt, mut recursion_misses) = (0, 0, 0);
        // A return program's skipped runs already count as missed returns.
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
                if !returns.contains(name) {
                    recursion_misses += info.recursion_misses();
                }
            }
        }
        for name in names {
            if let Some(program) = self.ebpf.program_mut(name) {
                let _ = match program {
                    aya::programs::Program::KProbe(p) => p.unload(),
                    aya::programs::Program::TracePoint(p) => p.unload(),
                    aya::programs::Program::FEntry(p) => p.unload(),
                    aya::programs::Program::FExit(p) => p.unload(),
                    _ => Ok(()),
                };
            }
        }
        let (by_device, device_map_ok) = lost(&self.ebpf);
        let (counters, cause_map_ok) = counters(&self.ebpf);
        KernelCounts {
            lost_by_device: by_device,
            counters,
            loss_maps_readable: device_map_ok && cause_map_ok,
            bpf_run_ns: run_ns,
            bpf_run_cnt: run_cnt,
            recursion_misses,
        }
    }
}

/// What the programs counted by the time they were detached.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct KernelCounts {
    /// Events dropped to full rings, by device key.
    pub lost_by_device: BTreeMap<u32, u64>,
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
}

/// Loads and attaches an fentry/fexit program on the function with BTF type
/// `id` in the BTF of `module` (vmlinux when `None`).
fn attach_btf(ebpf: &mut Ebpf, program: &str, id: u32, module: Option<&str>) -> Result<(), String> {
    let fd = btf_object::fd_by_name(module.unwrap_or("vmlinux"))
        .map_err(|e| format!("BTF object {}: {e}", module.unwrap_or("vmlinux")))?;
    let prog = ebpf
        .program_mut(program)
        .ok_or_else(|| format!("program {program} missing from the object"))?;
    let load = |e: aya::programs::ProgramError| format!("load: {}", error_chain(&e));
    let attach = |e: aya::programs::ProgramError| format!("attach: {}", error_chain(&e));
    match prog {
        aya::programs::Program::FEntry(p) => {
            p.load_in_btf_object(id, fd).map_err(load)?;
            p.attach().map_err(attach)?;
        }
        aya::programs::Program::FExit(p) => {
            p.load_in_btf_object(id, fd).map_err(load)?;
            p.attach().map_err(attach)?;
        }
        _ => return Err(format!("program {program} is not fentry/fexit")),
    }
    Ok(())
}

fn attach_one(ebpf: &mut Ebpf, program: &str, symbol: &str) -> Result<(), String> {
    let prog = ebpf
        .program_mut(program)
        .ok_or_else(|| format!("program {program} missing from the object"))?;
    match prog {
        aya::programs::Program::KProbe(kprobe) => {
            // One program may serve several roles (hold_end): load it once.
            if kprobe.fd().is_err() {
                kprobe
                    .load()
                    .map_err(|e| format!("load: {}", error_chain(&e)))?;
            }
            kprobe
                .attach(symbol, 0)
                .map_err(|e| format!("attach: {}", error_chain(&e)))?;
        }
        aya::programs::Program::TracePoint(tp) => {
            let (category, name) = symbol
                .split_once(':')
                .ok_or_else(|| format!("{symbol} is not category:name"))?;
            tp.load()
                .map_err(|e| format!("load: {}", error_chain(&e)))?;
            tp.attach(category, name)
                .map_err(|e| format!("attach: {}", error_chain(&e)))?;
        }
        _ => return Err(format!("program {program} has an unexpected type")),
    }
    Ok(())
}

fn lost(ebpf: &Ebpf) -> (BTreeMap<u32, u64>, bool) {
    let Some(map) = ebpf.map(maps::LOST) else {
        return (BTreeMap::new(), false);
    };
    let Ok(lost) = HashMap::<&MapData, u32, u64>::try_from(map) else {
        return (BTreeMap::new(), false);
    };
    let mut ok = true;
    let counts = lost
        .iter()
        .filter_map(|r| r.map_err(|_| ok = false).ok())
        .collect();
    (counts, ok)
}

fn counters(ebpf: &Ebpf) -> ([u64; counter::COUNT as usize], bool) {
    let mut out = [0; counter::COUNT as usize];
    let Some(map) = ebpf.map(maps::COUNTERS) else {
        return (out, false);
    };
    let Ok(array) = PerCpuArray::<&MapData, u64>::try_from(map) else {
        return (out, false);
    };
    let mut ok = true;
    for (cause, slot) in (0..counter::COUNT).zip(out.iter_mut()) {
        match array.get(&cause, 0) {
            Ok(per_cpu) => *slot = per_cpu.iter().sum(),
            Err(_) => ok = false,
        }
    }
    (out, ok)
}

/// An error and its causes on one line.
pub fn error_chain(e: &dyn std::error::Error) -> String {
    let mut s = e.to_string();
    let mut cur = e.source();
    while let Some(c) = cur {
        s.push_str(": ");
        s.push_str(&c.to_string());
        cur = c.source();
    }
    s
}
