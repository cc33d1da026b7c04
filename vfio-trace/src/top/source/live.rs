//! A live session: the same start as `record` (preflight, `Session::start`,
//! events into a `Model`), sampled at each refresh. Only `probe` touches
//! the kernel; this holds the session and reads the model.

use std::collections::{BTreeMap, VecDeque};

use super::{Source, merge_summaries};
use crate::{
    device::{Bdf, PciDevice, Sysfs},
    event::Event,
    kernel::{Generation, Kernel},
    model::{
        Model,
        latency::{Latency, Summary},
        slots::OrderKey,
        snapshot::Snapshot,
        stats::{DeviceStats, PTE_BYTES},
    },
    probe::{
        self, Host,
        session::{Options, Session},
    },
    record::{self, document::ProbeDoc, health},
    top::{
        pci_ids::PciIds,
        projection,
        view::{
            BarLine, Cost, Detail, DeviceRow, HEAT_CELLS, Header, LatencyBars, LatencyKind,
            OrderLine, Sample, ZapLine, heat, order_label,
        },
    },
};

/// Refreshes of rate history kept for the sparklines.
const HISTORY: usize = 240;
/// Zaps the device view lists.
const ZAPS: usize = 16;
/// Histogram bucket tops, ns: 1, 2, 4 ... 512 µs, then 1 ms and 10 ms.
const EDGES: [u64; 12] = [
    1_000, 2_000, 4_000, 8_000, 16_000, 32_000, 64_000, 128_000, 256_000, 512_000, 1_000_000,
    10_000_000,
];
const LABELS: [&str; 13] = [
    "≤1µ", "2µ", "4µ", "8µ", "16µ", "32µ", "64µ", "128µ", "256µ", "512µ", "1m", "10m", ">10m",
];

/// What the previous sample saw, to take rates against.
struct Before {
    snapshot: Snapshot,
    cpu_ns: u64,
    run: (u64, u64),
}

pub struct Live {
    session: Session,
    model: Model,
    kernel: Kernel,
    pci: Vec<PciDevice>,
    names: PciIds,
    before: Option<Before>,
    /// Keeps the kernel's BPF run-time statistics on; `None` when they
    /// could not be turned on (then only `kernel.bpf_stats_enabled` does).
    _run_stats: Option<std::os::fd::OwnedFd>,
    /// Faults and zaps per second at each refresh, by device.
    history: BTreeMap<Bdf, (VecDeque<u64>, VecDeque<u64>)>,
    /// The device whose view is open: the one whose projection is worked out.
    focus: Option<Bdf>,
}

impl Live {
    /// Attaches as `record` does, to `devices` (empty: every vfio-pci
    /// device). Must run inside a tokio runtime.
    ///
    /// # Errors
    /// A device not bound to vfio-pci, a machine `check` calls not ready,
    /// or a session that cannot start (what `record` refuses too).
    pub fn start(devices: &[String], names: PciIds) -> anyhow::Result<Self> {
        let sysfs = Sysfs::default();
        let pci = record::resolve_devices(&sysfs, devices)?;
        let preflight = probe::preflight(&Host::current());
        preflight.ensure_ready()?;
        let kernel = preflight.kernel.clone();
        let mut model = Model::new(kernel.generation.unwrap_or(Generation::HugeFault));
        for d in &pci {
            model.add_device(
                d.bdf,
                d.bars.iter().map(|b| (b.index, b.start, b.size)).collect(),
            );
        }
        let rings = record::ring_devices(&sysfs, pci.iter().map(|d| d.bdf));
        let opts = Options {
            ring_bytes: record::default_ring_mib(rings.len()) << 20,
            devices: rings,
            only: (!devices.is_empty()).then(|| pci.iter().map(|d| d.bdf).collect()),
            pid: None,
            trampolines: true,
            floor: false,
            verbose: false,
            // Between refreshes nothing reads the model: the collector gives
            // the CPU to the workload, and each refresh drains the rings first.
            yield_cpu: true,
        };
        let session = Session::start(preflight, &opts)?;
        // This thread runs the readers.
        session.yield_cpu();
        let run_stats = probe::run_stats::enable().ok();
        model.set_origin_ns(record::monotonic_ns());
        model.set_zap_walks_known(session.zap_walks_known());
        Ok(Self {
            session,
            model,
            kernel,
            pci,
            names,
            before: None,
            _run_stats: run_stats,
            history: BTreeMap::new(),
            focus: None,
        })
    }

