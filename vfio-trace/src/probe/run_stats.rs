//! The kernel's BPF run-time statistics (`BPF_ENABLE_STATS`), on while the
//! returned descriptor is open, whatever `kernel.bpf_stats_enabled` says:
//! `top` shows its programs' cost with them.

use std::os::fd::OwnedFd;

/// Turns run-time statistics on until the descriptor is dropped.
///
/// # Errors
/// A kernel without `BPF_ENABLE_STATS` (before 5.8), or without the
/// privilege to turn it on.
pub fn enable() -> Result<OwnedFd, String> {
    aya::sys::enable_stats(aya::sys::Stats::RunTime).map_err(|e| e.to_string())
}

#[cfg(test)]
mod tests {
    #[test]
    fn statistics_turn_on_or_say_why_not() {
        // Root on a kernel of 5.8 or later turns them on; elsewhere the
        // reason is one line.
        match super::enable() {
            Ok(_fd) => {}
            Err(e) => assert!(!e.is_empty() && !e.contains('\n'), "{e:?}"),
        }
    }
}
