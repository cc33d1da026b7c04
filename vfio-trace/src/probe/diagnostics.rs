//! Diagnostics the eBPF programs note on rare paths: a struct read that
//! failed, an unexpected fault order, a zap of an unknown device, a full
//! in-flight table. The programs note each kind once, with its numbers, in
//! the `DIAGNOSED` array; this reader words them.
//!
//! They are always read and counted, so the JSON's health says how many came;
//! they are printed to stderr only with `--verbose`.

use std::{
    sync::{
        Arc,
        atomic::{AtomicU64, Ordering},
    },
    time::Duration,
};

use tokio::{sync::watch, task::JoinHandle};
use vfio_trace_common::{Diagnosis, diagnosis};

use super::counters::Mapped;

/// Entries in the array, and u64 words in each.
pub const KINDS: usize = diagnosis::KINDS as usize;
pub const WORDS: usize = size_of::<Diagnosis>() / size_of::<u64>();

/// How each diagnostic is printed.
pub const PREFIX: &str = "vfio-trace: kernel: ";

/// How often the array is looked at while tracing.
const POLL: Duration = Duration::from_millis(250);

/// The line printed for one diagnostic.
pub fn line(message: &str) -> String {
    format!("{PREFIX}{message}")
}

/// What a noted diagnostic says.
pub fn message(kind: u32, [a, b]: [i64; 2]) -> String {
    match kind {
        diagnosis::FAULT_VMA => {
            format!("fault: vm_fault.vma unreadable (offset {a}); faults go unattributed")
        }
        diagnosis::FAULT_VDEV => format!(
            "fault: vm_area_struct.vm_private_data unreadable (offset {a}); faults go unattributed"
        ),
        diagnosis::DEVICE => format!(
            "vfio device unreadable at step {a} of vdev.pdev, pdev.devfn, pdev.bus, bus.number (offset {b})"
        ),
        diagnosis::ORDER => format!("fault of order {a}, not 0, 9 or 18"),
        diagnosis::ZAP_UNKNOWN => {
            "zap of a vfio mapping not seen mapped or faulted since the start: device unknown"
                .to_owned()
        }
        diagnosis::TASK_STORAGE => {
            "fault: no task storage for this thread; its faults are lost (inflight_full)".to_owned()
        }
        diagnosis::ZAP_INFLIGHT => {
            format!("zap in-flight table full ({a} entries); zaps are lost (inflight_full)")
        }
        diagnosis::LOCK_INFLIGHT => {
            format!("lock wait in-flight table full ({a} entries); waits are lost (inflight_full)")
        }
        diagnosis::FAULT_IN_FLIGHT => format!(
            "fault: the {a} in-flight slots near its own all held; such faults are lost (inflight_full)"
        ),
        other => format!("diagnostic {other} ({a}, {b})"),
    }
}

/// The kinds already reported, so each is counted and printed once.
#[derive(Debug, Default)]
pub struct Reported([bool; KINDS]);

impl Reported {
    /// The messages of entries noted since the last look.
    pub fn news(&mut self, entries: impl IntoIterator<Item = (u32, Diagnosis)>) -> Vec<String> {
        let mut news = Vec::new();
        for (kind, d) in entries {
            let Some(done) = self.0.get_mut(kind as usize) else {
                continue;
            };
            if d.seen != 0 && !*done {
                *done = true;
                news.push(message(kind, d.args));
            }
        }
        news
    }
}

/// The entries of the mapped array; `seen` is read first, so a set one
/// comes with its arguments.
fn entries(array: &Mapped) -> impl Iterator<Item = (u32, Diagnosis)> + '_ {
    (0..diagnosis::KINDS).map(|kind| {
        let at = kind as usize * WORDS;
        let seen = array.word(at);
        let arg = |i| i64::from_ne_bytes(array.word(at + 1 + i).to_ne_bytes());
        (
            kind,
            Diagnosis {
                seen,
                args: [arg(0), arg(1)],
            },
        )
    })
}

/// A running diagnostics reader.
pub struct Reader {
    handle: JoinHandle<()>,
    received: Arc<AtomicU64>,
}

/// Looks at `array` every [`POLL`] until `stop` flips to true, then once
/// more; prints what is new when `verbose`.
pub fn spawn(array: Mapped, verbose: bool, mut stop: watch::Receiver<bool>) -> Reader {
    let received = Arc::new(AtomicU64::new(0));
    let counted = Arc::clone(&received);
    let handle = tokio::spawn(async move {
        let mut reported = Reported::default();
        let mut look = || {
            for news in reported.news(entries(&array)) {
                counted.fetch_add(1, Ordering::Relaxed);
                if verbose {
                    eprintln!("{}", line(&news));
                }
            }
        };
        let mut tick = tokio::time::interval(POLL);
        loop {
            tokio::select! {
                _ = tick.tick() => look(),
                _ = stop.wait_for(|s| *s) => return look(),
            }
        }
    });
    Reader { handle, received }
}

impl Reader {
    /// Diagnostics received so far.
    #[must_use]
    pub fn received(&self) -> u64 {
        self.received.load(Ordering::Relaxed)
    }

    /// Waits for the reader to end: the diagnostics received, and why its
    /// task failed if it did (a panic or a cancel; reading the mapping
    /// cannot fail, and those after the failure are not counted).
    pub async fn finish(self) -> (u64, Option<String>) {
        let error = self.handle.await.err().map(|e| e.to_string());
        (self.received.load(Ordering::Relaxed), error)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_diagnostic_is_one_prefixed_line() {
        assert_eq!(
            line(&message(diagnosis::ORDER, [4, 0])),
            "vfio-trace: kernel: fault of order 4, not 0, 9 or 18"
        );
        assert_eq!(
            message(diagnosis::DEVICE, [3, -1]),
            "vfio device unreadable at step 3 of vdev.pdev, pdev.devfn, pdev.bus, bus.number (offset -1)"
        );
    }

    #[test]
    fn each_kind_is_reported_once_when_noted() {
        let noted = |seen, a| Diagnosis { seen, args: [a, 0] };
        let mut r = Reported::default();
        assert!(r.news([(diagnosis::ORDER, noted(0, 0))]).is_empty());
        assert_eq!(
            r.news([
                (diagnosis::ORDER, noted(1, 5)),
                (diagnosis::ZAP_INFLIGHT, noted(1, 1024)),
                (diagnosis::KINDS, noted(1, 0)),
            ]),
            [
                "fault of order 5, not 0, 9 or 18",
                "zap in-flight table full (1024 entries); zaps are lost (inflight_full)"
            ]
        );
        assert!(r.news([(diagnosis::ORDER, noted(1, 5))]).is_empty());
    }
}
