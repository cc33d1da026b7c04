//! Diagnostics the eBPF programs log on rare paths (aya-log): a struct read
//! that failed, an unexpected fault order, a zap of an unknown device, a full
//! in-flight table. Each kind comes at most once per run.
//!
//! They are always read and counted, so the JSON's health says how many came;
//! they are printed to stderr only with `--verbose`.

use std::sync::{
    Arc,
    atomic::{AtomicU64, Ordering},
};

use aya_log::EbpfLogger;
use tokio::{io::unix::AsyncFd, sync::watch, task::JoinHandle};

/// How each diagnostic is printed.
pub const PREFIX: &str = "vfio-trace: kernel: ";

/// The line printed for one diagnostic.
pub fn line(message: &std::fmt::Arguments<'_>) -> String {
    format!("{PREFIX}{message}")
}

/// A `log` sink for aya-log: counts every record, prints it when verbose.
pub struct Sink {
    verbose: bool,
    received: Arc<AtomicU64>,
}

impl Sink {
    pub fn new(verbose: bool) -> (Self, Arc<AtomicU64>) {
        let received = Arc::new(AtomicU64::new(0));
        (
            Self {
                verbose,
                received: Arc::clone(&received),
            },
            received,
        )
    }
}

impl log::Log for Sink {
    fn enabled(&self, _: &log::Metadata<'_>) -> bool {
        true
    }

    fn log(&self, record: &log::Record<'_>) {
        self.received.fetch_add(1, Ordering::Relaxed);
        if self.verbose {
            eprintln!("{}", line(record.args()));
        }
    }

    fn flush(&self) {}
}

/// A running diagnostics reader.
pub struct Reader {
    handle: JoinHandle<std::io::Result<()>>,
    received: Arc<AtomicU64>,
}

/// Starts reading `logger` until `stop` flips to true, then drains it once more.
pub fn spawn(
    logger: EbpfLogger<Sink>,
    received: Arc<AtomicU64>,
    mut stop: watch::Receiver<bool>,
) -> Reader {
    let handle = tokio::spawn(async move {
        // SAFETY: the logger owns its ring's map fd and keeps it open until
        // it is dropped with this AsyncFd.
        let mut fd =
            unsafe { AsyncFd::register_with_interest(logger, tokio::io::Interest::READABLE) }
                .map_err(std::io::Error::from)?;
        loop {
            tokio::select! {
                guard = fd.readable_mut() => {
                    let mut guard = guard?;
                    guard.get_inner_mut().flush();
                    guard.clear_ready();
                }
                _ = stop.wait_for(|s| *s) => {
                    fd.get_mut().flush();
                    return Ok(());
                }
            }
        }
    });
    Reader { handle, received }
}

impl Reader {
    /// Diagnostics received so far.
    #[must_use]
    pub fn received(&self) -> u64 {
        self.received.load(std::sync::atomic::Ordering::Relaxed)
    }

    /// Waits for the reader to end: the diagnostics received, and why the
    /// reader failed if it did (those after the failure are not counted).
    pub async fn finish(self) -> (u64, Option<String>) {
        let error = match self.handle.await {
            Ok(Ok(())) => None,
            Ok(Err(e)) => Some(e.to_string()),
            // aya-log panics on a record it cannot parse.
            Err(e) => Some(e.to_string()),
        };
        (self.received.load(Ordering::Relaxed), error)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use log::Log as _;

    #[test]
    fn a_diagnostic_is_one_prefixed_line() {
        assert_eq!(
            line(&format_args!("fault of order {}, not 0, 9 or 18", 4)),
            "vfio-trace: kernel: fault of order 4, not 0, 9 or 18"
        );
    }

    #[test]
    fn every_record_counts_printed_or_not() {
        for verbose in [false, true] {
            let (sink, received) = Sink::new(verbose);
            for n in 0..3 {
                sink.log(
                    &log::Record::builder()
                        .level(log::Level::Warn)
                        .args(format_args!("diagnostic {n}"))
                        .build(),
                );
            }
            assert_eq!(received.load(Ordering::Relaxed), 3);
        }
    }
}
