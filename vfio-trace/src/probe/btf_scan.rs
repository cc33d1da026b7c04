//! A single pass over raw BTF that answers the few questions start-up asks:
//! member offsets of a dozen structs and the type ids of a few functions.
//! A full parse builds every one of a kernel's ~100k types and costs most of
//! the time to attach; this walks the type section once, keeps each type's
//! position, and decodes only what is looked up.

use std::collections::HashMap;

/// BTF kinds this reader decodes or must step over.
mod kind {
    pub const INT: u32 = 1;
    pub const ARRAY: u32 = 3;
    pub const STRUCT: u32 = 4;
    pub const UNION: u32 = 5;
    pub const ENUM: u32 = 6;
    pub const TYPEDEF: u32 = 8;
    pub const VOLATILE: u32 = 9;
    pub const CONST: u32 = 10;
    pub const RESTRICT: u32 = 11;
    pub const FUNC: u32 = 12;
    pub const FUNC_PROTO: u32 = 13;
    pub const VAR: u32 = 14;
    pub const DATASEC: u32 = 15;
    pub const DECL_TAG: u32 = 17;
    pub const TYPE_TAG: u32 = 18;
    pub const ENUM64: u32 = 19;
    pub const MAX: u32 = 19;
}

const MAGIC: u16 = 0xeb9f;
const TYPE_HEADER: usize = 12;

#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum ScanError {
    #[error("not BTF (bad magic)")]
    Magic,
    #[error("truncated BTF")]
    Truncated,
    #[error("unknown BTF kind {0}")]
    Kind(u32),
}

/// One BTF blob: vmlinux's, or a module's split on top of it.
pub struct Scan<'a> {
    types: &'a [u8],
    strings: &'a [u8],
    /// Byte position in `types` of each type, by id minus `first_id`.
    positions: Vec<u32>,
    first_id: u32,
    /// String offsets below this are the base's.
    first_string: u32,
    base: Option<&'a Scan<'a>>,
    /// Structs and unions, and functions, by name: only the names asked for.
    named: HashMap<&'a str, Vec<u32>>,
}

/// A type's 12-byte header: `next` is its size, or the type it refers to.
struct Header<'s, 'a> {
    scan: &'s Scan<'a>,
    at: usize,
    kind: u32,
    vlen: usize,
    kind_flag: bool,
    next: u32,
}

fn u16_at(b: &[u8], at: usize) -> Result<u16, ScanError> {
    b.get(at..at + 2)
        .map(|s| u16::from_le_bytes([s[0], s[1]]))
        .ok_or(ScanError::Truncated)
}

fn u32_at(b: &[u8], at: usize) -> Result<u32, ScanError> {
    b.get(at..at + 4)
        .map(|s| u32::from_le_bytes([s[0], s[1], s[2], s[3]]))
        .ok_or(ScanError::Truncated)
}

fn usize_at(b: &[u8], at: usize) -> Result<usize, ScanError> {
    u32_at(b, at).map(|v| v as usize)
}

/// Bytes that follow a type's 12-byte header.
fn trailing(kind: u32, vlen: usize) -> Result<usize, ScanError> {
    Ok(match kind {
        kind::INT | kind::VAR | kind::DECL_TAG => 4,
        kind::ARRAY => 12,
        kind::STRUCT | kind::UNION | kind::DATASEC | kind::ENUM64 => 12 * vlen,
        kind::ENUM | kind::FUNC_PROTO => 8 * vlen,
        0
        | 2
        | 7
        | kind::TYPEDEF
        | kind::VOLATILE
        | kind::CONST
        | kind::RESTRICT
        | kind::FUNC
        | kind::TYPE_TAG
        | 16 => 0,
        k if k > kind::MAX => return Err(ScanError::Kind(k)),
        _ => 0,
    })
}

/// Wanted names by their first byte. Most of the kernel's tens of
/// thousands of names fail at that byte, before their length is known:
/// finding each name's end first was most of the time to scan.
fn by_first_byte<'w>(wanted: &[&'w str]) -> Vec<Vec<&'w str>> {
    let mut table = vec![Vec::new(); 256];
    for &w in wanted {
        if let Some(&b) = w.as_bytes().first() {
            table[usize::from(b)].push(w);
        }
    }
    table
}

