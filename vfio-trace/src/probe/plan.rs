//! The probe plan: for each role, the first candidate of the table whose
//! symbol the running kernel has. It never assumes a version; what cannot
//! attach stays visible with its reason.

use std::fmt;

use serde::{Deserialize, Serialize};

pub use super::role::Kind;
use super::{
    kallsyms::Symbols,
    role::{Need, Role},
    table::{self, ROWS},
};

/// Where a planned probe stands.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Status {
    /// The symbol exists; not attached yet (what `check` reports).
    Available,
    /// Attached and running.
    Attached,
    /// No candidate symbol in this kernel.
    Absent,
    /// The symbol exists but attaching failed.
    Failed,
    /// The symbol exists but this kernel cannot attach kprobes at all.
    Unsupported,
    /// Not attached because what it would count follows from another probe.
    Inferred,
    /// Left out of this run on purpose (a floor run attaches the fault handler only).
    Skipped,
}

impl fmt::Display for Status {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Self::Available => "available",
            Self::Attached => "attached",
            Self::Absent => "absent",
            Self::Failed => "failed",
            Self::Unsupported => "unsupported",
            Self::Inferred => "inferred",
            Self::Skipped => "skipped",
        })
    }
}

/// Marks every present symbol unusable: the kernel has no kprobes.
pub fn without_kprobes(plan: &mut [PlannedProbe]) {
    for p in plan.iter_mut().filter(|p| p.status == Status::Available) {
        p.status = Status::Unsupported;
        p.reason = Some("symbol present, but this kernel cannot attach kprobes".into());
    }
}

/// One probe of the plan, as `check` and the JSON show it.
#[derive(Debug, Clone, Serialize)]
pub struct PlannedProbe {
    #[serde(rename = "name")]
    pub role: Role,
    /// Program in the eBPF object; `null` when absent.
    pub program: Option<&'static str>,
    /// fentry/fexit program tried first; `kind` says which one ran.
    #[serde(skip)]
    pub btf_program: Option<&'static str>,
    /// The symbol's BTF type id, where `btf_program` can use it.
    #[serde(skip)]
    pub btf_id: Option<u32>,
    pub kind: Kind,
    /// The chosen symbol; `null` when absent.
    pub symbol: Option<String>,
    /// Module holding the symbol, when it is a module function.
    pub module: Option<String>,
    pub required: bool,
    pub status: Status,
    /// Why it is absent or failed.
    pub reason: Option<String>,
    /// Time to load and attach it (fallback included), for probes tried.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub attach_us: Option<u64>,
}

/// A probe as a recording holds it; its program is read back as this
/// build's table names it.
#[derive(Deserialize)]
struct ProbeRecord {
    name: Role,
    program: Option<String>,
    kind: Kind,
    symbol: Option<String>,
    module: Option<String>,
    required: bool,
    status: Status,
    reason: Option<String>,
    #[serde(default)]
    attach_us: Option<u64>,
}

impl<'de> Deserialize<'de> for PlannedProbe {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        Self::try_from(ProbeRecord::deserialize(d)?).map_err(serde::de::Error::custom)
    }
}

impl TryFrom<ProbeRecord> for PlannedProbe {
    type Error = String;

    fn try_from(r: ProbeRecord) -> Result<Self, String> {
        let program = match r.program {
            None => None,
            Some(name) => {
                Some(table::program(&name).ok_or_else(|| format!("unknown eBPF program {name}"))?)
            }
        };
        Ok(Self {
            role: r.name,
            program,
            btf_program: None,
            btf_id: None,
            kind: r.kind,
            symbol: r.symbol,
            module: r.module,
            required: r.required,
            status: r.status,
            reason: r.reason,
            attach_us: r.attach_us,
        })
    }
}

/// Chooses the first present candidate for every role. Probes that would only
/// repeat what the fault event already says are left unattached, so a 4 KiB
/// fault runs two programs, not three. `no_trampolines` gives the reason to
/// use kprobes where fentry/fexit would do (see `preempt`).
pub fn plan(symbols: &Symbols, no_trampolines: Option<&str>) -> Vec<PlannedProbe> {
    let mut plan = choose(symbols);
    if let Some(why) = no_trampolines {
        use_kprobes(&mut plan, why);
    }
    if handler_has_order(&plan) {
        for p in plan
            .iter_mut()
            .filter(|p| p.role.need() == Need::Inserts && p.status == Status::Available)
        {
            p.status = Status::Inferred;
            p.program = None;
            p.reason = Some(
                "not attached: the fault handler takes an order, so each mapped fault \
                 inserts exactly one entry of that order"
                    .into(),
            );
        }
    }
    plan
}

/// Uses kprobes where the table offers fentry/fexit, saying why.
pub fn use_kprobes(plan: &mut [PlannedProbe], why: &str) {
    for p in plan.iter_mut().filter(|p| has_trampoline(p)) {
        p.btf_program = None;
        p.btf_id = None;
        p.kind = p.kind.without_trampoline();
        p.reason = Some(format!("kprobe, not fentry/fexit: {why}"));
    }
}

/// The chosen candidate has a trampoline program (whether or not it is still planned).
fn has_trampoline(p: &PlannedProbe) -> bool {
    table::row(p.role)
        .and_then(|row| {
            row.candidates
                .iter()
                .find(|c| p.symbol.as_deref() == Some(c.symbol))
        })
        .is_some_and(|c| c.btf_program.is_some())
}

fn choose(symbols: &Symbols) -> Vec<PlannedProbe> {
    ROWS.iter()
        .map(|row| {
            let chosen = row.candidates.iter().find(|c| symbols.contains(c.symbol));
            let names: Vec<&str> = row.candidates.iter().map(|c| c.symbol).collect();
            PlannedProbe {
                role: row.role,
                program: chosen.map(|c| c.program),
                btf_program: chosen.and_then(|c| c.btf_program),
                btf_id: None,
                kind: match (row.kind, chosen.and_then(|c| c.btf_program)) {
                    (Kind::Kprobe, Some(_)) => Kind::Fentry,
                    (Kind::Kretprobe, Some(_)) => Kind::Fexit,
                    (kind, _) => kind,
                },
                symbol: chosen.map(|c| c.symbol.to_owned()),
                module: chosen
                    .and_then(|c| symbols.module_of(c.symbol))
                    .map(str::to_owned),
                required: row.role.need().is_required(),
                status: if chosen.is_some() {
                    Status::Available
                } else {
                    Status::Absent
                },
                reason: chosen.is_none().then(|| {
                    format!(
                        "none of {} in this kernel: {}",
                        names.join(", "),
                        row.absent_because
                    )
                }),
                attach_us: None,
            }
        })
        .collect()
}

/// True when the fault handler takes the requested order as its second argument.
pub fn handler_has_order(plan: &[PlannedProbe]) -> bool {
    plan.iter().any(|p| {
        p.role == Role::FaultEntry && p.symbol.as_deref() == Some("vfio_pci_mmap_huge_fault")
    })
}

#[cfg(test)]
#[path = "plan_tests.rs"]
mod tests;
