//! Ring buffers: one per traced device plus the shared one, each read by its
//! own async task, so a storm on one device cannot crowd out another.

use aya::maps::{Map, MapData, RingBuf};
use std::{
    sync::{
        Arc,
        atomic::{AtomicU64, Ordering},
    },
    time::{Duration, Instant},
};

use super::{
    flush::FlushRequests,
    records::{Decoder, Record},
    yielding::{Fill, Yielding, room},
};
use crate::event::Event;
use tokio::{io::unix::AsyncFd, sync::mpsc, task::JoinHandle};

/// `BPF_MAP_TYPE_RINGBUF`
const RINGBUF: u32 = 27;

/// Creates a standalone ring buffer of `bytes` (a power of two of pages).
pub fn create(bytes: u32) -> Result<MapData, aya::maps::MapError> {
    let obj = aya_obj::Map::new_from_params(RINGBUF, 0, 0, bytes, 0);
    MapData::create(obj, "vt_dev_ring", None)
}

/// How often a reader drains its ring without being woken. The programs
/// wake it only once a ring holds `Config::wake_bytes`, so this bounds how
/// stale the live view is and how full a ring gets between drains.
pub const DRAIN_INTERVAL: Duration = Duration::from_millis(50);

/// The same while the collector yields the CPU. Nothing reads the events
/// live then, and the kernel wakes a reader whose ring reaches a quarter,
/// so the timer only drains what a burst left. Each look interrupts the
/// workload: at 50 ms, with nothing to read, the readers' looks cost a
/// 64 MiB storm 4 ms of its 110 in a one-vCPU guest.
pub const YIELDING_INTERVAL: Duration = Duration::from_millis(250);

/// What a reader did.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct ReaderStats {
    /// Records decoded and passed on.
    pub events: u64,
    /// Records too short, of an unknown kind, or faults whose mapping was lost.
    pub undecodable: u64,
    /// Mapping records (`VmaEvent`): each precedes the faults it completes.
    pub mappings: u64,
    /// Times the kernel woke the reader (readiness), not counting timer drains.
    pub wakeups: u64,
    /// Drains that found at least one record.
    pub drains: u64,
    /// Wake-ups (readiness or timer) that left a filling ring undrained.
    pub deferred: u64,
    /// Time spent draining: reading records from the ring and decoding them.
    pub read_ns: u64,
}

/// A running reader; `stop` makes it drain what is left and end.
pub struct Reader {
    pub handle: JoinHandle<std::io::Result<ReaderStats>>,
    /// Records dropped as undecodable so far, for live readers of the session.
    pub undecodable: Arc<AtomicU64>,
}

/// Records drained between two looks at how full the ring is.
const FILL_EVERY: usize = 1024;

/// A reader's ring and how it shares the CPU.
struct Draining {
    capacity: u64,
    yielding: Arc<Yielding>,
    /// This ring could fill while the collector waits, and is not drained yet.
    behind: bool,
    batch_hint: usize,
    /// The kernel's position at the last look, when, and the rate since.
    produced: u64,
    at: Instant,
    rate: u64,
    /// The kernel's position when the reader last woke, and when it last
    /// had moved: whether the ring is still filling.
    seen: u64,
    moved_at: Instant,
}

/// A ring the kernel added nothing to for this long has stopped filling.
/// Two looks close together prove nothing: on one CPU the workload cannot
/// run between them.
const STILL: Duration = Duration::from_millis(20);

/// Looks closer together than this keep the last rate: too short to measure.
const RATE_SPAN: Duration = Duration::from_millis(5);

