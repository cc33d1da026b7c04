//! The Prometheus collector: one scrape's plain data turned into metric
//! families by the catalogue, and the text exposition of them.

use std::collections::HashMap;

use prometheus::{
    Encoder as _, Registry, TextEncoder,
    core::{Collector, Desc},
    proto::{self, LabelPair, MetricFamily, MetricType},
};
use vfio_trace_common::counter;

use super::{
    catalog::{self as c, Kind, METRICS},
    scrape::{BOUNDS_NS, Buckets, Scrape, losses},
};
use crate::probe::plan::Status;

/// The version `vfio_trace_info` reports.
pub const VERSION: &str = env!("CARGO_PKG_VERSION");

/// A collector over one scrape.
pub struct Exporter {
    scrape: Scrape,
    descs: Vec<Desc>,
}

impl Exporter {
    /// # Errors
    /// When a catalogued name or label is not a valid Prometheus one.
    pub fn new(scrape: Scrape) -> prometheus::Result<Self> {
        let descs = METRICS
            .iter()
            .map(|s| {
                Desc::new(
                    s.name.to_owned(),
                    s.help.to_owned(),
                    s.labels.iter().map(|l| (*l).to_owned()).collect(),
                    HashMap::new(),
                )
            })
            .collect::<prometheus::Result<_>>()?;
        Ok(Self { scrape, descs })
    }
}

/// Collects the families of one scrape, each metric checked against its spec.
struct Families(Vec<MetricFamily>);

impl Families {
    fn family(&mut self, name: &str) -> &mut MetricFamily {
        if let Some(i) = self.0.iter().position(|f| f.name() == name) {
            return &mut self.0[i];
        }
        let spec = c::find(name).unwrap_or_else(|| unreachable!("{name} is not in the catalogue"));
        let mut f = MetricFamily::default();
        f.set_name(name.to_owned());
        f.set_help(spec.help.to_owned());
        f.set_field_type(match spec.kind {
            Kind::Counter => MetricType::COUNTER,
            Kind::Gauge => MetricType::GAUGE,
            Kind::Histogram => MetricType::HISTOGRAM,
        });
        self.0.push(f);
        let last = self.0.len() - 1;
        &mut self.0[last]
    }

    fn push(&mut self, name: &str, labels: &[(&str, &str)], set: impl FnOnce(&mut proto::Metric)) {
        let spec = c::find(name).unwrap_or_else(|| unreachable!("{name} is not in the catalogue"));
        debug_assert_eq!(
            spec.labels,
            labels.iter().map(|(k, _)| *k).collect::<Vec<_>>(),
            "{name}"
        );
        // Sorted by name, as the exposition format's canonical form has them.
        let mut sorted = labels.to_vec();
        sorted.sort_unstable_by_key(|(k, _)| *k);
        let pairs = sorted
            .iter()
            .map(|(k, v)| {
                let mut p = LabelPair::default();
                p.set_name((*k).to_owned());
                p.set_value((*v).to_owned());
                p
            })
            .collect();
        let mut m = proto::Metric::from_label(pairs);
        set(&mut m);
        self.family(name).mut_metric().push(m);
    }

    fn counter(&mut self, name: &str, labels: &[(&str, &str)], value: f64) {
        self.push(name, labels, |m| {
            let mut v = proto::Counter::default();
            v.set_value(value);
            m.set_counter(v);
        });
    }

    fn gauge(&mut self, name: &str, labels: &[(&str, &str)], value: f64) {
        self.push(name, labels, |m| {
            let mut v = proto::Gauge::default();
            v.set_value(value);
            m.set_gauge(v);
        });
    }

    fn histogram(&mut self, name: &str, labels: &[(&str, &str)], b: &Buckets) {
        self.push(name, labels, |m| {
            let mut h = proto::Histogram::default();
            h.set_sample_count(b.count);
            h.set_sample_sum(b.sum_seconds);
            h.set_bucket(
                BOUNDS_NS
                    .iter()
                    .zip(&b.cumulative)
                    .map(|(bound, n)| {
                        let mut bucket = proto::Bucket::default();
                        bucket.set_upper_bound(f(*bound) / 1e9);
                        bucket.set_cumulative_count(*n);
                        bucket
                    })
                    .collect(),
            );
            m.set_histogram(h);
        });
    }
}

fn flag(b: bool) -> f64 {
    if b { 1.0 } else { 0.0 }
}

#[expect(
    clippy::cast_precision_loss,
    reason = "counts are exposed as Prometheus floats; above 2^53 they round"
)]
fn f(n: u64) -> f64 {
    n as f64
}

