//! `vfio-trace serve`: trace as `record` does, and expose the live model as
//! Prometheus metrics at `/metrics` (a landing page at `/`). Every scrape
//! reads the model and the kernel's counters at that moment. SIGTERM or
//! Ctrl-C stops it: the listener closes, every probe detaches, the rings
//! drain.

pub mod catalog;
#[cfg(test)]
mod dashboard_tests;
pub mod http;
#[cfg(test)]
mod http_tests;
pub mod metrics;
pub mod scrape;
#[cfg(test)]
mod tests;

use std::{net::SocketAddr, process::ExitCode};

use anyhow::{Context as _, bail};
use tokio::{
    net::TcpListener,
    signal::unix::{SignalKind, signal},
    sync::mpsc,
};

use crate::{
    device::{Bdf, PciDevice, Sysfs, pci_ids::PciIds},
    kernel::Generation,
    model::Model,
    probe::{
        self, Host,
        session::{Options, Session},
    },
    record::{default_ring_mib, health, resolve_devices, ring_devices},
};
use scrape::{Live, Scrape};

/// The port `serve` listens on unless told otherwise: its own, clear of the
/// node exporter's 9100 and the other tracing exporters' 9435.
pub const DEFAULT_PORT: u16 = 9748;

#[derive(clap::Args, Debug)]
pub struct ServeArgs {
    /// Address to listen on. Loopback by default; a wider address must be
    /// asked for, e.g. 0.0.0.0:9748.
    #[arg(long, value_name = "ADDR", default_value_t = SocketAddr::from(([127, 0, 0, 1], DEFAULT_PORT)))]
    pub listen: SocketAddr,
    /// Trace only this device (repeatable). Default: every device bound to
    /// vfio-pci, including ones bound later.
    #[arg(long = "device", value_name = "BDF")]
    pub devices: Vec<String>,
    /// Ring buffer per device, in MiB (a power of two); as for `record`.
    #[arg(long, value_name = "MIB")]
    pub ring_mib: Option<u32>,
    /// Attach kprobes even where fentry/fexit would work.
    #[arg(long)]
    pub kprobes_only: bool,
}

/// Serves until SIGTERM or Ctrl-C.
///
/// # Errors
/// When the arguments are bad, the port cannot be had, the machine cannot
/// trace, or the probes cannot be attached.
pub fn run(args: &ServeArgs) -> anyhow::Result<ExitCode> {
    if let Some(mib) = args.ring_mib
        && (!mib.is_power_of_two() || mib > 1024)
    {
        bail!("--ring-mib must be a power of two up to 1024, not {mib}");
    }
    let requested: Vec<Bdf> = resolve_devices(&Sysfs::default(), &args.devices)?
        .iter()
        .map(|d| d.bdf)
        .collect();
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .context("starting the async runtime")?;
    runtime.block_on(serve(args, &requested))?;
    Ok(ExitCode::SUCCESS)
}

/// Devices to expose now: those asked for, or every one bound to vfio-pci,
/// as long as they are bound to it.
fn present(sysfs: &Sysfs, requested: &[Bdf]) -> Vec<PciDevice> {
    if requested.is_empty() {
        sysfs.vfio_devices()
    } else {
        requested
            .iter()
            .filter_map(|b| sysfs.vfio_device(*b).ok())
            .collect()
    }
}

fn bpf_stats_enabled() -> bool {
    std::fs::read_to_string("/proc/sys/kernel/bpf_stats_enabled").is_ok_and(|s| s.trim() == "1")
}

/// The tracer and what it has seen.
struct Tracing {
    session: Session,
    model: Model,
    kernel: crate::kernel::Kernel,
    requested: Vec<Bdf>,
    events: u64,
    /// Vendor and device names, read once.
    pci_ids: PciIds,
    /// Zap stack ids already looked up, found or not: each is read once.
    stacks_read: std::collections::BTreeSet<i32>,
}

impl Tracing {
    fn start(args: &ServeArgs, requested: &[Bdf]) -> anyhow::Result<Self> {
        let preflight = probe::preflight(&Host::current());
        preflight.ensure_ready()?;
        let kernel = preflight.kernel.clone();
        let mut model = Model::new(kernel.generation.unwrap_or(Generation::HugeFault));
        let sysfs = Sysfs::default();
        for d in &present(&sysfs, requested) {
            model.add_device(
                d.bdf,
                d.bars.iter().map(|b| (b.index, b.start, b.size)).collect(),
            );
        }
        let ring_devices = ring_devices(&sysfs, requested.iter().copied());
        let ring_mib = args
            .ring_mib
            .unwrap_or_else(|| default_ring_mib(ring_devices.len()));
        let opts = Options {
            devices: ring_devices,
            only: (!requested.is_empty()).then(|| requested.to_vec()),
            pid: None,
            ring_bytes: ring_mib << 20,
            trampolines: !args.kprobes_only,
            floor: false,
            verbose: false,
            // Between scrapes nothing reads the model: the collector gives
            // the CPU to the workload, and each scrape drains the rings first.
            yield_cpu: true,
        };
        let session = Session::start(preflight, &opts)?;
        model.set_zap_walks_known(session.zap_walks_known());
        eprintln!("vfio-trace: {}", session.summary());
        Ok(Self {
            session,
            model,
            kernel,
            requested: requested.to_vec(),
            events: 0,
            pci_ids: PciIds::system(),
            stacks_read: std::collections::BTreeSet::new(),
        })
    }

