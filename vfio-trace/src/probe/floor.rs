//! The floor plan (`record --floor`): the fault handler's entry and return
//! only, each running an empty program, so the bench measures what attaching
//! to the handler costs before any program does anything. Every other role is
//! skipped with a reason.

use super::{
    plan::{PlannedProbe, Status},
    role::Role,
};

/// Empty fentry on the fault handler.
pub const FENTRY: &str = "floor_fentry";
/// Empty fexit on the fault handler.
pub const FEXIT: &str = "floor_fexit";
/// Empty kprobe on the fault handler.
pub const KPROBE: &str = "floor_kprobe";
/// Empty kretprobe on the fault handler.
pub const KRETPROBE: &str = "floor_kretprobe";

/// The floor's programs, as the eBPF object names them.
pub const PROGRAMS: [&str; 4] = [FENTRY, FEXIT, KPROBE, KRETPROBE];

/// Why a role does not run in a floor run.
pub const SKIPPED: &str = "floor run: empty programs only";

/// Keeps the fault handler's entry and return and gives them the empty
/// programs: a trampoline where the plan has one (after `--kprobes-only` or
/// the preemption check, it has none), a kprobe otherwise. Every other role
/// that would run is skipped.
pub fn apply(plan: &mut [PlannedProbe]) {
    for p in plan.iter_mut() {
        let (kprobe, trampoline) = match p.role {
            Role::FaultEntry => (KPROBE, FENTRY),
            Role::FaultReturn => (KRETPROBE, FEXIT),
            _ => {
                if matches!(p.status, Status::Available | Status::Inferred) {
                    p.status = Status::Skipped;
                    p.program = None;
                    p.btf_program = None;
                    p.reason = Some(SKIPPED.into());
                }
                continue;
            }
        };
        if p.symbol.is_none() {
            // Absent: nothing to attach, and the run fails as a normal one would.
            continue;
        }
        p.program = Some(kprobe);
        p.btf_program = p.btf_program.map(|_| trampoline);
    }
}

#[cfg(test)]
#[path = "floor_tests.rs"]
mod tests;
