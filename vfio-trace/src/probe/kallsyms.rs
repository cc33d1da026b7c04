//! Kernel symbols: which functions and tracepoints exist, to choose the
//! probes, and, read from `/proc/kallsyms`, their addresses, to name stack
//! frames. Start-up learns what exists from BTF and tracefs (`from_present`);
//! kallsyms is read only to name stacks. ~150,000 text symbols are held as one
//! string and sorted index vectors, not a String each: a String per symbol
//! cost more memory than the rest of a recording.

use std::{cmp::Ordering, collections::HashSet, ops::Range};

/// A name's place in `Symbols::names`.
type Span = (u32, u32);

/// Function symbols of the running kernel and its modules.
#[derive(Debug, Default, Clone)]
pub struct Symbols {
    /// Every kept name, back to back.
    names: String,
    /// Module names; `functions` refer to them by index + 1 (0: vmlinux).
    modules: Vec<String>,
    /// Entry points (no compiler clones), sorted by name: (name, module).
    functions: Vec<(Span, u16)>,
    /// Tracepoints (`__tracepoint_NAME` data symbols), by NAME.
    tracepoints: HashSet<String>,
    /// Text symbols by address, to name stack frames.
    by_addr: Vec<(u64, Span)>,
}

impl Symbols {
    /// Parses kallsyms text: `ADDR TYPE NAME [MODULE]` per line. Only text
    /// symbols (`t`/`T`) are functions a kprobe can attach to.
    pub fn parse(text: &str) -> Self {
        let mut s = Self::default();
        for line in text.lines() {
            let mut parts = line.split_whitespace();
            let (Some(addr_text), Some(kind), Some(name)) =
                (parts.next(), parts.next(), parts.next())
            else {
                continue;
            };
            if let Some(tp) = name.strip_prefix("__tracepoint_") {
                s.tracepoints.insert(tp.to_owned());
                continue;
            }
            if !kind.eq_ignore_ascii_case("t") {
                continue;
            }
            let span = s.push_name(name);
            if let Ok(addr) = u64::from_str_radix(addr_text, 16)
                && addr != 0
            {
                s.by_addr.push((addr, span));
            }
            // Compiler clones such as `foo.isra.0` or `foo.cold` are not the entry point.
            if name.contains('.') {
                continue;
            }
            let module = parts.next().map_or(0, |m| {
                s.module_index(m.trim_start_matches('[').trim_end_matches(']'))
            });
            s.functions.push((span, module));
        }
        s.by_addr.sort_unstable_by_key(|(addr, _)| *addr);
        s.sort_functions();
        s
    }

    /// Sorts `functions` by name for lookups. Stable: the first of duplicate
    /// names (vmlinux before modules) wins.
    fn sort_functions(&mut self) {
        let names = &self.names;
        self.functions
            .sort_by(|a, b| names[range(a.0)].cmp(&names[range(b.0)]));
    }

    /// What exists, without addresses: `functions` with their module
    /// (`None`: vmlinux), and tracepoints as `category:name`.
    pub fn from_present<'n>(
        functions: impl IntoIterator<Item = (&'n str, Option<&'n str>)>,
        tracepoints: impl IntoIterator<Item = &'n str>,
    ) -> Self {
        let mut s = Self::default();
        for (name, module) in functions {
            let span = s.push_name(name);
            let module = module.map_or(0, |m| s.module_index(m));
            s.functions.push((span, module));
        }
        s.sort_functions();
        s.tracepoints = tracepoints
            .into_iter()
            .map(|t| t.split_once(':').map_or(t, |(_, n)| n).to_owned())
            .collect();
        s
    }

    #[allow(
        clippy::cast_possible_truncation,
        reason = "the names of /proc/kallsyms total a few MiB"
    )]
    fn push_name(&mut self, name: &str) -> Span {
        let start = self.names.len() as u32;
        self.names.push_str(name);
        (start, self.names.len() as u32)
    }

    fn module_index(&mut self, module: &str) -> u16 {
        let i = if let Some(i) = self.modules.iter().position(|m| m == module) {
            i
        } else {
            self.modules.push(module.to_owned());
            self.modules.len() - 1
        };
        u16::try_from(i + 1).unwrap_or(u16::MAX)
    }

    fn name(&self, span: Span) -> &str {
        &self.names[range(span)]
    }

    fn function(&self, name: &str) -> Option<&(Span, u16)> {
        let first = self
            .functions
            .partition_point(|(span, _)| self.name(*span).cmp(name) == Ordering::Less);
        self.functions
            .get(first)
            .filter(|(span, _)| self.name(*span) == name)
    }

    /// The function holding `addr` (the nearest symbol at or below it).
    pub fn name_at(&self, addr: u64) -> Option<&str> {
        let i = self.by_addr.partition_point(|(a, _)| *a <= addr);
        i.checked_sub(1).map(|i| self.name(self.by_addr[i].1))
    }

    /// A function, or a tracepoint written `category:name`.
    pub fn contains(&self, name: &str) -> bool {
        match name.split_once(':') {
            Some((_, tp)) => self.tracepoints.contains(tp),
            None => self.function(name).is_some(),
        }
    }

    /// The module holding `name`, if it is a module symbol.
    pub fn module_of(&self, name: &str) -> Option<&str> {
        let (_, module) = self.function(name)?;
        module
            .checked_sub(1)
            .and_then(|i| self.modules.get(usize::from(i)))
            .map(String::as_str)
    }

    pub fn is_empty(&self) -> bool {
        self.functions.is_empty()
    }
}

fn range((start, end): Span) -> Range<usize> {
    start as usize..end as usize
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
        assert_eq!(s.name_at(0xffff_ffff_812a_0c90), Some("remap_pfn_range"));
        assert_eq!(
            s.name_at(0xffff_ffff_c0a0_1231),
            Some("vfio_pci_mmap_huge_fault")
        );
        assert_eq!(s.name_at(0x10), None);
        assert!(!s.contains("lock:contention_end"));
    }

    #[test]
    fn what_exists_without_addresses() {
        let s = Symbols::from_present(
            [
                ("vmf_insert_pfn", None),
                ("vfio_pci_mmap_huge_fault", Some("vfio_pci_core")),
            ],
            ["lock:contention_begin"],
        );
        assert!(s.contains("vmf_insert_pfn"));
        assert_eq!(
            s.module_of("vfio_pci_mmap_huge_fault"),
            Some("vfio_pci_core")
        );
        assert!(s.contains("lock:contention_begin"));
        assert!(!s.contains("lock:contention_end"));
        assert!(!s.contains("remap_pfn_range"));
        assert_eq!(s.name_at(0xffff_ffff_8100_0000), None);
    }

    #[test]
    fn empty_when_nothing_parses() {
        assert!(Symbols::parse("garbage\n\n").is_empty());
    }
}
