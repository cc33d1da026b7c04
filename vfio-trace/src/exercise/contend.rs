//! `contend:THREADS:RESETS:SIZE`: threads keep faulting their own mapping of
//! the BAR while the main thread resets the device. Each reset takes the
//! device's `memory_lock` for writing and zaps every mapping, so the threads'
//! refaults wait for it: contention on purpose. Memory decode stays on (a
//! reset restores `PCI_COMMAND`), so no thread ever takes SIGBUS.

use std::{
    sync::atomic::{AtomicBool, AtomicU32, Ordering},
    thread,
    time::{Duration, Instant},
};

use serde::Serialize;

use super::{error::ExerciseError, mapping::BarMapping, spec::PAGE, vfio::Device};

#[derive(Debug, Serialize)]
pub struct Contend {
    pub spec: String,
    pub threads: u32,
    pub resets: u32,
    pub size: u64,
    /// Reads made by each thread; every pass after a reset refaults.
    pub touches: Vec<u64>,
    pub elapsed_ns: u64,
}

/// Runs the phase; `mmaps` and `touches` are what the totals gain.
pub fn run(
    device: &Device,
    bar_offset: u64,
    spec: String,
    threads: u32,
    resets: u32,
    size: u64,
) -> Result<Contend, ExerciseError> {
    let start = Instant::now();
    let stop = AtomicBool::new(false);
    let ready = AtomicU32::new(0);
    let results = thread::scope(|s| -> Result<Vec<u64>, ExerciseError> {
        let workers: Vec<_> = (0..threads)
            .map(|_| {
                s.spawn(|| -> Result<u64, ExerciseError> {
                    let map = BarMapping::map(device.file(), bar_offset, size, Some(PAGE))?;
                    let mut touches = map.touch(PAGE, u64::MAX);
                    ready.fetch_add(1, Ordering::SeqCst);
                    while !stop.load(Ordering::SeqCst) {
                        touches += map.touch(PAGE, u64::MAX);
                    }
                    map.unmap()?;
                    Ok(touches)
                })
            })
            .collect();
        // Every thread has its mapping populated before the first reset.
        let deadline = Instant::now() + Duration::from_secs(30);
        while ready.load(Ordering::SeqCst) < threads && Instant::now() < deadline {
            thread::sleep(Duration::from_millis(1));
        }
        let mut outcome = Ok(());
        for _ in 0..resets {
            thread::sleep(Duration::from_millis(20));
            if let Err(e) = device.reset() {
                outcome = Err(ExerciseError::from(e));
                break;
            }
        }
        thread::sleep(Duration::from_millis(20));
        stop.store(true, Ordering::SeqCst);
        let mut touches = Vec::new();
        for w in workers {
            match w.join() {
                Ok(Ok(n)) => touches.push(n),
                Ok(Err(e)) => outcome = outcome.and(Err(e)),
                Err(_) => outcome = outcome.and(Err(ExerciseError::ThreadPanicked)),
            }
        }
        outcome.map(|()| touches)
    })?;
    Ok(Contend {
        spec,
        threads,
        resets,
        size,
        touches: results,
        elapsed_ns: u64::try_from(start.elapsed().as_nanos()).unwrap_or(u64::MAX),
    })
}
