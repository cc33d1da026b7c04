//! `vfio-trace record`: attach, run a command (or wait), detach, write JSON.
//! Whatever ends the run — the command, the duration, Ctrl-C, SIGTERM or an
//! error — the document is written with everything recorded until then.

pub mod devices;
pub mod dma;
pub mod document;
#[cfg(test)]
pub(crate) mod document_tests;
pub mod events;
pub mod health;
pub mod mappings;
pub mod timeline;
pub mod zaps;

use std::{
    io::Write as _,
    path::PathBuf,
    process::ExitCode,
    time::{Duration, Instant},
};

use anyhow::{Context as _, bail};
use tokio::signal::unix::{SignalKind, signal};

use crate::{
    device::{Bdf, PciDevice, Sysfs},
    kernel::Generation,
    model::Model,
    probe::{
        self, Host,
        session::{Options, Session},
    },
};
use document::{RunInfo, StopReason};

#[derive(clap::Args, Debug)]
pub struct RecordArgs {
    /// Trace only this device (repeatable). Default: every device bound to vfio-pci.
    #[arg(long = "device", value_name = "BDF")]
    pub devices: Vec<String>,
    /// Trace only this process id.
    #[arg(long)]
    pub pid: Option<u32>,
    /// Stop after this many seconds.
    #[arg(long, value_name = "SECS")]
    pub duration: Option<f64>,
    /// Write the JSON here instead of standard output.
    #[arg(long, short, value_name = "FILE")]
    pub output: Option<PathBuf>,
    /// Ring buffer per device, in MiB (a power of two). Default: 16 MiB shared
    /// out, at least 1 MiB each (see `default_ring_mib`).
    #[arg(long, value_name = "MIB")]
    pub ring_mib: Option<u32>,
    /// Attach kprobes even where fentry/fexit would work (to compare their cost).
    #[arg(long)]
    pub kprobes_only: bool,
    /// Attach empty programs to the fault handler and nothing else: the
    /// bench's floor, what merely dispatching to BPF costs a fault. Faults
    /// read 0.
    #[arg(long, hide = true)]
    pub floor: bool,
    /// Print the eBPF programs' diagnostics of rare paths (a struct read that
    /// failed, an unexpected fault order) to stderr.
    #[arg(long, short)]
    pub verbose: bool,
    /// Also write every fault, zap, write hold, lock wait and task name to
    /// FILE, one JSON object a line (`report --trace-event` converts it).
    #[arg(long, value_name = "FILE")]
    pub events: Option<PathBuf>,
    /// Command to run while recording.
    #[arg(last = true, value_name = "COMMAND")]
    pub command: Vec<String>,
}

/// Checks the requested devices exist and are bound to vfio-pci.
pub fn resolve_devices(sysfs: &Sysfs, requested: &[String]) -> anyhow::Result<Vec<PciDevice>> {
    if requested.is_empty() {
        return Ok(sysfs.vfio_devices());
    }
    requested
        .iter()
        .map(|s| Ok(sysfs.vfio_device(Bdf::parse(s)?)?))
        .collect()
}

fn validate(args: &RecordArgs) -> anyhow::Result<()> {
    if let Some(d) = args.duration
        && !(d.is_finite() && d > 0.0)
    {
        bail!("--duration must be a positive number of seconds, not {d}");
    }
    if let Some(mib) = args.ring_mib
        && (!mib.is_power_of_two() || mib > 1024)
    {
        bail!("--ring-mib must be a power of two up to 1024, not {mib}");
    }
    Ok(())
}

/// The default ring per device, from the rate it must absorb: a 4 KiB fault
/// storm on one CPU writes ~140,000 faults (40 bytes each) a second under
/// emulation and several times that natively, while the reader may wait a
/// scheduler tick or more for the CPU (seen: ~80 ms on a lazily preempting
/// kernel, where 1 MiB of 112-byte events lost 1.4% of a 262,144-fault
/// storm), and longer when it yields the CPU. 16 MiB in all, since every
/// ring page is mapped twice and counts in RSS: one device gets all of it
/// (~420,000 faults, a 1 GiB storm and more), many get less, at least 1 MiB.
pub fn default_ring_mib(devices: usize) -> u32 {
    let share = 16 / u32::try_from(devices.max(1)).unwrap_or(u32::MAX).max(1);
    1 << share.clamp(1, 16).ilog2()
}