    fn ingest(&mut self, batch: &[crate::event::Event]) {
        self.events += batch.len() as u64;
        for ev in batch {
            self.model.ingest(ev);
        }
    }

    /// Everything the rings hold, into the model: a scrape shows the
    /// faults made up to it, though the collector yields between scrapes.
    async fn catch_up(&mut self) {
        for batch in self.session.flush().await {
            self.ingest(&batch);
        }
    }

    /// The model and the kernel's counters as of now.
    fn scrape(&mut self) -> Scrape {
        let devices = present(&Sysfs::default(), &self.requested);
        for d in &devices {
            if self.model.devices.get(&d.bdf).is_none() {
                self.model.add_device(
                    d.bdf,
                    d.bars.iter().map(|b| (b.index, b.start, b.size)).collect(),
                );
            }
        }
        let mut unnamed = self.model.unnamed_stack_ids();
        unnamed.retain(|id| self.stacks_read.insert(*id));
        if !unnamed.is_empty() {
            let stacks = self.session.stacks_of(&unnamed);
            self.model.add_stacks(stacks);
        }
        let (cpu_ns, max_rss_kib) = health::own_usage();
        let live = Live {
            kernel: self.kernel.clone(),
            names: devices
                .iter()
                .map(|d| self.pci_ids.name(d.vendor, d.device).unwrap_or_default())
                .collect(),
            devices,
            probes: self.session.plan().to_vec(),
            counts: self.session.counts(),
            events: self.events,
            cpu_ns,
            max_rss_kib,
            bpf_stats_enabled: bpf_stats_enabled(),
            stack_map_readable: self.session.stack_map_readable(),
            readers_failed: self.session.failed_readers() as u64,
            undecodable: self.session.undecodable(),
            diagnostics: self.session.diagnostics(),
        };
        Scrape::new(&self.model, live)
    }
}

async fn serve(args: &ServeArgs, requested: &[Bdf]) -> anyhow::Result<()> {
    // The port first: a busy one fails before anything attaches.
    let listener = TcpListener::bind(args.listen)
        .await
        .with_context(|| format!("cannot listen on {}", args.listen))?;
    let mut sigint = signal(SignalKind::interrupt()).context("installing the SIGINT handler")?;
    let mut sigterm = signal(SignalKind::terminate()).context("installing the SIGTERM handler")?;
    let mut tracing = Tracing::start(args, requested)?;
    // This thread runs the readers; the HTTP handlers run on it too.
    tracing.session.yield_cpu();
    eprintln!("vfio-trace: serving http://{}/metrics", args.listen);
    let (tx, mut requests) = mpsc::channel::<http::ScrapeRequest>(256);
    let signal = loop {
        tokio::select! {
            Some(batch) = tracing.session.events.recv() => tracing.ingest(&batch),
            Some(reply) = requests.recv() => {
                tracing.catch_up().await;
                // A client gone before its answer needs none.
                let _ = reply.send(tracing.scrape());
            }
            accepted = listener.accept() => {
                if let Ok((stream, _)) = accepted {
                    tokio::spawn(http::handle(stream, tx.clone()));
                }
            }
            _ = sigint.recv() => break "SIGINT",
            _ = sigterm.recv() => break "SIGTERM",
        }
    };
    drop(listener);
    // Scrapes in flight get 503 from here on.
    drop(requests);
    let Tracing {
        session, mut model, ..
    } = tracing;
    let stopped = session
        .stop(|batch| {
            for ev in &batch {
                model.ingest(ev);
            }
        })
        .await;
    let faults: u64 = model.devices.values().map(|d| d.faults).sum();
    let undecodable = stopped.rings.iter().map(|r| r.stats.undecodable).sum();
    let lost: u64 = scrape::losses(&stopped.kernel, undecodable)
        .iter()
        .map(|(_, n)| n)
        .sum();
    eprintln!(
        "vfio-trace: {signal}: every probe detached; {faults} faults on {} device(s), {lost} lost",
        model.devices.len()
    );
    Ok(())
}
