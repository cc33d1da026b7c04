//! Kernel BTF objects, for fentry/fexit into module functions: the kernel
//! names such a function by its type id inside the module's BTF object, and
//! takes that object as an fd (`attach_btf_obj_fd`).

use std::{
    io,
    os::fd::{FromRawFd as _, OwnedFd},
};

const BPF_OBJ_GET_INFO_BY_FD: libc::c_long = 15;
const BPF_BTF_GET_FD_BY_ID: libc::c_long = 19;
const BPF_BTF_GET_NEXT_ID: libc::c_long = 23;

/// A length the kernel takes as a `u32`.
#[allow(
    clippy::cast_possible_truncation,
    reason = "only the sizes of bpf_attr, bpf_btf_info and a 64-byte name buffer"
)]
const fn len32(bytes: usize) -> u32 {
    bytes as u32
}

/// `union bpf_attr` for the `*_GET_NEXT_ID` and `*_GET_FD_BY_ID` commands.
#[repr(C)]
#[derive(Default)]
struct IdAttr {
    id: u32,
    next_id: u32,
    open_flags: u32,
}

/// `union bpf_attr` for `BPF_OBJ_GET_INFO_BY_FD`.
#[repr(C)]
struct InfoAttr {
    bpf_fd: u32,
    info_len: u32,
    info: u64,
}

/// `struct bpf_btf_info`.
#[repr(C)]
#[derive(Default)]
struct BtfInfo {
    btf: u64,
    btf_size: u32,
    id: u32,
    name: u64,
    name_len: u32,
    kernel_btf: u32,
}

fn bpf<T>(cmd: libc::c_long, attr: &mut T) -> io::Result<i64> {
    // SAFETY: `attr` is a live, correctly laid out bpf_attr prefix of its size.
    let r = unsafe {
        libc::syscall(
            libc::SYS_bpf,
            cmd,
            std::ptr::from_mut(attr),
            len32(size_of::<T>()),
        )
    };
    if r < 0 {
        Err(io::Error::last_os_error())
    } else {
        Ok(r)
    }
}

/// An fd of the kernel BTF object named `name` (`vmlinux` or a module).
pub fn fd_by_name(name: &str) -> io::Result<OwnedFd> {
    let mut id = 0;
    loop {
        let mut next = IdAttr {
            id,
            ..IdAttr::default()
        };
        bpf(BPF_BTF_GET_NEXT_ID, &mut next).map_err(|e| {
            if e.raw_os_error() == Some(libc::ENOENT) {
                io::Error::new(
                    io::ErrorKind::NotFound,
                    format!("no kernel BTF object {name}"),
                )
            } else {
                e
            }
        })?;
        id = next.next_id;
        let mut get = IdAttr {
            id,
            ..IdAttr::default()
        };
        let Ok(raw) = bpf(BPF_BTF_GET_FD_BY_ID, &mut get) else {
            continue; // unloaded meanwhile
        };
        #[allow(
            clippy::cast_possible_truncation,
            reason = "BPF_BTF_GET_FD_BY_ID returns an fd, an int"
        )]
        let raw = raw as i32;
        // SAFETY: a new fd the kernel just gave us.
        let fd = unsafe { OwnedFd::from_raw_fd(raw) };
        let mut buf = [0u8; 64];
        let mut info = BtfInfo {
            name: buf.as_mut_ptr() as u64,
            name_len: len32(buf.len()),
            ..BtfInfo::default()
        };
        let mut attr = InfoAttr {
            bpf_fd: raw.cast_unsigned(),
            info_len: len32(size_of::<BtfInfo>()),
            info: std::ptr::from_mut(&mut info) as u64,
        };
        if bpf(BPF_OBJ_GET_INFO_BY_FD, &mut attr).is_ok() && info.kernel_btf != 0 {
            let len = buf.iter().position(|b| *b == 0).unwrap_or(buf.len());
            if &buf[..len] == name.as_bytes() {
                return Ok(fd);
            }
        }
    }
}
