//! A recording played back: the figures of recorded second `at` from the
//! document's timeline, and the run's latencies, zaps, pages and
//! projection (the document keeps those for the whole run, not per second).

use std::collections::BTreeMap;

use super::{Source, merge_summaries};
use crate::{
    device::Bdf,
    model::{fault::Origin, timeline::Second},
    record::{devices::DeviceDoc, document::Document, timeline::DeviceTimelineDoc},
    top::{
        pci_ids::PciIds,
        projection,
        view::{
            BarLine, Cost, Detail, DeviceRow, HEAT_CELLS, Header, LatencyBars, LatencyKind,
            OrderLine, Position, Sample, ZapLine, heat, order_label,
        },
    },
};

pub struct Replay {
    doc: Document,
    names: PciIds,
    length: u64,
    /// The device view's projection lines, by device: of the whole run.
    projections: BTreeMap<Bdf, Vec<String>>,
}

impl Replay {
    #[must_use]
    pub fn new(doc: Document, names: PciIds) -> Self {
        let last = doc
            .timeline
            .devices
            .iter()
            .filter_map(|d| d.seconds.last().map(|s| s.t + 1))
            .max()
            .unwrap_or(0);
        #[expect(
            clippy::cast_possible_truncation,
            clippy::cast_sign_loss,
            reason = "a run's length in whole seconds"
        )]
        let recorded = doc.duration_seconds.max(0.0).ceil() as u64;
        let huge_faults = crate::verdict::huge_faults(doc.kernel.generation);
        let projections = doc
            .devices
            .iter()
            .map(|d| (d.bdf, projection::of_document(d, huge_faults)))
            .collect();
        Self {
            length: last.max(recorded).max(1),
            doc,
            names,
            projections,
        }
    }

    /// Seconds in the recording.
    #[must_use]
    pub fn length(&self) -> u64 {
        self.length
    }

    fn header(&self, at: Option<u64>) -> Header {
        let d = &self.doc;
        let c = &d.collector;
        #[expect(clippy::cast_precision_loss, reason = "rates")]
        let cost = Cost {
            bpf_ns_per_run: (c.bpf_run_cnt > 0).then(|| c.bpf_run_ns as f64 / c.bpf_run_cnt as f64),
            bpf_runs_per_s: (c.bpf_run_cnt > 0 && d.duration_seconds > 0.0)
                .then(|| c.bpf_run_cnt as f64 / d.duration_seconds),
            cpu_percent: (d.duration_seconds > 0.0)
                .then(|| c.cpu_ns as f64 / (d.duration_seconds * 1e9) * 100.0),
        };
        let lost = match at {
            None => d.lost_events,
            Some(t) => d
                .timeline
                .devices
                .iter()
                .flat_map(|dev| dev.seconds.iter().take_while(|s| s.t <= t))
                .map(|s| s.lost)
                .sum(),
        };
        Header {
            kernel: d.kernel.release.clone(),
            generation: d
                .kernel
                .generation
                .map_or_else(|| "unknown generation".into(), |g| g.name().to_owned()),
            probes: d.probes.clone(),
            cost,
            lost,
            replay: Some(Position {
                at,
                length: self.length,
            }),
        }
    }

    fn row(&self, dev: &DeviceDoc, at: Option<u64>) -> DeviceRow {
        let empty = DeviceTimelineDoc {
            bdf: dev.bdf,
            seconds: Vec::new(),
        };
        let timeline = self
            .doc
            .timeline
            .devices
            .iter()
            .find(|t| t.bdf == dev.bdf)
            .unwrap_or(&empty);
        let mut row = DeviceRow::new(dev.bdf);
        row.vendor = dev.vendor.as_deref().and_then(hex);
        row.device = dev.device.as_deref().and_then(hex);
        if let (Some(v), Some(d)) = (row.vendor, row.device) {
            row.name = self.names.name(v, d);
        }
        if let Some(t) = at {
            let s = timeline
                .seconds
                .iter()
                .find(|s| s.t == t)
                .copied()
                .unwrap_or_default();
            let upto = || timeline.seconds.iter().take_while(|s| s.t <= t);
            rates_of_second(&mut row, &s);
            row.refaulted_pages = upto().map(|s| s.refaulted_pages).sum();
            row.lost = upto().map(|s| s.lost).sum();
        } else {
            let secs = self.doc.duration_seconds.max(1e-9);
            #[expect(clippy::cast_precision_loss, reason = "rates")]
            let per_s = |n: u64| n as f64 / secs;
            let order = |k: &str| per_s(dev.faults.by_order.get(k).copied().unwrap_or(0));
            let known: u64 = ["0", "9", "18"]
                .iter()
                .filter_map(|k| dev.faults.by_order.get(*k))
                .sum();
            row.faults_per_s = per_s(dev.faults.total);
            row.by_order_per_s = [
                order("0"),
                order("9"),
                order("18"),
                per_s(dev.faults.total.saturating_sub(known)),
            ];
            row.fallbacks_per_s = per_s(
                dev.faults
                    .by_result
                    .get(&crate::model::fault::Outcome::Fallback)
                    .copied()
                    .unwrap_or(0),
            );
            row.zaps_per_s = per_s(dev.zaps.count);
            row.refaulted_pages = dev.refaults.pages;
            row.lost = dev.lost_events;
        }
        (row.fault_latency, row.fault_latency_bound) =
            merge_summaries(dev.latency_ns.by_order.values());
        row.zap_latency = dev.zaps.latency_ns;
        (row.lock_wait, row.lock_wait_bound) =
            merge_summaries(dev.memory_lock.values().map(|l| &l.wait_ns));
        row.detail = detail(dev, timeline, at.unwrap_or(self.length - 1));
        row.detail.projection = self.projections.get(&dev.bdf).cloned().unwrap_or_default();
        row
    }
}

