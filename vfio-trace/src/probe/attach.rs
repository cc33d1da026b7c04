//! Attach bookkeeping over a small seam: `Programs` is the only thing that
//! needs root (aya implements it in `load`), so the order, the fallback from
//! trampolines to kprobes, what a failure leaves behind and the detach order
//! are tested against a fake.
//!
//! Order: stage by stage (`Stage::ATTACH_ORDER`: inner, return, entry), so no
//! event is half-seen at start; detach runs the stages backwards.

use std::time::Instant;

use thiserror::Error;

use super::{
    plan::{Kind, PlannedProbe, Status},
    role::{Role, Stage},
};

/// The calls that load and attach programs.
pub trait Programs {
    /// Loads an fentry/fexit program on BTF function `btf_id` of `module`
    /// (vmlinux when `None`) and attaches it.
    fn attach_trampoline(
        &mut self,
        program: &'static str,
        btf_id: u32,
        module: Option<&str>,
    ) -> Result<(), AttachError>;
    /// Loads a kprobe, kretprobe or tracepoint program (once) and attaches it
    /// to `symbol` (`category:name` for a tracepoint).
    fn attach_probe(&mut self, program: &'static str, symbol: &str) -> Result<(), AttachError>;
    /// Detaches every link of `program` and unloads it.
    fn unload(&mut self, program: &'static str);
    /// Tells the fault entries how the handler's returns are seen (`true`:
    /// by an fexit, which finds an entry by its `vmf`). Called once the
    /// return stage is attached and before any entry is.
    fn fault_returns_by_fexit(&mut self, fexit: bool);
}

/// Why one probe did not attach.
#[derive(Debug, Error)]
pub enum AttachError {
    /// No candidate symbol; the text says which were looked for.
    #[error("{0}")]
    Absent(String),
    #[error("program {0} missing from the object")]
    NoProgram(&'static str),
    #[error("program {0} has an unexpected type")]
    WrongType(&'static str),
    #[error("no BTF function {0}")]
    NoBtfFunction(String),
    #[error("BTF object {name}")]
    BtfObject {
        name: String,
        #[source]
        source: std::io::Error,
    },
    #[error("{0} is not category:name")]
    NotTracepoint(String),
    #[error("load")]
    Load(#[source] aya::programs::ProgramError),
    #[error("attach")]
    Attach(#[source] aya::programs::ProgramError),
}

/// A required probe did not attach; everything attached before it was detached.
#[derive(Debug, Error)]
#[error("required probe {role} did not attach")]
pub struct RequiredFailed {
    pub role: Role,
    #[source]
    pub source: AttachError,
}

/// Attaches every available probe of `plan`, stage by stage. An optional
/// probe that fails is marked `Failed` with its reason and the rest go on; a
/// required one that fails detaches what is attached, in reverse order.
pub fn attach_plan(
    plan: &mut [PlannedProbe],
    programs: &mut impl Programs,
) -> Result<(), RequiredFailed> {
    if let Some(p) = plan.iter().find(|p| p.required && p.symbol.is_none()) {
        return Err(RequiredFailed {
            role: p.role,
            source: AttachError::Absent(p.reason.clone().unwrap_or_else(|| "absent".into())),
        });
    }
    let mut attached = Vec::new();
    let mut returns_told = false;
    for i in staged(plan, Stage::ATTACH_ORDER) {
        if plan[i].role.stage() == Stage::Entry && !returns_told {
            programs.fault_returns_by_fexit(fault_return_is_fexit(plan));
            returns_told = true;
        }
        if plan[i].status != Status::Available {
            continue;
        }
        let started = Instant::now();
        let attached_one = attach_one(&mut plan[i], programs);
        plan[i].attach_us = Some(u64::try_from(started.elapsed().as_micros()).unwrap_or(u64::MAX));
        if let Err(source) = attached_one {
            if plan[i].required {
                let role = plan[i].role;
                roll_back(plan, &attached, programs);
                return Err(RequiredFailed { role, source });
            }
            continue;
        }
        attached.push(i);
    }
    Ok(())
}

/// True when the fault handler's return probe attached as an fexit.
fn fault_return_is_fexit(plan: &[PlannedProbe]) -> bool {
    plan.iter().any(|p| {
        p.role == Role::FaultReturn && p.status == Status::Attached && p.kind == Kind::Fexit
    })
}

/// The programs of attached probes in detach order (entries first), each once.
pub fn detach_order(plan: &[PlannedProbe]) -> Vec<&'static str> {
    let mut stages = Stage::ATTACH_ORDER;
    stages.reverse();
    let mut names: Vec<&'static str> = Vec::new();
    for i in staged(plan, stages) {
        if plan[i].status == Status::Attached
            && let Some(program) = plan[i].program
            && !names.contains(&program)
        {
            names.push(program);
        }
    }
    names
}

/// Plan indices by stage, in `stages` order, plan order within a stage.
fn staged(plan: &[PlannedProbe], stages: [Stage; 3]) -> Vec<usize> {
    stages
        .iter()
        .flat_map(|&stage| (0..plan.len()).filter(move |&i| plan[i].role.stage() == stage))
        .collect()
}

/// Tries the trampoline first where there is one, then the kprobe. The
/// probe's kind, program, status and reason say what happened.
fn attach_one(p: &mut PlannedProbe, programs: &mut impl Programs) -> Result<(), AttachError> {
    let (Some(symbol), Some(program)) = (p.symbol.clone(), p.program) else {
        return Err(AttachError::Absent(format!("{} has no symbol", p.role)));
    };
    let mut fell_back = None;
    if let Some(btf_program) = p.btf_program {
        let tried = match p.btf_id {
            Some(id) => programs.attach_trampoline(btf_program, id, p.module.as_deref()),
            None => Err(AttachError::NoBtfFunction(symbol.clone())),
        };
        match tried {
            Ok(()) => {
                p.program = Some(btf_program);
                p.status = Status::Attached;
                p.reason = None;
                return Ok(());
            }
            Err(e) => {
                fell_back = Some(error_chain(&e));
                p.kind = p.kind.without_trampoline();
            }
        }
    }
    match programs.attach_probe(program, &symbol) {
        Ok(()) => {
            p.status = Status::Attached;
            p.reason = fell_back.map(|r| format!("trampoline refused ({r}); kprobe used"));
            Ok(())
        }
        Err(e) => {
            p.status = Status::Failed;
            p.reason = Some(error_chain(&e));
            Err(e)
        }
    }
}

/// Undoes `attached` (plan indices, in attach order), last first.
fn roll_back(plan: &mut [PlannedProbe], attached: &[usize], programs: &mut impl Programs) {
    let mut unloaded: Vec<&'static str> = Vec::new();
    for &i in attached.iter().rev() {
        let p = &mut plan[i];
        if let Some(program) = p.program
            && !unloaded.contains(&program)
        {
            programs.unload(program);
            unloaded.push(program);
        }
        p.status = Status::Available;
        p.reason = Some("detached: a required probe failed".into());
    }
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

#[cfg(test)]
#[path = "attach_tests.rs"]
mod tests;
