//! The collector gives way to the workload it measures. Once the workload
//! runs, the collector's thread drops to a low priority (nice 13) with a
//! short time slice: on a busy CPU most of its draining waits for idle time
//! while the rings hold the events. It competes at its own priority again
//! once a ring leaves less than [`room`] free, or could before its next
//! turn, so yielding does not cost events.
//!
//! The priority is a measured compromise. In a one-vCPU 6.12 guest under a
//! 4 KiB fault storm, a reader at nice 19 waited up to 300 ms for the CPU
//! (a 4 MiB ring fills in about that) and lost 27,874 events at the start
//! of a 1 GiB storm; at nice 13 and 16 it lost none, and the 64 MiB storm's
//! phase took 125 and 120 ms against 150 ms without yielding (nice 10: 147).
//!
//! Priority is per thread on Linux, and the readers share the one runtime
//! thread that calls [`Yielding::start`].

use std::sync::atomic::{AtomicBool, AtomicI32, AtomicU32, AtomicU64, Ordering};

/// The nice value while yielding.
const LOW: i32 = 13;
/// The time slice asked for while yielding (`sched_attr.sched_runtime`,
/// used by the scheduler from 6.12).
const SLICE_NS: u64 = 500_000;
/// How long (ms) a yielding reader is assumed to wait for the CPU: at nice 13
/// about a fifth of nice 19's 300 ms, with room to spare. A ring that would
/// leave less than half its [`room`] free in that time makes the collector
/// compete; the other half absorbs a longer wait.
const WAIT_MS: u64 = 100;

/// The room a yielding collector keeps free in a ring of `capacity` bytes
/// for the time it takes to get the CPU back: 4 MiB (105,000 faults of 40
/// bytes, twice the 52,000 the slowest catch-up seen let in), at least a
/// quarter of the ring and at most half. A fixed half of one device's
/// 16 MiB ring made the collector compete 210,000 faults into a 1 GiB
/// storm of 262,144, and model the rest inside it; with 4 MiB free it
/// waits 314,000.
pub fn room(capacity: u64) -> u64 {
    (capacity / 2).min(4 << 20).max(capacity / 4)
}

/// When readers lower and raise the collector's priority.
#[derive(Debug, Default)]
pub struct Yielding {
    /// Whether the session may yield at all.
    allowed: bool,
    /// Set once the thread yields; until then readers change nothing.
    on: AtomicBool,
    /// The thread's id and its nice value before yielding, to return to.
    tid: AtomicI32,
    normal: AtomicI32,
    /// Rings that could fill while the collector waits, not yet drained.
    behind: AtomicU32,
    /// Times the collector went back to its own priority to catch up.
    catch_ups: AtomicU64,
}

/// A ring's state as its reader sees it before and while draining.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Fill {
    /// Less than [`room`] free, or less than half of it after [`WAIT_MS`]
    /// at the rate it fills: compete for the CPU. Draining at the low priority can
    /// take long on a busy CPU, where each batch waits for its turn to be
    /// read and again to be taken by the model: in a one-vCPU 7.3 guest one
    /// 1 GiB storm of five lost 15,124 events when the collector competed
    /// from half of an 8 MiB ring of 112-byte records, 37,000 faults before
    /// full. Faults now take 40 bytes, so the 4 MiB kept free hold 105,000.
    Behind,
    /// At most a quarter full, and under half after [`WAIT_MS`]: yield again.
    CaughtUp,
    /// In between: keep what was decided.
    Between,
}

impl Fill {
    /// `pending` bytes in a ring of `capacity` that fills at `rate` bytes a second.
    pub fn of(pending: u64, rate: u64, capacity: u64) -> Self {
        let after_wait = pending.saturating_add(rate.saturating_mul(WAIT_MS) / 1000);
        let room = room(capacity);
        if pending >= capacity - room || after_wait >= capacity - room / 2 {
            Self::Behind
        } else if pending <= capacity / 4 && after_wait < capacity / 2 {
            Self::CaughtUp
        } else {
            Self::Between
        }
    }
}

impl Yielding {
    /// `allowed`: whether [`Yielding::start`] may lower the priority.
    pub fn new(allowed: bool) -> Self {
        Self {
            allowed,
            ..Self::default()
        }
    }

