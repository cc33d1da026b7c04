//! The model at one moment, for live readers (`top`, `serve`): totals,
//! per-device and per-BAR state, latency summaries, and rates against an
//! earlier snapshot. The caller says when it was taken: the model reads no
//! clock. Taking one costs a few histogram walks per device, not a copy of
//! the per-page counts.

use std::collections::BTreeMap;

use super::{
    Model,
    fault::Outcome,
    latency::Summary,
    slots::OrderKey,
    stats::{DeviceStats, Inserts},
};
use crate::device::Bdf;

#[derive(Debug, Clone, PartialEq)]
pub struct Snapshot {
    /// When it was taken, in the caller's clock (ns); rates divide by
    /// differences of it.
    pub at_ns: u64,
    pub totals: Totals,
    /// By PCI address.
    pub devices: Vec<DeviceSnapshot>,
}

/// Sums over every device, plus what no device could be charged with.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Totals {
    pub faults: u64,
    pub zaps: u64,
    pub refaulted_pages: u64,
    pub lock_waits: u64,
    pub unattributed_faults: u64,
    pub unattributed_zaps: u64,
}

#[derive(Debug, Clone, PartialEq)]
pub struct OrderSnapshot {
    pub order: OrderKey,
    pub faults: u64,
    pub latency: Summary,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BarSnapshot {
    /// `None`: faults whose BAR could not be resolved.
    pub index: Option<u32>,
    pub faults: u64,
    pub pages_faulted: u64,
    pub inserts: Inserts,
}

#[derive(Debug, Clone, PartialEq)]
pub struct DeviceSnapshot {
    pub bdf: Bdf,
    pub faults: u64,
    /// The fixed orders always, others when seen.
    pub orders: Vec<OrderSnapshot>,
    pub by_outcome: [(Outcome, u64); 5],
    pub inserts: Inserts,
    pub zaps: u64,
    pub zap_pages: u64,
    pub zap_latency: Summary,
    /// Zaps by cause name.
    pub zap_causes: BTreeMap<String, u64>,
    pub refaulted_pages: u64,
    /// Contended `memory_lock` waits by mode (`read`, `write`, `other`).
    pub lock_waits: BTreeMap<&'static str, Summary>,
    /// BARs that saw a fault.
    pub bars: Vec<BarSnapshot>,
}

impl DeviceSnapshot {
    fn new(bdf: Bdf, d: &DeviceStats) -> Self {
        Self {
            bdf,
            faults: d.faults,
            orders: d
                .by_order
                .iter()
                .zip(d.latency_by_order.values())
                .map(|((order, faults), l)| OrderSnapshot {
                    order,
                    faults: *faults,
                    latency: l.summary(),
                })
                .collect(),
            by_outcome: Outcome::ALL.map(|o| (o, d.by_outcome[&o])),
            inserts: d.inserts.clone(),
            zaps: d.zaps.zaps.len() as u64,
            zap_pages: d.zaps.pages(),
            zap_latency: d.zaps.latency.summary(),
            zap_causes: d
                .zaps
                .causes()
                .into_iter()
                .map(|(c, n)| (c.to_owned(), n))
                .collect(),
            refaulted_pages: d.zaps.refaulted_pages,
            lock_waits: d
                .lock_waits
                .iter()
                .map(|(mode, l)| (*mode, l.summary()))
                .collect(),
            bars: d
                .bars
                .iter()
                .filter(|(_, b)| b.faults > 0)
                .map(|(index, b)| BarSnapshot {
                    index,
                    faults: b.faults,
                    pages_faulted: b.page_faults.len(),
                    inserts: b.inserts.clone(),
                })
                .collect(),
        }
    }

    pub fn lock_wait_count(&self) -> u64 {
        self.lock_waits.values().map(|s| s.count).sum()
    }