/// The devices that get a ring of their own: every device bound to vfio-pci
/// now (a device filtered out in the kernel shows an empty ring) and every
/// device asked for. Devices bound later use the shared ring.
pub fn ring_devices(sysfs: &Sysfs, requested: impl IntoIterator<Item = Bdf>) -> Vec<Bdf> {
    let mut rings: Vec<Bdf> = sysfs.vfio_devices().iter().map(|d| d.bdf).collect();
    rings.extend(requested);
    rings.sort();
    rings.dedup();
    rings
}

pub fn run(args: &RecordArgs) -> anyhow::Result<ExitCode> {
    validate(args)?;
    let pci = resolve_devices(&Sysfs::default(), &args.devices)?;
    // Open the output first: a bad path fails before anything attaches.
    // Buffered: the pretty printer writes a few bytes at a time, and one
    // syscall each took about 3 s for a 24 KB document on a 9p share.
    let mut out: Box<dyn std::io::Write> = match &args.output {
        Some(path) => Box::new(std::io::BufWriter::new(
            std::fs::File::create(path)
                .with_context(|| format!("cannot write {}", path.display()))?,
        )),
        None => Box::new(std::io::BufWriter::new(std::io::stdout())),
    };
    let mut sink = args
        .events
        .as_deref()
        .map(events::EventSink::create)
        .transpose()?;
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .context("starting the async runtime")?;
    let (doc, status) = runtime.block_on(record(args, pci, sink.as_mut()))?;
    if let Some(sink) = sink {
        let written = sink.lines_written;
        match sink.finish() {
            Some(err) => eprintln!("vfio-trace: events file incomplete: {err}"),
            None => eprintln!("vfio-trace: {written} events written"),
        }
    }
    serde_json::to_writer_pretty(&mut out, &doc).context("writing JSON")?;
    writeln!(out).context("writing JSON")?;
    out.flush().context("writing JSON")?;
    let faults: u64 = doc.devices.iter().map(|d| d.faults.total).sum();
    eprintln!(
        "vfio-trace: recorded {faults} faults on {} device(s), {} lost, stopped: {:?}",
        doc.devices.len(),
        doc.lost_events,
        doc.stop_reason
    );
    if doc.lost_events > 0 {
        eprintln!(
            "vfio-trace: lost events by cause: {}",
            serde_json::to_string(&doc.losses).unwrap_or_default()
        );
    }
    for problem in doc.health.problems() {
        eprintln!("vfio-trace: tracer health: {problem}");
    }
    if let Some(err) = &doc.error {
        eprintln!("vfio-trace: {err}");
        return Ok(ExitCode::FAILURE);
    }
    Ok(match status {
        Some(0) | None => ExitCode::SUCCESS,
        Some(code) => ExitCode::from(u8::try_from(code).unwrap_or(1)),
    })
}

