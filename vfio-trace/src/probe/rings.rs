//! Ring buffers: one per traced device plus the shared one, each read by its
//! own async task, so a storm on one device cannot crowd out another.

use aya::maps::{Map, MapData, RingBuf};
use tokio::{io::unix::AsyncFd, sync::mpsc, task::JoinHandle};
use vfio_trace_common::{FaultEvent, HoldEvent, LockEvent, ZapEvent, kind};

use crate::model::Event;

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
        _ => None,
    }
}

/// A running reader; `stop` makes it drain what is left and end.
pub struct Reader {
    pub handle: JoinHandle<std::io::Result<u64>>,
}

/// Starts a reader task for `map` sending decoded events to `tx`. It ends
/// after a final drain once `stop` flips to true.
pub fn spawn(
    map: Map,
    tx: mpsc::UnboundedSender<Event>,
    mut stop: tokio::sync::watch::Receiver<bool>,
) -> Result<Reader, aya::maps::MapError> {
    let ring = RingBuf::try_from(map)?;
    let handle = tokio::spawn(async move {
        // SAFETY: the ring owns its map fd and keeps it open until it is dropped
        // with this AsyncFd.
        let mut fd = unsafe { AsyncFd::register(ring) }.map_err(std::io::Error::from)?;
        let mut n = 0u64;
        loop {
            tokio::select! {
                guard = fd.readable_mut() => {
                    let mut guard = guard?;
                    n += drain(guard.get_inner_mut(), &tx);
                    guard.clear_ready();
                }
                _ = stop.wait_for(|s| *s) => {
                    n += drain(fd.get_mut(), &tx);
                    return Ok(n);
                }
            }
        }
    });
    Ok(Reader { handle })
}

fn drain(ring: &mut RingBuf<MapData>, tx: &mpsc::UnboundedSender<Event>) -> u64 {
    let mut n = 0;
    while let Some(item) = ring.next() {
        if let Some(ev) = decode(&item) {
            n += 1;
            let _ = tx.send(ev);
        }
    }
    n
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
