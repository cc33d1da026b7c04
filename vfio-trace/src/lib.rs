//! vfio-trace as a library: everything but argument parsing.
//!
//! Only `probe` touches aya and the kernel; the rest is plain data.

pub mod check;
pub mod device;
pub mod event;
pub mod exercise;
pub mod kernel;
pub mod model;
pub mod probe;
pub mod record;
pub mod report;
pub mod verdict;
