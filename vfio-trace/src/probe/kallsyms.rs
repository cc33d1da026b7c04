//! Kernel symbols from `/proc/kallsyms`, to choose which probes can attach.

use std::collections::HashMap;

/// Function symbols of the running kernel and its modules.
#[derive(Debug, Default, Clone)]
pub struct Symbols {
    /// Symbol name to the module that holds it (`None` for vmlinux).
    functions: HashMap<String, Option<String>>,
    /// Tracepoints (`__tracepoint_NAME` data symbols), by NAME.
    tracepoints: std::collections::HashSet<String>,
    /// Text symbols by address, to name stack frames.
    by_addr: Vec<(u64, String)>,
}

impl Symbols {
    /// Parses kallsyms text: `ADDR TYPE NAME [MODULE]` per line. Only text
    /// symbols (`t`/`T`) are functions a kprobe can attach to.
    pub fn parse(text: &str) -> Self {
        let mut functions = HashMap::new();
        let mut tracepoints = std::collections::HashSet::new();
        let mut by_addr = Vec::new();
        for line in text.lines() {
            let mut parts = line.split_whitespace();
            let (Some(addr_text), Some(kind), Some(name)) =
                (parts.next(), parts.next(), parts.next())
            else {
                continue;
            };
            if let Some(tp) = name.strip_prefix("__tracepoint_") {
                tracepoints.insert(tp.to_owned());
                continue;
            }
            if !kind.eq_ignore_ascii_case("t") {
                continue;
            }
            if let Ok(addr) = u64::from_str_radix(addr_text, 16)
                && addr != 0
            {
                by_addr.push((addr, name.to_owned()));
            }
            // Compiler clones such as `foo.isra.0` or `foo.cold` are not the entry point.
            if name.contains('.') {
                continue;
            }
            let module = parts
                .next()
                .map(|m| m.trim_start_matches('[').trim_end_matches(']').to_owned());
            functions.entry(name.to_owned()).or_insert(module);
        }
        by_addr.sort_unstable();
        Self {
            functions,
            tracepoints,
            by_addr,
        }
    }

    /// The function holding `addr` (the nearest symbol at or below it).
    pub fn name_at(&self, addr: u64) -> Option<&str> {
        let i = self.by_addr.partition_point(|(a, _)| *a <= addr);
        i.checked_sub(1).map(|i| self.by_addr[i].1.as_str())
    }

    /// Reads `/proc/kallsyms`.
    pub fn load() -> std::io::Result<Self> {
        Ok(Self::parse(&std::fs::read_to_string("/proc/kallsyms")?))
    }

    /// A function, or a tracepoint written `category:name`.
    pub fn contains(&self, name: &str) -> bool {
        match name.split_once(':') {
            Some((_, tp)) => self.tracepoints.contains(tp),
            None => self.functions.contains_key(name),
        }
    }

    /// The module holding `name`, if it is a module symbol.
    pub fn module_of(&self, name: &str) -> Option<&str> {
        self.functions.get(name).and_then(|m| m.as_deref())
    }

    pub fn is_empty(&self) -> bool {
        self.functions.is_empty()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const SAMPLE: &str = "\
ffffffff81000000 T _text
ffffffff812a0b40 T vmf_insert_pfn
ffffffff812a0c00 t remap_pfn_range_notrack
ffffffff812a0c80 T remap_pfn_range
ffffffff812a0d00 t zap_page_range.isra.0
ffffffff82000000 D some_data
ffffffff82000100 D __tracepoint_contention_begin
ffffffffc0a01230 t vfio_pci_mmap_huge_fault\t[vfio_pci_core]
ffffffffc0a01400 t vfio_pci_mmap_page_fault\t[vfio_pci_core]
";

    #[test]
    fn keeps_text_symbols_with_their_module() {
        let s = Symbols::parse(SAMPLE);
        assert!(s.contains("vmf_insert_pfn"));
        assert!(s.contains("remap_pfn_range"));
        assert!(!s.contains("some_data"), "data symbols are not functions");
        assert!(!s.contains("zap_page_range.isra.0"), "clones are skipped");
        assert_eq!(
            s.module_of("vfio_pci_mmap_huge_fault"),
            Some("vfio_pci_core")
        );
        assert_eq!(s.module_of("vmf_insert_pfn"), None);
        assert!(s.contains("lock:contention_begin"));
        assert_eq!(s.name_at(0xffffffff812a0c90), Some("remap_pfn_range"));
        assert_eq!(
            s.name_at(0xffffffffc0a01231),
            Some("vfio_pci_mmap_huge_fault")
        );
        assert_eq!(s.name_at(0x10), None);
        assert!(!s.contains("lock:contention_end"));
    }

    #[test]
    fn empty_when_nothing_parses() {
        assert!(Symbols::parse("garbage\n\n").is_empty());
    }
}