    /// Lowers the calling thread's priority, remembering the one it had.
    /// Only a process that may raise it again yields (root, or a nice
    /// limit that allows it); otherwise nothing changes. Returns whether it
    /// yields.
    pub fn start(&self) -> bool {
        if !self.allowed || !may_raise() {
            return false;
        }
        let tid = gettid();
        let Some(normal) = nice_of(tid) else {
            return false;
        };
        if normal >= LOW || !set_priority(tid, LOW, SLICE_NS) {
            return false;
        }
        self.tid.store(tid, Ordering::Relaxed);
        self.normal.store(normal, Ordering::Relaxed);
        self.on.store(true, Ordering::Release);
        true
    }

    /// A reader's ring is at `fill`; `behind` is that reader's own state,
    /// updated here. The thread competes while any ring is behind.
    pub fn ring_at(&self, fill: Fill, behind: &mut bool) {
        if !self.on.load(Ordering::Acquire) {
            return;
        }
        let tid = self.tid.load(Ordering::Relaxed);
        match fill {
            Fill::Behind if !*behind => {
                *behind = true;
                if self.behind.fetch_add(1, Ordering::AcqRel) == 0 {
                    self.catch_ups.fetch_add(1, Ordering::Relaxed);
                    set_priority(tid, self.normal.load(Ordering::Relaxed), 0);
                }
            }
            Fill::CaughtUp if *behind => {
                *behind = false;
                if self.behind.fetch_sub(1, Ordering::AcqRel) == 1 {
                    set_priority(tid, LOW, SLICE_NS);
                }
            }
            _ => {}
        }
    }

    pub fn catch_ups(&self) -> u64 {
        self.catch_ups.load(Ordering::Relaxed)
    }

    pub fn yielding(&self) -> bool {
        self.on.load(Ordering::Acquire)
    }
}

fn gettid() -> i32 {
    // SAFETY: a syscall without arguments.
    unsafe { libc::gettid() }
}

/// Root, or a `RLIMIT_NICE` that lets the thread return to nice 0.
fn may_raise() -> bool {
    // SAFETY: plain syscalls; `limit` is a valid out-parameter.
    unsafe {
        if libc::geteuid() == 0 {
            return true;
        }
        let mut limit = std::mem::zeroed::<libc::rlimit>();
        libc::getrlimit(libc::RLIMIT_NICE, &raw mut limit) == 0 && limit.rlim_cur >= 20
    }
}

fn nice_of(tid: i32) -> Option<i32> {
    let who = libc::id_t::try_from(tid).ok()?;
    // getpriority returns -1 both as a value and as an error: errno tells.
    // SAFETY: plain syscalls.
    unsafe {
        *libc::__errno_location() = 0;
        let n = libc::getpriority(libc::PRIO_PROCESS, who);
        (n != -1 || *libc::__errno_location() == 0).then_some(n)
    }
}

/// The kernel's `struct sched_attr` (its first version, 48 bytes).
const SCHED_ATTR_SIZE: u32 = 48;
#[repr(C)]
struct SchedAttr {
    size: u32,
    policy: u32,
    flags: u64,
    nice: i32,
    priority: u32,
    runtime: u64,
    deadline: u64,
    period: u64,
}

/// Sets the thread's nice value and time slice (0: the default) under the
/// normal policy. Where `sched_setattr` is refused, the nice value alone.
fn set_priority(tid: i32, nice: i32, slice_ns: u64) -> bool {
    let attr = SchedAttr {
        size: SCHED_ATTR_SIZE,
        policy: libc::SCHED_OTHER as u32,
        flags: 0,
        nice,
        priority: 0,
        runtime: slice_ns,
        deadline: 0,
        period: 0,
    };
    // SAFETY: `attr` is a valid sched_attr of the size it states.
    let set = unsafe { libc::syscall(libc::SYS_sched_setattr, tid, &raw const attr, 0) } == 0;
    set || set_nice(tid, nice)
}