impl Draining {
    /// Updates the rate and the collector's priority from the ring's
    /// positions; returns the bytes waiting and the kernel's position.
    fn look(&mut self, ring: &RingBuf<MapData>) -> (u64, u64) {
        let (consumed, produced) = ring.positions();
        let (consumed, produced) = (consumed as u64, produced as u64);
        let span = self.at.elapsed();
        if span >= RATE_SPAN {
            let bytes = produced.saturating_sub(self.produced);
            let rate = u64::try_from(u128::from(bytes) * 1_000_000_000 / span.as_nanos())
                .unwrap_or(u64::MAX);
            // The highest recent rate, fading by about half a second: while
            // this reader runs the workload does not, and a storm's rate
            // must not read as a lull.
            let ms = u64::try_from(span.as_millis()).unwrap_or(u64::MAX);
            let faded = self.rate.saturating_mul(1000) / ms.saturating_add(1000);
            self.rate = rate.max(faded);
            self.produced = produced;
            self.at = Instant::now();
        }
        let pending = produced.saturating_sub(consumed);
        let fill = Fill::of(pending, self.rate, self.capacity);
        self.yielding.ring_at(fill, &mut self.behind);
        (pending, produced)
    }

    /// How long the reader sleeps when nothing wakes it.
    fn interval(&self) -> Duration {
        if self.yielding.yielding() {
            YIELDING_INTERVAL
        } else {
            DRAIN_INTERVAL
        }
    }

    /// Whether a woken reader leaves the records where they are. While the
    /// collector yields, a ring that is not behind and has its [`room`]
    /// free waits as long as the kernel keeps adding to it: draining during a
    /// burst takes the CPU from the workload that makes the burst, and
    /// costs the same once it pauses. Records stay in the ring, so nothing
    /// is lost; a ring that fills makes the reader catch up.
    fn defers(&mut self, ring: &RingBuf<MapData>) -> bool {
        let (pending, produced) = self.look(ring);
        if produced != self.seen {
            self.seen = produced;
            self.moved_at = Instant::now();
        }
        let filling = self.moved_at.elapsed() < STILL;
        self.yielding.yielding() && !self.behind && leave_for_later(filling, pending, self.capacity)
    }
}

/// A ring of `capacity` still filling, with its [`room`] free.
fn leave_for_later(filling: bool, pending: u64, capacity: u64) -> bool {
    filling && pending < capacity - room(capacity)
}

/// Starts a reader task for `map`, a ring of `capacity` bytes, sending
/// decoded events to `tx`, a batch per drain. A request in `flush` makes it
/// drain at once, deferring nothing. It ends after a final drain once
/// `stop` flips to true.
pub fn spawn(
    map: Map,
    capacity: u32,
    yielding: Arc<Yielding>,
    tx: mpsc::UnboundedSender<Vec<Event>>,
    mut stop: tokio::sync::watch::Receiver<bool>,
    mut flush: FlushRequests,
) -> Result<Reader, aya::maps::MapError> {
    let ring = RingBuf::try_from(map)?;
    let undecodable = Arc::new(AtomicU64::new(0));
    let shared = Arc::clone(&undecodable);
    let mut ring_state = Draining {
        capacity: u64::from(capacity),
        yielding,
        behind: false,
        batch_hint: 0,
        produced: ring.positions().1 as u64,
        at: Instant::now(),
        rate: 0,
        seen: ring.positions().1 as u64,
        moved_at: Instant::now(),
    };
    let handle = tokio::spawn(async move {
        // SAFETY: the ring owns its map fd and keeps it open until it is dropped
        // with this AsyncFd.
        let mut fd = unsafe { AsyncFd::register(ring) }.map_err(std::io::Error::from)?;
        let mut stats = ReaderStats::default();
        let mut decoder = Decoder::default();
        let mut due = tokio::time::Instant::now();
        loop {
            // Readiness is cleared before draining: a record that arrives
            // during the drain wakes the reader again.
            let stopping = tokio::select! {
                guard = fd.readable_mut() => {
                    guard?.clear_ready();
                    stats.wakeups += 1;
                    false
                }
                () = tokio::time::sleep_until(due) => {
                    due = tokio::time::Instant::now() + ring_state.interval();
                    false
                }
                () = flush.asked() => false,
                _ = stop.wait_for(|s| *s) => true,
            };
            // Every request made before this drain starts is answered by it.
            let asked = flush.latest();
            let forced = flush.pending();
            if !stopping && !forced && ring_state.defers(fd.get_ref()) {
                stats.deferred += 1;
                continue;
            }
            drain(fd.get_mut(), &mut decoder, &tx, &mut stats, &mut ring_state).await;
            shared.store(stats.undecodable, Ordering::Relaxed);
            if forced {
                flush.answer(asked);
            }
            if stopping {
                return Ok(stats);
            }
        }
    });
    Ok(Reader {
        handle,
        undecodable,
    })
}

