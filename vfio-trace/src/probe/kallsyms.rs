//! Kernel symbols from `/proc/kallsyms`, to choose which probes can attach.

use std::collections::HashMap;

/// Function symbols of the running kernel and its modules.
#[derive(Debug, Default, Clone)]
pub struct Symbols {
    /// Symbol name to the module that holds it (`None` for vmlinux).
    functions: HashMap<String, Option<String>>,
}

impl Symbols {
    /// Parses kallsyms text: `ADDR TYPE NAME [MODULE]` per line. Only text
    /// symbols (`t`/`T`) are functions a kprobe can attach to.
    pub fn parse(text: &str) -> Self {
        let mut functions = HashMap::new();
        for line in text.lines() {
            let mut parts = line.split_whitespace();
            let (Some(_addr), Some(kind), Some(name)) = (parts.next(), parts.next(), parts.next())
            else {
                continue;
            };
            if !kind.eq_ignore_ascii_case("t") {
                continue;
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
        Self { functions }
    }

    /// Reads `/proc/kallsyms`.
    pub fn load() -> std::io::Result<Self> {
        Ok(Self::parse(&std::fs::read_to_string("/proc/kallsyms")?))
    }

    pub fn contains(&self, name: &str) -> bool {
        self.functions.contains_key(name)
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
    }

    #[test]
    fn empty_when_nothing_parses() {
        assert!(Symbols::parse("garbage\n\n").is_empty());
    }
}