fn hex(s: &str) -> Option<u16> {
    u16::from_str_radix(s, 16).ok()
}

fn rates_of_second(row: &mut DeviceRow, s: &Second) {
    let o = s.faults_by_order;
    row.faults_per_s = f64::from(o.pte) + f64::from(o.pmd) + f64::from(o.pud) + f64::from(o.other);
    row.by_order_per_s = [o.pte, o.pmd, o.pud, o.other].map(f64::from);
    row.fallbacks_per_s = f64::from(s.faults_by_result.fallback);
    row.zaps_per_s = f64::from(s.zaps);
}

/// Faults and zaps of every second from 0 to `at`, idle seconds as 0.
fn rates_until(timeline: &DeviceTimelineDoc, at: u64) -> (Vec<u64>, Vec<u64>) {
    let len = usize::try_from(at + 1).unwrap_or(0);
    let (mut faults, mut zaps) = (vec![0; len], vec![0; len]);
    for s in timeline.seconds.iter().take_while(|s| s.t <= at) {
        if let Ok(i) = usize::try_from(s.t) {
            faults[i] = s.faults();
            zaps[i] = u64::from(s.zaps);
        }
    }
    (faults, zaps)
}

fn detail(dev: &DeviceDoc, timeline: &DeviceTimelineDoc, at: u64) -> Detail {
    let (fault_rate, zap_rate) = rates_until(timeline, at);
    let bars = dev
        .bars
        .iter()
        .map(|b| {
            let seen = b.page_faults.last().map_or(0, |r| r.first + r.pages);
            let pages = b.size.map_or(seen, |s| s / 4096);
            BarLine {
                index: b.index,
                size: b.size,
                faults: b.faults,
                pages_faulted: b.pages_faulted,
                pte: b.inserts.pte,
                pmd: b.inserts.pmd,
                pud: b.inserts.pud,
                heat: heat(
                    b.page_faults
                        .iter()
                        .map(|r| (r.first, r.pages, u64::from(r.faults))),
                    pages,
                    HEAT_CELLS,
                ),
            }
        })
        .collect();
    // By order number, not as the JSON's text keys sort ("18" before "9").
    let mut by_order: Vec<(&String, &u64)> = dev.faults.by_order.iter().collect();
    by_order.sort_by_key(|(k, _)| k.parse::<u32>().unwrap_or(u32::MAX));
    let orders = by_order
        .into_iter()
        .map(|(k, n)| OrderLine {
            label: order_label(k),
            faults: *n,
            latency: dev
                .latency_ns
                .by_order
                .get(k)
                .copied()
                .unwrap_or(crate::model::latency::Summary::EMPTY),
        })
        .collect();
    let (all, _) = merge_summaries(dev.latency_ns.by_order.values());
    let latency = LatencyBars {
        kind: LatencyKind::Percentiles,
        bars: [
            ("min", all.min),
            ("p50", all.p50),
            ("p90", all.p90),
            ("p99", all.p99),
            ("max", all.max),
        ]
        .map(|(k, v)| (k.to_owned(), v))
        .to_vec(),
    };
    let zaps = dev
        .zaps
        .events
        .iter()
        .map(|z| ZapLine {
            cause: z.cause.clone(),
            latency_ns: z.latency_ns,
            pages: z.pages,
            removed_pages: z.removed_pages,
            refaulted_pages: z.refaulted_pages,
            first_refault_ns: z.first_refault_ns,
            comm: z.comm.clone(),
        })
        .collect();
    Detail {
        bars,
        orders,
        latency,
        fault_rate,
        zap_rate,
        zaps,
        projection: Vec::new(),
        origins: Origin::ALL.map(|o| dev.faults.by_origin.get(&o).copied().unwrap_or(0)),
        dma_maps: dev.dma_maps.count,
        dma_map_ns: dev.dma_maps.total_ns,
    }
}

impl Source for Replay {
    fn sample(&mut self, at: Option<u64>) -> Sample {
        let at = at.map(|t| t.min(self.length - 1));
        Sample {
            header: self.header(at),
            devices: self.doc.devices.iter().map(|d| self.row(d, at)).collect(),
        }
    }
}
