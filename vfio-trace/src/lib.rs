//! vfio-trace as a library: everything but argument parsing.
//!
//! Only `probe` touches aya and the kernel; the rest is plain data.

#![cfg_attr(
    test,
    expect(unused_crate_dependencies, reason = "criterion is for the benchmarks")
)]

pub mod check;
pub mod device;
pub mod event;
pub mod exercise;
pub mod kernel;
pub mod model;
pub mod probe;
pub mod record;
pub mod report;
mod report_dma;
pub mod serve;
pub mod top;
pub mod verdict;
