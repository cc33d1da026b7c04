//! The report's DMA-map lines: a device's maps of its BARs, the cycles a
//! zap started, and the maps of anything else.

use std::fmt::Write as _;

use crate::{
    record::{devices::DeviceDoc, dma::DmaMapsDoc},
    report::duration,
};

/// `1.0 GiB`, `64.0 MiB`: sizes of maps are any multiple of 4 KiB.
fn size(bytes: u64) -> String {
    match bytes {
        b if b >= 1 << 30 => format!("{:.1} GiB", b as f64 / f64::from(1u32 << 30)),
        b if b >= 1 << 20 => format!("{:.1} MiB", b as f64 / f64::from(1u32 << 20)),
        b => format!("{:.1} KiB", b as f64 / 1024.0),
    }
}

/// "3 maps, 1.0 GiB, 1.23 s (in 1027 faults 0.80 s), 262144 pfn lookups".
fn maps(m: &DmaMapsDoc) -> String {
    let failed = if m.failed > 0 {
        format!(", {} failed", m.failed)
    } else {
        String::new()
    };
    format!(
        "{} map{}{failed}, {}, {} (in {} fault{} {}), {} pfn lookup{}",
        m.count,
        if m.count == 1 { "" } else { "s" },
        size(m.bytes),
        duration(m.total_ns),
        m.faults,
        if m.faults == 1 { "" } else { "s" },
        duration(m.fault_ns),
        m.lookups,
        if m.lookups == 1 { "" } else { "s" },
    )
}

/// The device's dma-buf, DMA-map and cycle lines; each only when it has
/// something to say.
pub fn device(s: &mut String, d: &DeviceDoc) {
    let (revokes, restores) = (&d.dma_buf.revokes_ns, &d.dma_buf.restores_ns);
    if revokes.count + restores.count > 0 {
        let _ = writeln!(
            s,
            "  dma-buf   revokes {} (p50 {}, max {}), restores {} (p50 {})",
            revokes.count,
            duration(revokes.p50),
            duration(revokes.max),
            restores.count,
            duration(restores.p50),
        );
    }
    if d.dma_maps.count == 0 {
        return;
    }
    let _ = writeln!(s, "  dma maps  {}", maps(&d.dma_maps));
    for (cause, c) in &d.cycles {
        let n = c.count.max(1);
        let decode_on = c
            .decode_on_ns
            .checked_div(c.decode_on_seen)
            .map_or_else(String::new, |ns| format!(", decode on {}", duration(ns)));
        let _ = writeln!(
            s,
            "  cycles    {cause} {}: per cycle zap {}{decode_on}, to map {}, map {} (faults {}), {} pages back",
            c.count,
            duration(c.zap_ns / n),
            duration(c.to_map_ns / n),
            duration(c.map_ns / n),
            duration(c.map_fault_ns / n),
            c.refaulted_pages / n,
        );
    }
}

/// The line of maps of no BAR (guest RAM); nothing when there were none.
pub fn other(s: &mut String, m: &DmaMapsDoc) {
    if m.count > 0 {
        let _ = writeln!(s, "\nother DMA maps (not of a BAR): {}", maps(m));
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::record::dma::CycleDoc;

    #[test]
    fn maps_and_cycles_read_as_sentences() {
        let mut d = crate::record::document_tests::sample().devices.remove(0);
        let mut s = String::new();
        device(&mut s, &d);
        assert_eq!(s, "", "no map, no line");
        d.dma_maps.count = 2;
        d.dma_maps.bytes = 2 << 30;
        d.dma_maps.total_ns = 1_230_000_000;
        d.dma_maps.faults = 1027;
        d.dma_maps.fault_ns = 800_000_000;
        d.dma_maps.lookups = 1;
        d.cycles.insert(
            "decode-off".into(),
            CycleDoc {
                count: 2,
                zap_ns: 24_000,
                to_map_ns: 9_000_000,
                maps: 2,
                map_ns: 600_000_000,
                map_fault_ns: 400_000_000,
                refaulted_pages: 1024,
                decode_on_seen: 0,
                decode_on_ns: 0,
                revoke_ns: 0,
            },
        );
        device(&mut s, &d);
        assert_eq!(
            s,
            "  dma maps  2 maps, 2.0 GiB, 1.23 s (in 1027 faults 800.0 ms), 1 pfn lookup\n\
             \x20 cycles    decode-off 2: per cycle zap 12.0 us, to map 4.5 ms, map 300.0 ms (faults 200.0 ms), 512 pages back\n"
        );
        let mut o = String::new();
        other(&mut o, &d.dma_maps);
        assert!(
            o.starts_with("\nother DMA maps (not of a BAR): 2 maps"),
            "{o}"
        );
    }
}