/// The wanted name at string `offset`, if the string there is one.
fn wanted_at<'w>(scan: &Scan<'_>, by_first: &[Vec<&'w str>], offset: u32) -> Option<&'w str> {
    let bytes = scan.string_bytes(offset);
    let names = by_first.get(usize::from(*bytes.first()?))?;
    names.iter().copied().find(|w| {
        let w = w.as_bytes();
        bytes.len() > w.len() && bytes.starts_with(w) && bytes[w.len()] == 0
    })
}

impl<'a> Scan<'a> {
    /// Walks `blob`, a module's split BTF when `base` is given, remembering
    /// the structs, unions and functions named in `wanted`.
    pub fn new(
        blob: &'a [u8],
        base: Option<&'a Scan<'a>>,
        wanted: &[&'a str],
    ) -> Result<Self, ScanError> {
        if u16_at(blob, 0)? != MAGIC {
            return Err(ScanError::Magic);
        }
        let hdr_len = usize_at(blob, 4)?;
        let section = |off: usize, len: usize| {
            let start = hdr_len + usize_at(blob, off)?;
            let len = usize_at(blob, len)?;
            blob.get(start..start + len).ok_or(ScanError::Truncated)
        };
        let types = section(8, 12)?;
        let strings = section(16, 20)?;
        let (first_id, first_string) = base.map_or((1, 0), |b| {
            (b.first_id + b.len(), b.first_string + b.strings_len())
        });
        let mut scan = Self {
            types,
            strings,
            positions: Vec::with_capacity(types.len() / 24),
            first_id,
            first_string,
            base,
            named: HashMap::new(),
        };
        let by_first = by_first_byte(wanted);
        let mut at = 0;
        while at < types.len() {
            let info = u32_at(types, at + 4)?;
            let kind = (info >> 24) & 0x1f;
            let vlen = (info & 0xffff) as usize;
            let id = first_id + scan.len();
            scan.positions
                .push(u32::try_from(at).map_err(|_| ScanError::Truncated)?);
            if matches!(kind, kind::STRUCT | kind::UNION | kind::FUNC | kind::ENUM)
                && let Some(w) = wanted_at(&scan, &by_first, u32_at(types, at)?)
            {
                scan.named.entry(w).or_default().push(id);
            }
            at += TYPE_HEADER + trailing(kind, vlen)?;
        }
        Ok(scan)
    }

    fn len(&self) -> u32 {
        u32::try_from(self.positions.len()).unwrap_or(u32::MAX)
    }

    fn strings_len(&self) -> u32 {
        u32::try_from(self.strings.len()).unwrap_or(u32::MAX)
    }

    /// A name from the string section; split BTF's own strings follow the base's.
    fn string(&self, offset: u32) -> &'a str {
        let bytes = self.string_bytes(offset);
        let end = bytes.iter().position(|&b| b == 0).unwrap_or(bytes.len());
        std::str::from_utf8(&bytes[..end]).unwrap_or("")
    }

    /// The string section from `offset` on, its terminating NUL and beyond.
    fn string_bytes(&self, offset: u32) -> &'a [u8] {
        if offset < self.first_string {
            return self.base.map_or(&[], |b| b.string_bytes(offset));
        }
        let start = (offset - self.first_string) as usize;
        self.strings.get(start..).unwrap_or_default()
    }

    /// The blob holding type `id` and the type's position in it.
    fn locate(&self, id: u32) -> Option<(&Self, usize)> {
        if id < self.first_id {
            return self.base.and_then(|b| b.locate(id));
        }
        let at = *self.positions.get((id - self.first_id) as usize)?;
        Some((self, at as usize))
    }

    /// The header of type `id`, and where it is.
    fn header(&self, id: u32) -> Option<Header<'_, 'a>> {
        let (scan, at) = self.locate(id)?;
        let info = u32_at(scan.types, at + 4).ok()?;
        Some(Header {
            scan,
            at,
            kind: (info >> 24) & 0x1f,
            vlen: (info & 0xffff) as usize,
            kind_flag: info >> 31 == 1,
            next: u32_at(scan.types, at + 8).ok()?,
        })
    }

    /// The id of function `name`, when it was wanted and is here.
    pub fn func_id(&self, name: &str) -> Option<u32> {
        self.named
            .get(name)?
            .iter()
            .copied()
            .find(|&id| self.header(id).is_some_and(|h| h.kind == kind::FUNC))
    }

    /// The value of `member` of `enum name` (wanted at construction), here
    /// or in the base.
    pub fn enum_value(&self, name: &str, member: &str) -> Option<u32> {
        let here = self.named.get(name).into_iter().flatten().find_map(|&id| {
            let h = self.header(id)?;
            if h.kind != kind::ENUM {
                return None;
            }
            (0..h.vlen).find_map(|i| {
                let at = h.at + TYPE_HEADER + 8 * i;
                let entry = h.scan.string(u32_at(h.scan.types, at).ok()?);
                (entry == member)
                    .then(|| u32_at(h.scan.types, at + 4).ok())
                    .flatten()
            })
        });
        here.or_else(|| self.base.and_then(|b| b.enum_value(name, member)))
    }

    /// Byte offset of `member` in struct `strukt` (wanted at construction),
    /// looking through anonymous structs and unions. The base is searched
    /// after this blob.
    pub fn member_offset(&self, strukt: &str, member: &str) -> Option<u32> {
        let here = self
            .named
            .get(strukt)
            .into_iter()
            .flatten()
            .find_map(|&id| {
                let h = self.header(id)?;
                (h.kind == kind::STRUCT && h.vlen > 0)
                    .then(|| self.find_in(id, member, 0, 0))
                    .flatten()
            });
        here.or_else(|| self.base.and_then(|b| b.member_offset(strukt, member)))
    }

    fn find_in(&self, id: u32, member: &str, base_bits: u32, depth: u32) -> Option<u32> {
        let Header {
            scan,
            at,
            vlen,
            kind_flag,
            ..
        } = self.header(id)?;
        for i in 0..vlen {
            let m = at + TYPE_HEADER + 12 * i;
            let name = scan.string(u32_at(scan.types, m).ok()?);
            let ty = u32_at(scan.types, m + 4).ok()?;
            let raw = u32_at(scan.types, m + 8).ok()?;
            let (bits, bitfield) = if kind_flag {
                (raw & 0x00ff_ffff, raw >> 24)
            } else {
                (raw, 0)
            };
            let bits = base_bits + bits;
            if name == member {
                // A bitfield member has no byte address the programs could read.
                return (bitfield == 0 && bits.is_multiple_of(8)).then_some(bits / 8);
            }
            if name.is_empty()
                && depth < 8
                && let Some(inner) = self.strip_modifiers(ty)
                && let Some(found) = self.find_in(inner, member, bits, depth + 1)
            {
                return Some(found);
            }
        }
        None
    }

    /// Follows const/volatile/typedef to the struct or union underneath.
    fn strip_modifiers(&self, mut id: u32) -> Option<u32> {
        for _ in 0..8 {
            let h = self.header(id)?;
            match h.kind {
                kind::STRUCT | kind::UNION => return Some(id),
                kind::CONST | kind::VOLATILE | kind::TYPEDEF | kind::RESTRICT | kind::TYPE_TAG => {
                    id = h.next;
                }
                _ => return None,
            }
        }
        None
    }
}

