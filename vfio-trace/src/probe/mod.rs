//! The only code that touches aya and the kernel's tracing interfaces: symbol
//! lookup, BTF offsets, the probe plan, the preflight, loading, attaching and
//! ring buffers.

/// The perf kprobe PMU; aya attaches kprobes through it, and it exists only
/// on kernels that can kprobe.
pub const KPROBE_PMU: &str = "/sys/bus/event_source/devices/kprobe/type";

pub mod attach;
pub mod btf_file;
pub mod btf_object;
pub mod btf_scan;
pub mod counters;
pub mod diagnostics;
pub mod floor;
pub mod flush;
pub mod host;
pub mod kallsyms;
pub mod load;
pub mod offsets;
pub mod plan;
pub mod preempt;
pub mod preflight;
pub mod records;
pub mod rings;
pub mod role;
pub mod run_stats;
pub mod session;
pub mod table;
pub mod tracefs;
pub mod yielding;

pub use host::Host;
pub use preflight::{Preflight, preflight};
