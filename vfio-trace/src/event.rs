//! The kernel's records as decoded from the rings: what `probe/` hands over
//! and `model/` consumes, so neither depends on the other.

use vfio_trace_common::{
    DecodeOnEvent, DmaBufMoveEvent, DmaMapEvent, FaultEvent, HoldEvent, LockEvent, TaskEvent,
    ZapEvent,
};

/// One decoded kernel event.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Event {
    Fault(FaultEvent),
    Zap(ZapEvent),
    Lock(LockEvent),
    Hold(HoldEvent),
    Task(TaskEvent),
    DmaMap(DmaMapEvent),
    DmaBufMove(DmaBufMoveEvent),
    DecodeOn(DecodeOnEvent),
}