/// Most records a batch holds. The model takes each batch on this same
/// thread: a ring drained whole after falling behind made one batch long
/// enough (~100,000 records streamed to `--events`) for the ring to
/// overflow while it was taken.
const MAX_BATCH: usize = 4096;

/// Reads every record in the ring, in batches of at most [`MAX_BATCH`],
/// letting the model take each before reading on.
async fn drain(
    ring: &mut RingBuf<MapData>,
    decoder: &mut Decoder,
    tx: &mpsc::UnboundedSender<Vec<Event>>,
    stats: &mut ReaderStats,
    ring_state: &mut Draining,
) {
    while drain_batch(ring, decoder, tx, stats, ring_state) {
        tokio::task::yield_now().await;
    }
}

/// Reads up to [`MAX_BATCH`] records into one batch and sends it; true when
/// the batch filled up, so more may wait. The batch starts at the size of
/// the last one: growing it a doubling at a time copied every event again at
/// each step. How full the ring is decides, before and during the drain,
/// whether the collector competes for the CPU.
fn drain_batch(
    ring: &mut RingBuf<MapData>,
    decoder: &mut Decoder,
    tx: &mpsc::UnboundedSender<Vec<Event>>,
    stats: &mut ReaderStats,
    ring_state: &mut Draining,
) -> bool {
    let started = Instant::now();
    ring_state.look(ring);
    let mut batch = Vec::with_capacity(ring_state.batch_hint);
    let mut read = 0;
    while read < MAX_BATCH {
        if read > 0 && read % FILL_EVERY == 0 {
            ring_state.look(ring);
        }
        let Some(item) = ring.next() else { break };
        match decoder.decode(&item) {
            Record::Event(ev) => batch.push(ev),
            Record::Mapping => stats.mappings += 1,
            Record::Undecodable => stats.undecodable += 1,
        }
        read += 1;
    }
    ring_state.look(ring);
    stats.read_ns += u64::try_from(started.elapsed().as_nanos()).unwrap_or(u64::MAX);
    if !batch.is_empty() {
        ring_state.batch_hint = batch.len();
        stats.drains += 1;
        stats.events += batch.len() as u64;
        let _ = tx.send(batch);
    }
    read == MAX_BATCH
}

/// Wraps a created ring's `MapData` as a map a reader can take.
pub fn as_map(data: MapData) -> Map {
    Map::RingBuf(data)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_ring_waits_only_while_it_fills_and_has_room() {
        const CAP: u64 = 8 << 20;
        // A 64 MiB storm's 16,384 records (655 KB) wait for the storm to pause.
        assert!(leave_for_later(true, 16_384 * 40, CAP));
        assert!(!leave_for_later(false, 16_384 * 40, CAP), "paused: drain");
        assert!(!leave_for_later(true, CAP / 2, CAP), "half full: drain");
        assert!(leave_for_later(true, CAP / 2 - 1, CAP));
        // One device's 16 MiB ring keeps 4 MiB free: a 1 GiB storm's
        // 262,144 records (10.5 MB) wait.
        let one: u64 = 16 << 20;
        assert!(leave_for_later(true, 262_144 * 40, one));
        assert!(!leave_for_later(true, 12 << 20, one), "4 MiB left: drain");
    }
}