    /// Detaches, as `record` does at its end.
    pub async fn stop(self) {
        // The screen is gone: what is left in the rings is not shown.
        let _ = self.session.stop(drop).await;
    }

    fn row(&self, bdf: Bdf, d: &DeviceStats, lost: u64) -> DeviceRow {
        let mut row = DeviceRow::new(bdf);
        let pci = self.pci.iter().find(|p| p.bdf == bdf);
        if let Some(p) = pci {
            row.vendor = Some(p.vendor);
            row.device = Some(p.device);
            row.name = self.names.name(p.vendor, p.device);
        }
        let mut all = Latency::default();
        for l in d.latency_by_order.values() {
            all.add(l);
        }
        row.fault_latency = all.summary();
        row.zap_latency = d.zaps.latency.summary();
        let waits: Vec<Summary> = d.lock_waits.values().map(Latency::summary).collect();
        (row.lock_wait, row.lock_wait_bound) = merge_summaries(&waits);
        row.refaulted_pages = d.zaps.refaulted_pages;
        row.lost = lost;
        let (faults, zaps) = self.history.get(&bdf).cloned().unwrap_or_default();
        row.detail = Detail {
            origins: d.by_origin,
            dma_maps: d.dma.maps,
            dma_map_ns: d.dma.total_ns,
            bars: bars(d),
            orders: d
                .by_order
                .iter()
                .zip(d.latency_by_order.values())
                .map(|((order, n), l)| OrderLine {
                    label: order_label(&order.to_string()),
                    faults: *n,
                    latency: l.summary(),
                })
                .collect(),
            latency: LatencyBars {
                kind: LatencyKind::Histogram,
                bars: LABELS
                    .iter()
                    .zip(all.buckets(&EDGES))
                    .map(|(l, n)| ((*l).to_owned(), n))
                    .collect(),
            },
            fault_rate: faults.into(),
            zap_rate: zaps.into(),
            zaps: d
                .zaps
                .zaps
                .iter()
                .rev()
                .take(ZAPS)
                .rev()
                .map(|z| ZapLine {
                    cause: z.cause.to_string(),
                    latency_ns: z.latency_ns,
                    pages: z.pages,
                    removed_pages: z.removed,
                    refaulted_pages: z.refaulted,
                    first_refault_ns: z.first_refault_ns,
                    comm: z.comm.clone(),
                })
                .collect(),
            // Once per refresh, for the open device view only.
            projection: if self.focus == Some(bdf) {
                let huge_faults = crate::verdict::huge_faults(self.kernel.generation);
                projection::of_model(&self.model, bdf, pci, huge_faults).unwrap_or_default()
            } else {
                Vec::new()
            },
        };
        row
    }
}

fn bars(d: &DeviceStats) -> Vec<BarLine> {
    d.bars
        .iter()
        .filter(|(_, b)| b.faults > 0)
        .map(|(index, b)| {
            let size = index.and_then(|i| {
                d.layout()
                    .iter()
                    .find(|(bar, _, _)| *bar == i)
                    .map(|(_, _, size)| *size)
            });
            let seen = b.page_faults.iter().last().map_or(0, |(p, _)| p + 1);
            BarLine {
                index,
                size,
                faults: b.faults,
                pages_faulted: b.page_faults.len(),
                pte: b.inserts.pte,
                pmd: b.inserts.pmd,
                pud: b.inserts.pud,
                heat: heat(
                    b.page_faults.iter().map(|(p, n)| (p, 1, u64::from(n))),
                    size.map_or(seen, |s| s / PTE_BYTES),
                    HEAT_CELLS,
                ),
            }
        })
        .collect()
}