#[allow(
    clippy::too_many_lines,
    reason = "one run read top to bottom: preflight, attach, trace, stop, drain, in that order"
)]
async fn record(
    args: &RecordArgs,
    pci: Vec<PciDevice>,
    mut sink: Option<&mut events::EventSink>,
) -> anyhow::Result<(document::Document, Option<i32>)> {
    // Attach time includes the preflight (parsing BTF is most of it), as
    // it did when the session read the machine itself.
    let attach_started = Instant::now();
    // The same look at the machine as `check`; `Session::start` refuses it
    // when `check` would say not ready.
    let preflight = probe::preflight(&Host::current());
    preflight.ensure_ready()?;
    let kernel = preflight.kernel.clone();
    let generation = kernel.generation.unwrap_or(Generation::HugeFault);
    let mut model = Model::new(generation);
    for d in &pci {
        model.add_device(
            d.bdf,
            d.bars.iter().map(|b| (b.index, b.start, b.size)).collect(),
        );
    }
    let ring_devices = ring_devices(&Sysfs::default(), pci.iter().map(|d| d.bdf));
    let ring_mib = args
        .ring_mib
        .unwrap_or_else(|| default_ring_mib(ring_devices.len()));
    let opts = Options {
        devices: ring_devices,
        only: (!args.devices.is_empty()).then(|| pci.iter().map(|d| d.bdf).collect()),
        pid: args.pid,
        ring_bytes: ring_mib << 20,
        trampolines: !args.kprobes_only,
        floor: args.floor,
        verbose: args.verbose,
        // Streaming every event to `--events` costs the collector several
        // times more per event: yielding, it fell behind on a 1 GiB storm
        // and lost 34,527 events, so then it keeps its priority.
        yield_cpu: sink.is_none(),
    };
    let mut session = Session::start(preflight, &opts)?;
    if args.verbose
        && let Some(e) = &session.diagnostics_error
    {
        eprintln!("vfio-trace: kernel diagnostics unavailable: {e}");
    }
    let attach_ms = attach_started.elapsed().as_secs_f64() * 1000.0;
    let (cpu_at_attach, _) = health::own_usage();
    let origin_ns = monotonic_ns();
    model.set_origin_ns(origin_ns);
    if let Some(s) = sink.as_deref_mut() {
        s.start(events::Lines::new(
            generation,
            origin_ns,
            pci.iter()
                .map(|d| {
                    (
                        d.bdf,
                        d.bars.iter().map(|b| (b.index, b.start, b.size)).collect(),
                    )
                })
                .collect(),
        ));
    }
    model.set_zap_walks_known(session.zap_walks_known());
    eprintln!("vfio-trace: {}", session.summary());

    let offsets = session.offsets.clone();
    let started = Instant::now();
    let mut sigint = signal(SignalKind::interrupt()).context("installing the SIGINT handler")?;
    let mut sigterm = signal(SignalKind::terminate()).context("installing the SIGTERM handler")?;
    let mut error = None;
    let mut child = None;
    if let Some((program, rest)) = args.command.split_first() {
        match tokio::process::Command::new(program).args(rest).spawn() {
            Ok(c) => child = Some(c),
            Err(e) => error = Some(format!("cannot run {program}: {e}")),
        }
    }
    // After the workload started: it must not inherit the low priority.
    session.yield_cpu();
    let deadline = args
        .duration
        .map(|d| tokio::time::sleep(Duration::from_secs_f64(d)));
    tokio::pin!(deadline);
    let mut status = None;
    let mut ingest_ns = 0;
    let reason = if error.is_some() {
        StopReason::Error
    } else {
        loop {
            tokio::select! {
                Some(batch) = session.events.recv() => ingest_ns += ingest(&mut model, sink.as_deref_mut(), &batch),
                s = wait_child(child.as_mut()), if child.is_some() => {
                    status = s;
                    break StopReason::CommandExited;
                }
                () = async { if let Some(d) = deadline.as_mut().as_pin_mut() { d.await } }, if deadline.is_some() => {
                    break StopReason::Duration;
                }
                _ = sigint.recv() => break StopReason::Interrupted,
                _ = sigterm.recv() => break StopReason::Terminated,
            }
        }
    };
    if let Some(c) = child.as_mut()
        && status.is_none()
    {
        status = stop_child(c).await;
    }
    // The collector's cost to the workload ends here; detaching (kernel text
    // patching, counted as this process's system time) is reported apart.
    let (cpu_at_stop, _) = health::own_usage();
    let (yielded, catch_ups) = (session.yields(), session.catch_ups());
    let stopped = session
        .stop(|batch| ingest_ns += ingest(&mut model, sink.as_deref_mut(), &batch))
        .await;
    model.add_stacks(stopped.stacks);
    // The loss counters are read once, at the end: their second is the last.
    let stop_ns = monotonic_ns();
    for (key, lost) in &stopped.kernel.lost_by_device {
        model.add_lost(Bdf::from_key(*key), stop_ns, *lost);
    }
    let (cpu_ns, max_rss_kib) = health::own_usage();
    let info = RunInfo {
        kernel,
        command: (!args.command.is_empty()).then(|| args.command.clone()),
        command_status: status,
        duration_seconds: started.elapsed().as_secs_f64(),
        stop_reason: reason,
        error,
        probes: stopped.plan,
        offsets,
        counts: stopped.kernel,
        rings: stopped.rings,
        stack_map_readable: stopped.stack_map_readable,
        usage: health::Usage {
            attach_ms,
            cpu_ns: cpu_at_stop.saturating_sub(cpu_at_attach),
            stop_cpu_ns: cpu_ns.saturating_sub(cpu_at_stop),
            max_rss_kib,
            ingest_ns,
            yielded,
            catch_ups,
        },
        pci,
    };
    Ok((document::build(&model, info), status))
}