#[cfg(test)]
mod tests {
    use std::path::Path;

    use btf_rs::{Btf, Type};

    use super::*;
    use crate::probe::offsets;

    /// Reference: a function's id from a full parse.
    fn full_func_id(btf: &Btf, symbol: &str) -> Option<u32> {
        btf.resolve_ids_by_name(symbol)
            .ok()?
            .into_iter()
            .find(|id| matches!(btf.resolve_type_by_id(*id), Ok(Type::Func(_))))
    }

    /// Reference: a member's byte offset from a full parse, through
    /// anonymous structs and unions.
    fn full_member_offset(btf: &Btf, strukt: &str, member: &str) -> Option<u32> {
        let types = btf.resolve_types_by_name(strukt).ok()?;
        types.iter().find_map(|t| match t {
            Type::Struct(s) if !s.members.is_empty() => full_find_in(btf, s, member, 0),
            _ => None,
        })
    }

    fn full_find_in(btf: &Btf, s: &btf_rs::Struct, member: &str, base_bits: u32) -> Option<u32> {
        for m in &s.members {
            let bits = base_bits + m.bit_offset();
            let name = btf.resolve_name(m).unwrap_or_default();
            if name == member {
                return (m.bitfield_size().unwrap_or(0) == 0 && bits.is_multiple_of(8))
                    .then_some(bits / 8);
            }
            if name.is_empty() {
                let mut t = btf.resolve_chained_type(m).ok()?;
                for _ in 0..8 {
                    t = match t {
                        Type::Struct(inner) | Type::Union(inner) => {
                            if let Some(found) = full_find_in(btf, &inner, member, bits) {
                                return Some(found);
                            }
                            break;
                        }
                        Type::Const(c) | Type::Volatile(c) => btf.resolve_chained_type(&c).ok()?,
                        Type::Typedef(td) => btf.resolve_chained_type(&td).ok()?,
                        _ => break,
                    };
                }
            }
        }
        None
    }