fn set_nice(tid: i32, nice: i32) -> bool {
    let Ok(who) = libc::id_t::try_from(tid) else {
        return false;
    };
    // SAFETY: a plain syscall on this process's own thread.
    unsafe { libc::setpriority(libc::PRIO_PROCESS, who, nice) == 0 }
}

const _: () = assert!(size_of::<SchedAttr>() == SCHED_ATTR_SIZE as usize);

#[cfg(test)]
mod tests {
    use super::*;

    const CAP: u64 = 4 << 20;

    #[test]
    fn a_ring_half_full_is_behind_whatever_its_rate() {
        assert_eq!(Fill::of(CAP / 2, 0, CAP), Fill::Behind);
        assert_eq!(Fill::of(CAP, 0, CAP), Fill::Behind);
        assert_eq!(Fill::of(CAP / 2 - 1, 0, CAP), Fill::Between);
        assert_eq!(Fill::of(CAP / 4 + 1, 0, CAP), Fill::Between);
        assert_eq!(Fill::of(CAP / 4, 0, CAP), Fill::CaughtUp);
    }

    #[test]
    fn the_room_kept_free_is_4_mib_between_a_quarter_and_half_the_ring() {
        assert_eq!(room(1 << 20), 512 << 10);
        assert_eq!(room(8 << 20), 4 << 20);
        assert_eq!(room(16 << 20), 4 << 20);
        assert_eq!(room(64 << 20), 16 << 20);
    }

    #[test]
    fn one_devices_ring_holds_a_1_gib_storm_before_the_collector_competes() {
        const ONE: u64 = 16 << 20;
        // 262,144 records of 40 bytes at the storm's ~5.6 MB/s.
        assert_eq!(Fill::of(262_144 * 40, 5_600_000, ONE), Fill::Between);
        assert_eq!(Fill::of(12 << 20, 0, ONE), Fill::Behind);
        assert_eq!(Fill::of((12 << 20) - 1, 0, ONE), Fill::Between);
        // 14 MiB after the wait: half the room is gone.
        assert_eq!(Fill::of(13 << 20, 10_485_760, ONE), Fill::Behind);
    }

    #[test]
    fn a_ring_that_would_reach_three_quarters_while_the_collector_waits_is_behind() {
        // 30 MB/s adds 3 MB in the 100 ms wait: with 256 KiB in, past 3/4 of 4 MiB.
        assert_eq!(Fill::of(256 << 10, 30_000_000, CAP), Fill::Behind);
        // A 4 KiB fault storm in a one-vCPU guest, ~5.6 MB/s of 40-byte
        // records: 0.56 MB in the wait stays under half: yield.
        assert_eq!(Fill::of(256 << 10, 5_600_000, CAP), Fill::CaughtUp);
        // 1.5 MB in, and the wait takes it past half: keep what was decided.
        assert_eq!(Fill::of(1_500_000, 5_600_000, CAP), Fill::Between);
        // Empty but filling fast enough to pass half: not caught up.
        assert_eq!(Fill::of(0, 22_000_000, CAP), Fill::Between);
    }

    #[test]
    fn readers_count_catch_ups_only_when_yielding() {
        let y = Yielding::default();
        let mut behind = false;
        y.ring_at(Fill::Behind, &mut behind);
        assert!(!behind, "not yielding: nothing is tracked");
        // Pretend the thread yields, without touching its priority: a
        // thread id no process has makes the priority calls fail harmlessly.
        y.tid.store(i32::MAX, Ordering::Relaxed);
        y.on.store(true, Ordering::Release);
        let (mut a, mut b) = (false, false);
        y.ring_at(Fill::Behind, &mut a);
        y.ring_at(Fill::Behind, &mut b);
        y.ring_at(Fill::Behind, &mut a);
        assert_eq!(
            y.catch_ups(),
            1,
            "two rings behind at once are one catch-up"
        );
        y.ring_at(Fill::CaughtUp, &mut a);
        assert_eq!(y.behind.load(Ordering::Relaxed), 1);
        y.ring_at(Fill::CaughtUp, &mut b);
        y.ring_at(Fill::Between, &mut b);
        assert_eq!(y.behind.load(Ordering::Relaxed), 0);
        y.ring_at(Fill::Behind, &mut b);
        assert_eq!(y.catch_ups(), 2);
    }
}
