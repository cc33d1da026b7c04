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

use tokio::{io::unix::AsyncFd, sync::mpsc, task::JoinHandle};
use vfio_trace_common::{
    DecodeOnEvent, DmaBufMoveEvent, DmaMapEvent, FaultEvent, HoldEvent, LockEvent, TaskEvent,
    ZapEvent, kind,
};

use crate::event::Event;

/// `BPF_MAP_TYPE_RINGBUF`
const RINGBUF: u32 = 27;

/// Creates a standalone ring buffer of `bytes` (a power of two of pages).
pub fn create(bytes: u32) -> Result<MapData, aya::maps::MapError> {
    let obj = aya_obj::Map::new_from_params(RINGBUF, 0, 0, bytes, 0);
    MapData::create(obj, "vt_dev_ring", None)
}

fn read<T: aya::Pod>(bytes: &[u8]) -> Option<T> {
    if bytes.len() < size_of::<T>() {
        return None;
    }
    // SAFETY: length checked; T is plain data valid for any bytes.
    Some(unsafe { std::ptr::read_unaligned(bytes.as_ptr().cast::<T>()) })
}

/// Decodes one ring record by its leading kind; unknown or short records are skipped.
pub fn decode(bytes: &[u8]) -> Option<Event> {
    match read::<u32>(bytes)? {
        kind::FAULT => read::<FaultEvent>(bytes).map(Event::Fault),
        kind::ZAP => read::<ZapEvent>(bytes).map(Event::Zap),
        kind::LOCK => read::<LockEvent>(bytes).map(Event::Lock),
        kind::HOLD => read::<HoldEvent>(bytes).map(Event::Hold),
        kind::TASK => read::<TaskEvent>(bytes).map(Event::Task),
        kind::DMA_MAP => read::<DmaMapEvent>(bytes).map(Event::DmaMap),
        kind::DMA_BUF_MOVE => read::<DmaBufMoveEvent>(bytes).map(Event::DmaBufMove),
        kind::DECODE_ON => read::<DecodeOnEvent>(bytes).map(Event::DecodeOn),
        _ => None,
    }
}

/// How often a reader drains its ring without being woken. The programs
/// wake it only once a ring holds `Config::wake_bytes`, so this bounds how
/// stale the live view is and how full a ring gets between drains.
pub const DRAIN_INTERVAL: Duration = Duration::from_millis(50);

/// What a reader did.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct ReaderStats {
    /// Records decoded and passed on.
    pub events: u64,
    /// Records too short or of an unknown kind.
    pub undecodable: u64,
    /// Times the kernel woke the reader (readiness), not counting timer drains.
    pub wakeups: u64,
    /// Drains that found at least one record.
    pub drains: u64,
    /// Time spent draining: reading records from the ring and decoding them.
    pub read_ns: u64,
}

/// A running reader; `stop` makes it drain what is left and end.
pub struct Reader {
    pub handle: JoinHandle<std::io::Result<ReaderStats>>,
    /// Records dropped as undecodable so far, for live readers of the session.
    pub undecodable: Arc<AtomicU64>,
}

/// Starts a reader task for `map` sending decoded events to `tx`, a batch per
/// drain. It ends after a final drain once `stop` flips to true.
pub fn spawn(
    map: Map,
    tx: mpsc::UnboundedSender<Vec<Event>>,
    mut stop: tokio::sync::watch::Receiver<bool>,
) -> Result<Reader, aya::maps::MapError> {
    let ring = RingBuf::try_from(map)?;
    let undecodable = Arc::new(AtomicU64::new(0));
    let shared = Arc::clone(&undecodable);
    let handle = tokio::spawn(async move {
        // SAFETY: the ring owns its map fd and keeps it open until it is dropped
        // with this AsyncFd.
        let mut fd = unsafe { AsyncFd::register(ring) }.map_err(std::io::Error::from)?;
        let mut stats = ReaderStats::default();
        let mut batch_hint = 0;
        let mut tick = tokio::time::interval(DRAIN_INTERVAL);
        tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            tokio::select! {
                guard = fd.readable_mut() => {
                    let mut guard = guard?;
                    stats.wakeups += 1;
                    drain(guard.get_inner_mut(), &tx, &mut stats, &mut batch_hint);
                    guard.clear_ready();
                }
                _ = tick.tick() => drain(fd.get_mut(), &tx, &mut stats, &mut batch_hint),
                _ = stop.wait_for(|s| *s) => {
                    drain(fd.get_mut(), &tx, &mut stats, &mut batch_hint);
                    shared.store(stats.undecodable, Ordering::Relaxed);
                    return Ok(stats);
                }
            }
            shared.store(stats.undecodable, Ordering::Relaxed);
        }
    });
    Ok(Reader {
        handle,
        undecodable,
    })
}

/// Reads every record in the ring into one batch. The batch starts at the
/// size of the last one: growing it a doubling at a time copied every
/// event again at each step.
fn drain(
    ring: &mut RingBuf<MapData>,
    tx: &mpsc::UnboundedSender<Vec<Event>>,
    stats: &mut ReaderStats,
    hint: &mut usize,
) {
    let started = Instant::now();
    let mut batch = Vec::with_capacity(*hint);
    while let Some(item) = ring.next() {
        match decode(&item) {
            Some(ev) => batch.push(ev),
            None => stats.undecodable += 1,
        }
    }
    stats.read_ns += u64::try_from(started.elapsed().as_nanos()).unwrap_or(u64::MAX);
    if batch.is_empty() {
        return;
    }
    *hint = batch.len();
    stats.drains += 1;
    stats.events += batch.len() as u64;
    let _ = tx.send(batch);
}

/// Wraps a created ring's `MapData` as a map a reader can take.
pub fn as_map(data: MapData) -> Map {
    Map::RingBuf(data)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn decodes_records_and_skips_short_ones() {
        let mut ev = FaultEvent::zeroed();
        ev.order = 9;
        ev.latency_ns = 1234;
        // SAFETY: viewing a plain-data struct as bytes.
        let bytes = unsafe {
            std::slice::from_raw_parts((&raw const ev).cast::<u8>(), size_of::<FaultEvent>())
        };
        assert_eq!(decode(bytes), Some(Event::Fault(ev)));
        assert_eq!(decode(&bytes[..10]), None);
        let mut zap = ZapEvent::zeroed();
        zap.pages = 1024;
        // SAFETY: as above.
        let bytes = unsafe {
            std::slice::from_raw_parts((&raw const zap).cast::<u8>(), size_of::<ZapEvent>())
        };
        assert_eq!(decode(bytes), Some(Event::Zap(zap)));
    }
}