impl Exporter {
    fn devices(&self, out: &mut Families) {
        let names = &self.scrape.live.names;
        for (i, p) in self.scrape.live.devices.iter().enumerate() {
            let bdf = p.bdf.to_string();
            let name = names.get(i).map_or("", String::as_str);
            let group = p.iommu_group.map(|g| g.to_string()).unwrap_or_default();
            out.gauge(
                c::DEVICE_INFO,
                &[
                    ("device", &bdf),
                    ("vendor", &format!("0x{:04x}", p.vendor)),
                    ("device_id", &format!("0x{:04x}", p.device)),
                    ("name", name),
                    ("driver", p.driver.as_deref().unwrap_or("")),
                    ("iommu_group", &group),
                ],
                1.0,
            );
        }
        for d in &self.scrape.devices {
            let dev = d.bdf.to_string();
            let dev = dev.as_str();
            for (order, n, latency) in &d.faults_by_order {
                let labels = [("device", dev), ("order", order.as_str())];
                out.counter(c::FAULTS, &labels, f(*n));
                out.histogram(c::FAULT_DURATION, &labels, latency);
            }
            for (result, n) in &d.results {
                out.counter(
                    c::FAULT_RESULTS,
                    &[("device", dev), ("result", result)],
                    f(*n),
                );
            }
            for (origin, n) in &d.origins {
                out.counter(
                    c::FAULT_ORIGINS,
                    &[("device", dev), ("origin", origin)],
                    f(*n),
                );
            }
            for (bar, faults, pages) in &d.bars {
                let labels = [("device", dev), ("bar", bar.as_str())];
                out.counter(c::BAR_FAULTS, &labels, f(*faults));
                out.gauge(c::BAR_PAGES, &labels, f(*pages));
            }
            for (size, n) in &d.inserts {
                out.counter(c::INSERTS, &[("device", dev), ("size", size)], f(*n));
            }
            out.counter(c::REMAPPED_PAGES, &[("device", dev)], f(d.remapped_pages));
            for (cause, n) in &d.zaps {
                out.counter(c::ZAPS, &[("device", dev), ("cause", cause)], f(*n));
            }
            out.histogram(c::ZAP_DURATION, &[("device", dev)], &d.zap_latency);
            out.counter(c::ZAPPED_PAGES, &[("device", dev)], f(d.zapped_pages));
            out.counter(c::REFAULTED_PAGES, &[("device", dev)], f(d.refaulted_pages));
            out.histogram(c::WRITE_HOLD, &[("device", dev)], &d.write_hold);
            let dev_label = [("device", dev)];
            out.counter(c::DMA_MAPS, &dev_label, f(d.dma_maps));
            out.histogram(c::DMA_MAP_DURATION, &dev_label, &d.dma_latency);
            out.counter(
                c::DMA_MAP_FAULT_SECONDS,
                &dev_label,
                d.dma_fault_ns as f64 / 1e9,
            );
            out.counter(c::DMA_MAPPED_BYTES, &dev_label, f(d.dma_bytes));
            out.counter(c::DMA_MAP_LOOKUPS, &dev_label, f(d.dma_lookups));
            for (kind, b) in &d.dma_buf_moves {
                out.histogram(c::DMA_BUF_MOVE, &[("device", dev), ("move", kind)], b);
            }
            for (mode, b) in &d.lock_waits {
                out.histogram(c::LOCK_WAIT, &[("device", dev), ("mode", mode)], b);
            }
        }
    }

    fn tracer(&self, out: &mut Families) {
        let s = &self.scrape;
        let live = &s.live;
        let generation = live.kernel.generation.map_or("unknown", |g| g.name());
        out.gauge(
            c::INFO,
            &[
                ("kernel", &live.kernel.release),
                ("generation", generation),
                ("version", VERSION),
            ],
            1.0,
        );
        for p in &live.probes {
            out.gauge(
                c::PROBE_ATTACHED,
                &[
                    ("probe", p.role.name()),
                    ("symbol", p.symbol.as_deref().unwrap_or("")),
                ],
                flag(p.status == Status::Attached),
            );
        }
        for (cause, n) in losses(&live.counts, live.undecodable) {
            out.counter(c::LOST, &[("cause", cause)], f(n));
        }
        out.counter(c::UNATTRIBUTED_FAULTS, &[], f(s.unattributed_faults));
        out.counter(c::UNATTRIBUTED_ZAPS, &[], f(s.unattributed_zaps));
        out.counter(c::BPF_RUN, &[], f(live.counts.bpf_run_ns) / 1e9);
        out.counter(c::BPF_RUNS, &[], f(live.counts.bpf_run_cnt));
        out.gauge(c::BPF_STATS, &[], flag(live.bpf_stats_enabled));
        out.counter(c::EVENTS, &[], f(live.events));
        out.counter(c::CPU, &[], f(live.cpu_ns) / 1e9);
        out.gauge(c::RSS, &[], f(live.max_rss_kib) * 1024.0);
        out.counter(
            c::STACK_FAILURES,
            &[],
            f(live.counts.counters[counter::STACK_FAILED as usize]),
        );
        out.gauge(c::STACKS_UNRESOLVED, &[], f(s.stacks_unresolved));
        out.counter(c::OUT_OF_RANGE, &[], f(s.pages_out_of_range));
        out.gauge(c::LOSS_MAPS, &[], flag(live.counts.loss_maps_readable));
        out.gauge(c::STACK_MAP, &[], flag(live.stack_map_readable));
        out.gauge(c::READERS_FAILED, &[], f(live.readers_failed));
        out.counter(c::DIAGNOSTICS, &[], f(live.diagnostics));
        out.gauge(c::HEALTHY, &[], flag(s.healthy()));
    }
}

impl Collector for Exporter {
    fn desc(&self) -> Vec<&Desc> {
        self.descs.iter().collect()
    }

    fn collect(&self) -> Vec<MetricFamily> {
        let mut out = Families(Vec::new());
        self.tracer(&mut out);
        self.devices(&mut out);
        out.0
    }
}

/// The text exposition (format 0.0.4) of one scrape.
///
/// # Errors
/// When the collector cannot be registered or the text cannot be encoded.
pub fn render(scrape: Scrape) -> prometheus::Result<String> {
    let registry = Registry::new();
    registry.register(Box::new(Exporter::new(scrape)?))?;
    let mut buf = Vec::new();
    TextEncoder::new().encode(&registry.gather(), &mut buf)?;
    String::from_utf8(buf).map_err(|e| prometheus::Error::Msg(e.to_string()))
}

/// The content type of [`render`]'s text.
pub const CONTENT_TYPE: &str = "text/plain; version=0.0.4; charset=utf-8";
