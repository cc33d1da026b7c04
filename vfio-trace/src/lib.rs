//! vfio-trace as a library: everything but argument parsing.
//!
//! Only `probe` touches aya and the kernel; the rest is plain data.

pub mod check;
pub mod exercise;
