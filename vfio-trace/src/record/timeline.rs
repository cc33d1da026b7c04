//! The `timeline` part of the record document: each device's per-second
//! counts, as the model kept them.

use serde::{Deserialize, Serialize};

use crate::{
    device::Bdf,
    model::{
        Model,
        timeline::{MAX_SECONDS, Second, Timeline},
    },
};

#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct TimelineDoc {
    /// Seconds kept per device at most; the latest are kept.
    pub max_seconds: u64,
    /// Seconds let go, summed over devices.
    pub dropped_seconds: u64,
    /// Events of seconds already let go, not in any second.
    pub dropped_events: u64,
    pub devices: Vec<DeviceTimelineDoc>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct DeviceTimelineDoc {
    #[serde(with = "super::document::bdf_text")]
    pub bdf: Bdf,
    /// Seconds with activity only, oldest first.
    pub seconds: Vec<Second>,
}

impl TimelineDoc {
    pub fn new(model: &Model) -> Self {
        let timelines = || model.devices.values().map(|d| &d.timeline);
        Self {
            max_seconds: MAX_SECONDS as u64,
            dropped_seconds: timelines().map(Timeline::dropped_seconds).sum(),
            dropped_events: timelines().map(Timeline::dropped_events).sum(),
            devices: model
                .devices
                .iter()
                .map(|(bdf, d)| DeviceTimelineDoc {
                    bdf: *bdf,
                    seconds: d.timeline.seconds().copied().collect(),
                })
                .collect(),
        }
    }
}
