//! The kernel's preemption model, which decides between fentry/fexit and
//! kprobes for the fault handler. A trampoline program runs preemptible: on a
//! kernel that preempts (full, lazy, RT), a program preempted mid-run makes
//! the next run of it on that CPU a recursion miss, and faults go unseen (seen
//! on Debian 7.3, lazy: a third of the fault returns of 32 threads contending
//! for `memory_lock`). kprobe programs run with preemption off and miss nothing
//! that way.

use std::fmt;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Preemption {
    None,
    Voluntary,
    Full,
    Lazy,
    Rt,
}

impl fmt::Display for Preemption {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Self::None => "none",
            Self::Voluntary => "voluntary",
            Self::Full => "full",
            Self::Lazy => "lazy",
            Self::Rt => "rt",
        })
    }
}

impl Preemption {
    /// True when a running BPF trampoline program can be preempted.
    pub fn preempts_programs(self) -> bool {
        matches!(self, Self::Full | Self::Lazy | Self::Rt)
    }

    /// `/sys/kernel/debug/sched/preempt`: the modes, the current one in
    /// parentheses, e.g. `none voluntary full (lazy)`.
    pub fn from_dynamic(text: &str) -> Option<Self> {
        let current = text
            .split_whitespace()
            .find_map(|w| w.strip_prefix('(')?.strip_suffix(')'))?;
        Some(match current {
            "none" => Self::None,
            "voluntary" => Self::Voluntary,
            "full" => Self::Full,
            "lazy" => Self::Lazy,
            _ => return None,
        })
    }

    /// The build's model from the version string (`#1 SMP PREEMPT_DYNAMIC ...`).
    /// `PREEMPT_DYNAMIC` without debugfs says nothing of the current setting:
    /// assume the worst.
    pub fn from_version(version: &str) -> Self {
        let words: Vec<&str> = version.split_whitespace().collect();
        if words.contains(&"PREEMPT_RT") {
            Self::Rt
        } else if words.contains(&"PREEMPT_DYNAMIC") || words.contains(&"PREEMPT") {
            Self::Full
        } else if words.contains(&"PREEMPT_LAZY") {
            Self::Lazy
        } else {
            Self::Voluntary
        }
    }
}

/// Why fentry/fexit must not trace the fault handler under model `p`, if so
/// (the model comes from `Host::preemption`).
pub fn avoid_trampolines(p: Option<Preemption>) -> Option<String> {
    let p = p?;
    p.preempts_programs().then(|| {
        format!("this kernel preempts ({p}), and a preempted fentry program makes its next runs on that CPU miss")
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_the_dynamic_setting() {
        assert_eq!(
            Preemption::from_dynamic("none (voluntary) full \n"),
            Some(Preemption::Voluntary)
        );
        assert_eq!(
            Preemption::from_dynamic("none voluntary full (lazy) \n"),
            Some(Preemption::Lazy)
        );
        assert_eq!(
            Preemption::from_dynamic("full (lazy) "),
            Some(Preemption::Lazy)
        );
        assert_eq!(Preemption::from_dynamic("garbage"), None);
    }

    #[test]
    fn falls_back_to_the_build() {
        assert_eq!(
            Preemption::from_version("#1 SMP Debian 6.1.192-2 (2026-10-01)"),
            Preemption::Voluntary
        );
        assert_eq!(
            Preemption::from_version("#1 SMP PREEMPT_RT Debian"),
            Preemption::Rt
        );
        assert!(Preemption::from_version("#1 SMP PREEMPT_DYNAMIC Debian").preempts_programs());
        assert!(!Preemption::Voluntary.preempts_programs());
    }
}
