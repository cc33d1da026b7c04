//! The only code that touches aya and the kernel's tracing interfaces: symbol
//! lookup, BTF offsets, the probe plan, loading, attaching and ring buffers.

pub mod kallsyms;
pub mod load;
pub mod offsets;
pub mod plan;
pub mod rings;
pub mod session;
pub mod tracefs;
