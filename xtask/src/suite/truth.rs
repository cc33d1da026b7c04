//! Parsing tracefs hist files, the suite's ground truth.

use std::collections::BTreeMap;

/// `{ key: N } hitcount: M` lines of a hist keyed by a number.
pub fn by_key(text: &str) -> BTreeMap<u64, u64> {
    let mut out = BTreeMap::new();
    for line in text.lines() {
        let Some(rest) = line.trim().strip_prefix('{') else {
            continue;
        };
        let Some((key, count)) = rest.split_once('}') else {
            continue;
        };
        let Some(value) = key.split(':').nth(1).and_then(|v| v.trim().parse().ok()) else {
            continue;
        };
        let Some(hits) = count
            .trim()
            .strip_prefix("hitcount:")
            .and_then(|h| h.trim().parse::<u64>().ok())
        else {
            continue;
        };
        *out.entry(value).or_default() += hits;
    }
    out
}

/// `Hits: N` of the totals.
pub fn total(text: &str) -> Option<u64> {
    text.lines().find_map(|l| {
        l.trim()
            .strip_prefix("Hits:")
            .and_then(|n| n.trim().parse().ok())
    })
}

/// Hits of stacktrace-keyed entries whose stack contains `needle`.
pub fn stack_hits(text: &str, needle: &str) -> u64 {
    let mut hits = 0;
    let mut inside = false;
    for line in text.lines() {
        let line = line.trim();
        if line.starts_with("{ ") && line.contains("stacktrace") {
            inside = false;
        }
        if line.contains(needle) {
            inside = true;
        }
        if let Some(count) = line
            .strip_prefix('}')
            .and_then(|r| r.trim().strip_prefix("hitcount:"))
        {
            if inside {
                hits += count.trim().parse::<u64>().unwrap_or(0);
            }
            inside = false;
        }
    }
    hits
}

/// Each stacktrace-keyed entry: its frames (function names, innermost
/// first) and its hits.
pub fn stacks(text: &str) -> Vec<(Vec<String>, u64)> {
    let mut out = Vec::new();
    let mut frames = Vec::new();
    for line in text.lines() {
        let line = line.trim();
        if line.starts_with("{ ") && line.contains("stacktrace") {
            frames.clear();
        } else if let Some(count) = line
            .strip_prefix('}')
            .and_then(|r| r.trim().strip_prefix("hitcount:"))
        {
            out.push((
                std::mem::take(&mut frames),
                count.trim().parse().unwrap_or(0),
            ));
        } else if let Some(f) = line.split('+').next().filter(|f| !f.is_empty()) {
            frames.push(f.to_owned());
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    const KEYED: &str = "# event histogram\n\n{ order:          9 } hitcount:          8\n{ order:          0 } hitcount:       1025\n\nTotals:\n    Hits: 1033\n";
    const STACKS: &str = "\
{ common_stacktrace:
         vmf_insert_pfn+0x9/0x20
         __do_fault+0x33/0x170
} hitcount:          1
{ common_stacktrace:
         vmf_insert_pfn+0x9/0x20
         vfio_pci_mmap_huge_fault+0x185/0x1d0 [vfio_pci_core]
         __do_fault+0x33/0x170
} hitcount:       1024
{ common_stacktrace:
         aggr_pre_handler+0x44/0x80
         vmf_insert_pfn+0x9/0x20
         vfio_pci_mmap_huge_fault+0x185/0x1d0 [vfio_pci_core]
} hitcount:          2
";

    #[test]
    fn parses_keyed_hists_and_totals() {
        assert_eq!(by_key(KEYED), BTreeMap::from([(0, 1025), (9, 8)]));
        assert_eq!(total(KEYED), Some(1033));
    }

    #[test]
    fn counts_only_stacks_through_the_needle() {
        assert_eq!(stack_hits(STACKS, "vfio_pci_mmap"), 1026);
        assert_eq!(stack_hits(STACKS, "nothing"), 0);
    }

    #[test]
    fn splits_stacks_into_frames() {
        let got = stacks(STACKS);
        assert_eq!(got.len(), 3);
        assert_eq!(
            got[0],
            (vec!["vmf_insert_pfn".into(), "__do_fault".into()], 1)
        );
        assert_eq!(got[1].0[1], "vfio_pci_mmap_huge_fault");
        assert_eq!(got[2].1, 2);
    }
}
