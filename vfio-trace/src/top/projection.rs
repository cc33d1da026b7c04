//! The device view's projection panel: for each mapping of each BAR (each
//! BAR, when the recording kept no mapping), the faults it took against
//! those it would take at the best page size it allows. The figures are
//! the huge-fault verdict's (`verdict`); this only words them.

use crate::{
    device::{Bdf, PciDevice},
    model::Model,
    record::devices::{DeviceContext, DeviceDoc, device_doc},
    report::duration,
    verdict::{
        self, BarVerdict, Basis, Projection,
        mapping::MappingVerdict,
        pages::{order_name, size_name, thousands},
    },
};

/// Alignments are shown up to this: past every page size.
const ALIGNMENT_SHOWN: u64 = 1 << 30;

/// The panel's lines for a device of a recording.
#[must_use]
pub fn of_document(d: &DeviceDoc, huge_faults: bool) -> Vec<String> {
    let v = verdict::device(d, huge_faults);
    if v.bars.is_empty() {
        return vec!["no fault on a BAR yet".to_owned()];
    }
    v.bars
        .iter()
        .flat_map(|b| bar_lines(b, huge_faults))
        .collect()
}

/// The panel's lines for device `bdf` of a live model: its part of the
/// document `record` would write now, through the same verdict. It walks
/// the device's pages and mappings, so a live source asks for it only for
/// the device whose view is open. `None`: the model has no such device.
#[must_use]
pub fn of_model(
    model: &Model,
    bdf: Bdf,
    pci: Option<&PciDevice>,
    huge_faults: bool,
) -> Option<Vec<String>> {
    let stats = model.devices.get(&bdf)?;
    let cx = DeviceContext {
        pci,
        // Losses and ring counts are no part of the verdict.
        lost_events: 0,
        ring_events: 0,
        comms: &model.comms,
        threads: &model.threads,
        stacks: &model.stacks,
        origin_ns: model.origin_ns(),
    };
    Some(of_document(&device_doc(bdf, stats, &cx), huge_faults))
}

/// What one line states, from a mapping's verdict or a BAR's.
struct Figures<'a> {
    /// "BAR2 64 MiB @4 KiB-aligned".
    what: String,
    faults: u64,
    fault_ns: Option<u64>,
    achieved: Option<u32>,
    best: u32,
    /// The largest order the mapping as it is allows, when known.
    allowed: Option<u32>,
    projections: &'a [Projection],
    /// Why the first huge order is out of reach, when it is.
    blocked: Option<String>,
}

fn bar_lines(b: &BarVerdict, huge_faults: bool) -> Vec<String> {
    let name = b
        .index
        .map_or_else(|| "BAR ?".to_owned(), |i| format!("BAR{i}"));
    if b.mappings.is_empty() {
        let size = b.size.map_or_else(|| "?".to_owned(), size_name);
        let blocked = b
            .huge
            .first()
            .and_then(|h| h.blocked)
            .map(|why| why.describe().to_owned());
        return vec![line(
            &Figures {
                what: format!("{name} {size}, no mapping recorded"),
                faults: b.faults,
                fault_ns: None,
                achieved: b.achieved_order,
                best: b.best_order,
                allowed: None,
                projections: &b.projections,
                blocked,
            },
            huge_faults,
        )];
    }
    let several = b.mappings.len() > 1;
    b.mappings
        .iter()
        .map(|m| line(&mapping_figures(&name, m, several), huge_faults))
        .collect()
}

fn mapping_figures<'a>(bar: &str, m: &'a MappingVerdict, several: bool) -> Figures<'a> {
    let size = if m.size == 0 {
        "?".to_owned()
    } else {
        size_name(m.size)
    };
    let at = m.va_alignment.map_or_else(
        || ", address not recorded".to_owned(),
        |a| format!(" @{}-aligned", size_name(a.min(ALIGNMENT_SHOWN))),
    );
    let pid = if several {
        format!(" (pid {})", m.pid)
    } else {
        String::new()
    };
    Figures {
        what: format!("{bar} {size}{at}{pid}"),
        faults: m.faults,
        fault_ns: Some(m.fault_ns),
        achieved: m.achieved_order,
        best: m.best_order,
        allowed: Some(m.allowed_order),
        projections: &m.projections,
        blocked: m.blockers.first().map(|(_, why)| {
            why.iter()
                .map(|b| b.describe())
                .collect::<Vec<_>>()
                .join(", ")
        }),
    }
}