impl Source for Live {
    fn ingest(&mut self, batch: &[Event]) {
        for ev in batch {
            self.model.ingest(ev);
        }
    }

    async fn next_batch(&mut self) -> Vec<Event> {
        match self.session.events.recv().await {
            Some(batch) => batch,
            // Every reader ended: nothing more comes.
            None => std::future::pending().await,
        }
    }

    async fn catch_up(&mut self) {
        for batch in self.session.flush().await {
            self.ingest(&batch);
        }
    }

    fn focus(&mut self, device: Option<Bdf>) {
        self.focus = device;
    }

    fn sample(&mut self, _at: Option<u64>) -> Sample {
        let now = record::monotonic_ns();
        let snapshot = self.model.snapshot(now);
        let (cpu_ns, _) = health::own_usage();
        let run = self.session.run_stats();
        let lost_by_device = self.session.lost_by_device();
        let rates = self
            .before
            .as_ref()
            .map(|b| snapshot.rates(&b.snapshot))
            .unwrap_or_default();
        #[expect(
            clippy::cast_possible_truncation,
            clippy::cast_sign_loss,
            reason = "a rate per second, shown whole"
        )]
        for r in &rates {
            let (faults, zaps) = self.history.entry(r.bdf).or_default();
            for (h, v) in [(faults, r.faults), (zaps, r.zaps)] {
                if h.len() == HISTORY {
                    h.pop_front();
                }
                h.push_back(v.round() as u64);
            }
        }
        let mut cost = Cost::default();
        #[expect(clippy::cast_precision_loss, reason = "rates")]
        if let Some(b) = &self.before {
            let wall = now.saturating_sub(b.snapshot.at_ns) as f64;
            let (ns, cnt) = (run.0.saturating_sub(b.run.0), run.1.saturating_sub(b.run.1));
            if wall > 0.0 {
                cost.cpu_percent = Some(cpu_ns.saturating_sub(b.cpu_ns) as f64 / wall * 100.0);
                if run.1 > 0 {
                    cost.bpf_runs_per_s = Some(cnt as f64 / wall * 1e9);
                    cost.bpf_ns_per_run = (cnt > 0).then(|| ns as f64 / cnt as f64);
                }
            }
        }
        let devices = self
            .model
            .devices
            .iter()
            .map(|(bdf, d)| {
                let lost = lost_by_device.get(&bdf.key()).copied().unwrap_or(0);
                let mut row = self.row(*bdf, d, lost);
                if let Some(r) = rates.iter().find(|r| r.bdf == *bdf) {
                    row.faults_per_s = r.faults;
                    row.fallbacks_per_s = r.fallbacks;
                    row.zaps_per_s = r.zaps;
                    let by = |o: u32| {
                        r.faults_by_order
                            .iter()
                            .filter(|(k, _)| *k == OrderKey::Order(o))
                            .map(|(_, v)| v)
                            .sum::<f64>()
                    };
                    let other = (r.faults - by(0) - by(9) - by(18)).max(0.0);
                    row.by_order_per_s = [by(0), by(9), by(18), other];
                }
                row
            })
            .collect();
        let header = Header {
            kernel: self.kernel.release.clone(),
            generation: self
                .kernel
                .generation
                .map_or_else(|| "unknown generation".into(), |g| g.name().to_owned()),
            probes: self.session.plan().iter().map(ProbeDoc::from).collect(),
            cost,
            lost: lost_by_device.values().sum(),
            replay: None,
        };
        self.before = Some(Before {
            snapshot,
            cpu_ns,
            run,
        });
        Sample { header, devices }
    }
}