/// Now on the clock of the events' timestamps (`bpf_ktime_get_ns`).
pub fn monotonic_ns() -> u64 {
    // SAFETY: clock_gettime fills the timespec it is given.
    let ts = unsafe {
        let mut ts: libc::timespec = std::mem::zeroed();
        libc::clock_gettime(libc::CLOCK_MONOTONIC, &raw mut ts);
        ts
    };
    u64::try_from(ts.tv_sec).unwrap_or(0) * 1_000_000_000 + u64::try_from(ts.tv_nsec).unwrap_or(0)
}

/// Adds a batch to the model (and the events file); returns the time it took.
fn ingest(
    model: &mut Model,
    sink: Option<&mut events::EventSink>,
    batch: &[crate::event::Event],
) -> u64 {
    let started = Instant::now();
    match sink {
        None => {
            for ev in batch {
                model.ingest(ev);
            }
        }
        Some(s) => {
            for ev in batch {
                let refaulted = model.ingest_refaults(ev);
                s.write(ev, refaulted);
            }
        }
    }
    u64::try_from(started.elapsed().as_nanos()).unwrap_or(u64::MAX)
}

async fn wait_child(child: Option<&mut tokio::process::Child>) -> Option<i32> {
    let status = child?.wait().await.ok()?;
    // Killed by a signal: report it the way shells do.
    Some(status.code().unwrap_or_else(|| {
        128 + std::os::unix::process::ExitStatusExt::signal(&status).unwrap_or(0)
    }))
}

/// Interrupted or out of time: stop the command too, and keep its status.
async fn stop_child(child: &mut tokio::process::Child) -> Option<i32> {
    if let Some(pid) = child.id() {
        // SAFETY: a plain signal to our own child.
        unsafe { libc::kill(pid.cast_signed(), libc::SIGTERM) };
    }
    if let Ok(status) = tokio::time::timeout(Duration::from_secs(5), wait_child(Some(child))).await
    {
        status
    } else {
        let _ = child.kill().await;
        None
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::device::tests::{IVSHMEM_RESOURCE, fake_sysfs};

    fn err(sysfs: &Sysfs, devs: &[&str]) -> String {
        let devs: Vec<String> = devs.iter().map(|s| (*s).to_owned()).collect();
        format!(
            "{:#}",
            resolve_devices(sysfs, &devs).expect_err("should fail")
        )
    }

    #[test]
    fn device_errors_are_one_clear_line() {
        let root = fake_sysfs("0000:01:00.0", Some("nvme"), IVSHMEM_RESOURCE);
        let sysfs = Sysfs::new(root.path());
        assert_eq!(
            err(&sysfs, &["0000:01:00.0"]),
            "0000:01:00.0 is bound to nvme, not vfio-pci"
        );
        assert_eq!(err(&sysfs, &["0000:09:00.0"]), "no PCI device 0000:09:00.0");
        assert!(
            err(&sysfs, &["nonsense"]).starts_with("invalid PCI address \"nonsense\": expected")
        );
        let unbound = fake_sysfs("0000:01:00.0", None, IVSHMEM_RESOURCE);
        assert_eq!(
            err(&Sysfs::new(unbound.path()), &["01:00.0"]),
            "0000:01:00.0 is not bound to any driver, not vfio-pci"
        );
    }

    #[test]
    fn bound_devices_resolve() {
        let root = fake_sysfs("0000:01:00.0", Some("vfio-pci"), IVSHMEM_RESOURCE);
        let devs = resolve_devices(&Sysfs::new(root.path()), &["0000:01:00.0".into()]).expect("ok");
        assert_eq!(devs[0].bars.len(), 2);
    }

    #[test]
    fn default_rings_share_16_mib_at_least_1_each() {
        let sizes: Vec<u32> = [0, 1, 2, 3, 4, 5, 8, 9, 16, 64]
            .into_iter()
            .map(default_ring_mib)
            .collect();
        assert_eq!(sizes, [16, 16, 8, 4, 4, 2, 2, 1, 1, 1]);
    }

    #[test]
    fn bad_numbers_are_refused() {
        let mut a = RecordArgs {
            events: None,
            devices: vec![],
            pid: None,
            duration: Some(-1.0),
            output: None,
            ring_mib: Some(1),
            kprobes_only: false,
            floor: false,
            verbose: false,
            command: vec![],
        };
        assert!(validate(&a).is_err());
        a.duration = Some(1.0);
        a.ring_mib = Some(3);
        assert_eq!(
            validate(&a).expect_err("3").to_string(),
            "--ring-mib must be a power of two up to 1024, not 3"
        );
    }
}
