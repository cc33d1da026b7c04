//! Everything that can stop an exercise, each a one-line message.

use std::io;

use thiserror::Error;

use super::mapping::MapError;
use super::spec::SpecError;
use super::vfio::VfioError;
use crate::device::{BdfError, SysfsError};

#[derive(Debug, Error)]
pub enum ExerciseError {
    #[error(transparent)]
    Spec(#[from] SpecError),
    #[error(transparent)]
    Address(#[from] BdfError),
    #[error(transparent)]
    Sysfs(#[from] SysfsError),
    #[error(transparent)]
    Vfio(#[from] VfioError),
    #[error(transparent)]
    Map(#[from] MapError),
    #[error("BAR {0} does not exist: a PCI device has BARs 0 to 5")]
    NoSuchBar(u32),
    #[error("BAR {0} is not implemented by this device")]
    EmptyBar(u32),
    #[error("BAR {0} cannot be mmapped (no VFIO_REGION_INFO_FLAG_MMAP)")]
    NotMmappable(u32),
    #[error("this device has no mmappable BAR")]
    NoMmappableBar,
    #[error("{spec}: size {size} is beyond BAR{bar}'s {bar_size} bytes")]
    BeyondBar {
        spec: String,
        size: u64,
        bar: u32,
        bar_size: u64,
    },
    #[error("memory decode is off: touching the BAR would raise SIGBUS (run decode-on first)")]
    DecodeIsOff,
    #[error("memory decode is on: sigbus needs it off (run decode-off first)")]
    DecodeIsOn,
    #[error(
        "PCI_COMMAND reads {got:#06x} after writing {wrote:#06x}: the memory bit did not stick"
    )]
    DecodeStuck { wrote: u16, got: u16 },
    #[error("a contend thread panicked")]
    ThreadPanicked,
    #[error("{what}: {source}")]
    Os {
        what: &'static str,
        source: io::Error,
    },
}