    #[test]
    fn refuses_what_is_not_btf() {
        assert_eq!(
            Scan::new(b"\x00\x00", None, &[]).err(),
            Some(ScanError::Magic)
        );
        assert_eq!(
            Scan::new(b"\x9f", None, &[]).err(),
            Some(ScanError::Truncated)
        );
        let mut header = vec![0x9f, 0xeb, 1, 0, 24, 0, 0, 0];
        // Sections that run past the end.
        header.extend([0, 0, 0, 0, 100, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0]);
        assert_eq!(
            Scan::new(&header, None, &[]).err(),
            Some(ScanError::Truncated)
        );
    }

    /// Against a full parse of the host's own BTF: every member of structs
    /// with anonymous unions, bitfields and nesting, and function ids.
    #[test]
    fn agrees_with_a_full_parse_of_this_kernels_btf() {
        let path = Path::new(offsets::VMLINUX_BTF);
        let Ok(blob) = std::fs::read(path) else {
            eprintln!("no {}: skipped", path.display());
            return;
        };
        let full = Btf::from_file(path).expect("vmlinux BTF parses");
        let structs = [
            "vm_fault",
            "vm_area_struct",
            "task_struct",
            "file",
            "inode",
            "pci_dev",
        ];
        let functions = [
            "unmap_mapping_range",
            "vmf_insert_pfn",
            "zap_page_range_single",
            "nope_fn",
        ];
        let wanted: Vec<&str> = structs.iter().chain(&functions).copied().collect();
        let scan = Scan::new(&blob, None, &wanted).expect("scans");
        let mut compared = 0;
        for strukt in structs {
            let Ok(types) = full.resolve_types_by_name(strukt) else {
                continue;
            };
            for t in types {
                let Type::Struct(s) = t else { continue };
                for m in &s.members {
                    let name = full.resolve_name(m).unwrap_or_default();
                    if name.is_empty() {
                        continue;
                    }
                    assert_eq!(
                        scan.member_offset(strukt, &name),
                        full_member_offset(&full, strukt, &name),
                        "{strukt}.{name}"
                    );
                    compared += 1;
                }
            }
        }
        assert!(compared > 100, "only {compared} members compared");
        for f in functions {
            assert_eq!(scan.func_id(f), full_func_id(&full, f), "{f}");
        }
        assert_eq!(scan.member_offset("vm_fault", "no_such_member"), None);
        assert_eq!(scan.member_offset("not_wanted", "vma"), None);
    }
}