/// "BAR2 64 MiB @4 KiB-aligned: 16,384 faults (40.1 ms) → 32 at 2 MiB
/// (~78.2 us); align it to 2 MiB".
fn line(f: &Figures<'_>, huge_faults: bool) -> String {
    let taken = match f.fault_ns {
        Some(ns) => format!("{} faults ({})", thousands(f.faults), duration(ns)),
        None => format!("{} faults", thousands(f.faults)),
    };
    let what = &f.what;
    if !huge_faults {
        return format!("{what}: {taken}; this kernel has no huge faults (6.12+ has)");
    }
    let achieved = f.achieved.unwrap_or(0);
    let best = f.best;
    let Some(p) = f.projections.iter().find(|p| p.order == best && best > 0) else {
        return match f.blocked.as_deref() {
            Some(why) if best == 0 => format!("{what}: {taken}; 4 KiB pages only: {why}"),
            _ => format!("{what}: {taken}, the best it allows"),
        };
    };
    let time = match &p.basis {
        Basis::Measured { .. } => p.fault_ns.map(|ns| format!(" (~{})", duration(ns))),
        Basis::Borrowed { from_order, .. } => p.fault_ns.map(|ns| {
            format!(
                " (~{}, timed as {} faults)",
                duration(ns),
                order_name(*from_order)
            )
        }),
        Basis::Unknown => None,
    }
    .unwrap_or_default();
    let order = order_name(best);
    let what_next = if achieved >= best {
        format!("{order} already, the best it allows")
    } else if f.allowed.is_some_and(|a| a > achieved) {
        format!("aligned for {order} already: the fallbacks say why not")
    } else if p.needs_larger_mapping {
        format!("if the mapping covered a whole {order}")
    } else {
        format!("align it to {order}")
    };
    format!(
        "{what}: {taken} → {} at {order}{time}; {what_next}",
        thousands(p.faults)
    )
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::top::fixture;

    fn bdf(s: &str) -> Bdf {
        Bdf::parse(s).expect("bdf")
    }

    fn recorded(bdf: Bdf) -> DeviceDoc {
        fixture::recording()
            .devices
            .into_iter()
            .find(|d| d.bdf == bdf)
            .expect("device")
    }

    #[test]
    fn live_words_the_same_figures_as_the_recording() {
        let model = fixture::model();
        for (dev, ids) in [
            (fixture::A, (0x1af4, 0x1110)),
            (fixture::B, (0x8086, 0x10ca)),
        ] {
            let pci = fixture::pci(dev, ids.0, ids.1);
            let live = of_model(&model, bdf(dev), Some(&pci), true);
            assert_eq!(live, Some(of_document(&recorded(bdf(dev)), true)), "{dev}");
        }
        assert_eq!(of_model(&model, bdf("0000:03:00.0"), None, true), None);
    }

    #[test]
    fn older_kernels_and_recordings_without_mappings_say_so() {
        let a = recorded(bdf(fixture::A));
        assert_eq!(
            of_document(&a, false),
            [
                "BAR2 32 MiB @2 MiB-aligned: 1,655 faults (5.7 ms); this kernel has no huge faults \
              (6.12+ has)"
            ]
        );
        let mut b = recorded(bdf(fixture::B));
        b.bars[0].mappings.clear();
        assert_eq!(
            of_document(&b, true),
            // Its 7 pages span less than 2 MiB: the size of the mapping decides.
            [
                "BAR2 32 MiB, no mapping recorded: 21 faults → 1 at 2 MiB (~2.0 us, timed as 4 KiB \
              faults); if the mapping covered a whole 2 MiB"
            ]
        );
        b.bars.clear();
        assert_eq!(of_document(&b, true), ["no fault on a BAR yet"]);
    }
}
