//! A BTF file's bytes, mapped where the kernel allows it. Reading
//! `/sys/kernel/btf/vmlinux` (5.5 MB on 7.3) copies it a page per read
//! call: in a 7.3 guest under emulation that took 80–280 ms of the time to
//! attach. Kernels since 6.16 let it be mapped read-only instead, with no
//! copy; where mapping is refused, it is read.

use std::{fs::File, io::Read, ops::Deref, os::fd::AsRawFd, path::Path};

/// Bytes of a BTF file, mapped or read.
pub enum BtfBytes {
    Mapped { at: *const u8, len: usize },
    Read(Vec<u8>),
}

impl BtfBytes {
    /// The whole file at `path`: mapped if the kernel allows, else read.
    pub fn open(path: &Path) -> std::io::Result<Self> {
        let mut file = File::open(path)?;
        let len = usize::try_from(file.metadata()?.len()).unwrap_or(usize::MAX);
        if let Some(mapped) = map(&file, len) {
            return Ok(mapped);
        }
        let mut bytes = Vec::with_capacity(len);
        file.read_to_end(&mut bytes)?;
        Ok(Self::Read(bytes))
    }

    pub fn is_mapped(&self) -> bool {
        matches!(self, Self::Mapped { .. })
    }
}

/// Maps `len` bytes of `file` read-only and private, as the kernel's BTF
/// mapping requires; `None` when it refuses (before 6.16, or a module's BTF).
fn map(file: &File, len: usize) -> Option<BtfBytes> {
    if len == 0 {
        return None;
    }
    // SAFETY: a fresh read-only mapping of an open file; checked below.
    let at = unsafe {
        libc::mmap(
            std::ptr::null_mut(),
            len,
            libc::PROT_READ,
            libc::MAP_PRIVATE,
            file.as_raw_fd(),
            0,
        )
    };
    (at != libc::MAP_FAILED).then(|| BtfBytes::Mapped {
        at: at.cast::<u8>().cast_const(),
        len,
    })
}

impl Deref for BtfBytes {
    type Target = [u8];
    fn deref(&self) -> &[u8] {
        match self {
            // SAFETY: the mapping lives until drop and holds `len` readable bytes.
            Self::Mapped { at, len } => unsafe { std::slice::from_raw_parts(*at, *len) },
            Self::Read(bytes) => bytes,
        }
    }
}

impl Drop for BtfBytes {
    fn drop(&mut self) {
        if let Self::Mapped { at, len } = self {
            // SAFETY: unmaps exactly the mapping made in `map`.
            unsafe { libc::munmap(at.cast_mut().cast(), *len) };
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_regular_file_reads_back_the_same_whether_mapped_or_not() {
        let dir = tempfile::tempdir().expect("tempdir");
        let path = dir.path().join("btf");
        let content: Vec<u8> = (0..10_000u32).map(|i| (i % 251) as u8).collect();
        std::fs::write(&path, &content).expect("write");
        let bytes = BtfBytes::open(&path).expect("open");
        assert!(bytes.is_mapped(), "a regular file maps");
        assert_eq!(&*bytes, content.as_slice());
        let empty = dir.path().join("empty");
        std::fs::write(&empty, b"").expect("write");
        let bytes = BtfBytes::open(&empty).expect("open");
        assert!(!bytes.is_mapped());
        assert!(bytes.is_empty());
        assert!(BtfBytes::open(&dir.path().join("absent")).is_err());
    }
}
