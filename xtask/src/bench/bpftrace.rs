//! bpftrace for the guest, the other tool the bench compares against: Debian
//! bookworm's bpftrace 0.17 and its whole library closure, staged into the lab
//! share (see `debtree`). The guest runs it through the unpacked loader
//! (guest/bench.sh).

use crate::debtree::DebTree;

pub const TREE: DebTree = DebTree {
    specs: &["bpftrace=0.17.0-1"],
    release: "bookworm",
    share_dir: "bpftrace",
    binary: "usr/bin/bpftrace",
};