    pub fn outcome(&self, outcome: Outcome) -> u64 {
        self.by_outcome
            .iter()
            .find(|(o, _)| *o == outcome)
            .map_or(0, |(_, n)| *n)
    }
}

impl Model {
    /// The model as of now; `at_ns` is the caller's clock.
    pub fn snapshot(&self, at_ns: u64) -> Snapshot {
        let devices: Vec<DeviceSnapshot> = self
            .devices
            .iter()
            .map(|(bdf, d)| DeviceSnapshot::new(*bdf, d))
            .collect();
        let sum = |f: fn(&DeviceSnapshot) -> u64| devices.iter().map(f).sum();
        let totals = Totals {
            faults: sum(|d| d.faults),
            zaps: sum(|d| d.zaps),
            refaulted_pages: sum(|d| d.refaulted_pages),
            lock_waits: sum(DeviceSnapshot::lock_wait_count),
            unattributed_faults: self.unattributed,
            unattributed_zaps: self.unattributed_zaps,
        };
        Snapshot {
            at_ns,
            totals,
            devices,
        }
    }
}

/// Per-second rates of one device between two snapshots.
#[derive(Debug, Clone, PartialEq)]
pub struct DeviceRates {
    pub bdf: Bdf,
    pub faults: f64,
    /// In the order of `DeviceSnapshot::orders`.
    pub faults_by_order: Vec<(OrderKey, f64)>,
    pub fallbacks: f64,
    pub zaps: f64,
    pub refaulted_pages: f64,
    pub lock_waits: f64,
}

impl Snapshot {
    /// Rates per second from `earlier` to this snapshot. A device new since
    /// `earlier` counts from 0; no time passed gives 0, not infinity.
    pub fn rates(&self, earlier: &Snapshot) -> Vec<DeviceRates> {
        let seconds = self.at_ns.saturating_sub(earlier.at_ns) as f64 / 1e9;
        let per_s = |now: u64, then: u64| {
            if seconds > 0.0 {
                now.saturating_sub(then) as f64 / seconds
            } else {
                0.0
            }
        };
        self.devices
            .iter()
            .map(|d| {
                let e = earlier.devices.iter().find(|e| e.bdf == d.bdf);
                let then = |f: fn(&DeviceSnapshot) -> u64| e.map_or(0, f);
                DeviceRates {
                    bdf: d.bdf,
                    faults: per_s(d.faults, then(|e| e.faults)),
                    faults_by_order: d
                        .orders
                        .iter()
                        .map(|o| {
                            let before = e
                                .and_then(|e| e.orders.iter().find(|x| x.order == o.order))
                                .map_or(0, |x| x.faults);
                            (o.order, per_s(o.faults, before))
                        })
                        .collect(),
                    fallbacks: per_s(
                        d.outcome(Outcome::Fallback),
                        then(|e| e.outcome(Outcome::Fallback)),
                    ),
                    zaps: per_s(d.zaps, then(|e| e.zaps)),
                    refaulted_pages: per_s(d.refaulted_pages, then(|e| e.refaulted_pages)),
                    lock_waits: per_s(d.lock_wait_count(), then(DeviceSnapshot::lock_wait_count)),
                }
            })
            .collect()
    }
}

#[cfg(test)]
mod tests {
    use vfio_trace_common::{FaultEvent, ZapEvent};

    use super::*;
    use crate::{event::Event, kernel::Generation};

    fn fault(bdf: Bdf, order: u32, result: u32) -> Event {
        let mut e = FaultEvent::zeroed();
        e.device = bdf.key();
        e.vma_pgoff = 2 << 28;
        e.order = order;
        e.result = result;
        e.latency_ns = 4000;
        Event::Fault(e)
    }

    #[test]
    fn snapshots_total_devices_and_rates_follow_the_interval() {
        let a = Bdf::parse("0000:01:00.0").expect("bdf");
        let b = Bdf::parse("0000:02:00.0").expect("bdf");
        let mut m = Model::new(Generation::HugeFault);
        m.add_device(a, vec![]);
        let first = m.snapshot(1_000_000_000);
        for _ in 0..10 {
            m.ingest(&fault(a, 9, 0x100));
        }
        m.ingest(&fault(a, 9, 0x800));
        m.ingest(&fault(b, 0, 0x100));
        let mut zap = ZapEvent::zeroed();
        zap.device = a.key();
        m.ingest(&Event::Zap(zap));
        let second = m.snapshot(3_000_000_000);
        assert_eq!(second.totals.faults, 12);
        assert_eq!(second.totals.zaps, 1);
        let da = &second.devices[0];
        assert_eq!(da.bars.len(), 1);
        assert_eq!(da.bars[0].index, Some(2));
        let pmd = da.orders.iter().find(|o| o.order == OrderKey::Order(9));
        assert_eq!(pmd.map(|o| (o.faults, o.latency.count)), Some((11, 11)));
        assert_eq!(da.zap_causes.get("unknown"), Some(&1));

        let rates = second.rates(&first);
        assert_eq!(rates.len(), 2);
        assert!((rates[0].faults - 5.5).abs() < 1e-9, "{rates:?}");
        assert!((rates[0].fallbacks - 0.5).abs() < 1e-9);
        assert!((rates[0].zaps - 0.5).abs() < 1e-9);
        // New since the first snapshot: counts from 0.
        assert!((rates[1].faults - 0.5).abs() < 1e-9);
        assert!(second.rates(&second).iter().all(|r| r.faults == 0.0));
    }
}
