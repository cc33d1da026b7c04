//! Ring records to events. Most faults travel as `FaultInVma`, which leaves
//! out the mapping: each reader keeps the last `VmaEvent` of every thread
//! its ring carried and joins the two back into a whole `FaultEvent`.

use std::collections::HashMap;

use vfio_trace_common::{
    DecodeOnEvent, DmaBufMoveEvent, DmaMapEvent, FaultEvent, FaultInVma, HoldEvent, LockEvent,
    TaskEvent, VmaEvent, ZapEvent, kind,
};

use crate::event::Event;

fn read<T: aya::Pod>(bytes: &[u8]) -> Option<T> {
    if bytes.len() < size_of::<T>() {
        return None;
    }
    // SAFETY: length checked; T is plain data valid for any bytes.
    Some(unsafe { std::ptr::read_unaligned(bytes.as_ptr().cast::<T>()) })
}

/// What one record was.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Record {
    Event(Event),
    /// A thread's mapping, kept for its next faults.
    Mapping,
    /// Too short, of an unknown kind, or a fault whose thread's mapping
    /// never came (lost to a full ring): counted, never guessed.
    Undecodable,
}

/// One ring's decoder: the mapping each thread last faulted in.
#[derive(Debug, Default)]
pub struct Decoder {
    vmas: HashMap<u32, VmaEvent>,
    /// The last thread's, looked at first: a storm is one thread's run.
    last: Option<VmaEvent>,
}

impl Decoder {
    /// Decodes one ring record by its leading kind.
    pub fn decode(&mut self, bytes: &[u8]) -> Record {
        let event = match read::<u32>(bytes) {
            Some(kind::FAULT_IN_VMA) => read::<FaultInVma>(bytes)
                .and_then(|f| self.mapping_of(f.tid).map(|v| Event::Fault(v.fault(&f)))),
            Some(kind::VMA) => {
                return match read::<VmaEvent>(bytes) {
                    Some(v) => {
                        self.vmas.insert(v.tid, v);
                        self.last = Some(v);
                        Record::Mapping
                    }
                    None => Record::Undecodable,
                };
            }
            Some(kind::FAULT) => read::<FaultEvent>(bytes).map(Event::Fault),
            Some(kind::ZAP) => read::<ZapEvent>(bytes).map(Event::Zap),
            Some(kind::LOCK) => read::<LockEvent>(bytes).map(Event::Lock),
            Some(kind::HOLD) => read::<HoldEvent>(bytes).map(Event::Hold),
            Some(kind::TASK) => read::<TaskEvent>(bytes).map(Event::Task),
            Some(kind::DMA_MAP) => read::<DmaMapEvent>(bytes).map(Event::DmaMap),
            Some(kind::DMA_BUF_MOVE) => read::<DmaBufMoveEvent>(bytes).map(Event::DmaBufMove),
            Some(kind::DECODE_ON) => read::<DecodeOnEvent>(bytes).map(Event::DecodeOn),
            _ => None,
        };
        event.map_or(Record::Undecodable, Record::Event)
    }

    fn mapping_of(&mut self, tid: u32) -> Option<VmaEvent> {
        match self.last {
            Some(v) if v.tid == tid => Some(v),
            _ => {
                let v = *self.vmas.get(&tid)?;
                self.last = Some(v);
                Some(v)
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn bytes<T>(v: &T) -> &[u8] {
        // SAFETY: viewing a plain-data struct as bytes.
        unsafe { std::slice::from_raw_parts(std::ptr::from_ref(v).cast::<u8>(), size_of::<T>()) }
    }

    fn fault(tid: u32, page: u64, vma_start: u64) -> FaultEvent {
        let mut ev = FaultEvent::zeroed();
        ev.order = 9;
        ev.device = 0x100;
        ev.vma_pgoff = 2 << 28;
        ev.vma_start = vma_start;
        ev.vma_pages = 262_144;
        ev.page_in_vma = page;
        ev.start_ns = 77;
        ev.latency_ns = 1234;
        ev.result = 0x100;
        ev.pid = 40;
        ev.tid = tid;
        ev.inserts_pmd = 1;
        ev.origin = 1;
        ev
    }

    #[test]
    fn decodes_records_and_skips_short_ones() {
        let mut d = Decoder::default();
        let ev = fault(41, 3, 0x7f00_0000_0000);
        assert_eq!(d.decode(bytes(&ev)), Record::Event(Event::Fault(ev)));
        assert_eq!(d.decode(&bytes(&ev)[..10]), Record::Undecodable);
        let mut zap = ZapEvent::zeroed();
        zap.pages = 1024;
        assert_eq!(d.decode(bytes(&zap)), Record::Event(Event::Zap(zap)));
        assert_eq!(d.decode(&[0xff; 16]), Record::Undecodable);
    }

    #[test]
    fn a_fault_in_a_mapping_comes_back_whole() {
        let mut d = Decoder::default();
        let (a, b) = (
            fault(41, 3, 0x7f00_0000_0000),
            fault(42, 5, 0x7e00_0000_0000),
        );
        let small = |ev: &FaultEvent| FaultInVma::of(ev).expect("fits");
        assert_eq!(d.decode(bytes(&VmaEvent::of(&a))), Record::Mapping);
        assert_eq!(d.decode(bytes(&VmaEvent::of(&b))), Record::Mapping);
        // Interleaved threads each find their own mapping.
        assert_eq!(d.decode(bytes(&small(&a))), Record::Event(Event::Fault(a)));
        assert_eq!(d.decode(bytes(&small(&b))), Record::Event(Event::Fault(b)));
        assert_eq!(d.decode(bytes(&small(&a))), Record::Event(Event::Fault(a)));
        // A new mapping replaces the thread's old one.
        let moved = fault(41, 9, 0x7d00_0000_0000);
        assert_eq!(d.decode(bytes(&VmaEvent::of(&moved))), Record::Mapping);
        assert_eq!(
            d.decode(bytes(&small(&moved))),
            Record::Event(Event::Fault(moved))
        );
        assert_eq!(d.decode(bytes(&small(&b))), Record::Event(Event::Fault(b)));
    }

    #[test]
    fn a_fault_whose_mapping_never_came_is_undecodable() {
        let mut d = Decoder::default();
        let ev = fault(41, 3, 0x7f00_0000_0000);
        let small = FaultInVma::of(&ev).expect("fits");
        assert_eq!(d.decode(bytes(&small)), Record::Undecodable);
        assert_eq!(
            d.decode(&bytes(&VmaEvent::of(&ev))[..20]),
            Record::Undecodable
        );
    }

    #[test]
    fn only_faults_whose_fields_fit_travel_small() {
        let ev = fault(41, 3, 0x7f00_0000_0000);
        assert!(FaultInVma::of(&ev).is_some());
        let too = |f: fn(&mut FaultEvent)| {
            let mut e = ev;
            f(&mut e);
            FaultInVma::of(&e)
        };
        assert_eq!(too(|e| e.latency_ns = 1 << 32), None, "a fault over 4.29 s");
        assert_eq!(too(|e| e.page_in_vma = 1 << 32), None);
        assert_eq!(too(|e| e.result = 1 << 16), None);
        assert_eq!(too(|e| e.inserts_pte = 1 << 16), None);
        assert_eq!(too(|e| e.inserts_pmd = 256), None);
        assert_eq!(too(|e| e.remaps = 1), None, "6.1 remaps go whole");
        assert!(too(|e| e.latency_ns = u64::from(u32::MAX)).is_some());
        assert!(too(|e| e.inserts_pte = 512).is_some());
    }
}
