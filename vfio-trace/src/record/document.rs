//! The JSON document `vfio-trace record` writes and `report` reads back
//! (schema in docs/record-schema.md): one set of types for both, so a field
//! renamed on one side cannot silently read as missing on the other. Built
//! from the model and run metadata; the only I/O is `read`.

use std::path::Path;

use serde::{Deserialize, Serialize};

use super::{
    devices::{DeviceContext, DeviceDoc, device_doc},
    health::{CollectorDoc, HealthDoc, HealthInputs, LossesDoc, Usage},
    timeline::TimelineDoc,
};
use crate::{
    device::{Bdf, PciDevice},
    kernel::Kernel,
    model::Model,
    probe::{
        load::KernelCounts,
        offsets::Field,
        plan::{self, PlannedProbe},
        session::RingCount,
    },
};

pub const SCHEMA_VERSION: u32 = 1;

/// Why recording ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum StopReason {
    CommandExited,
    Duration,
    Interrupted,
    Terminated,
    Error,
}

impl StopReason {
    /// As the JSON names it.
    pub fn name(self) -> &'static str {
        match self {
            Self::CommandExited => "command-exited",
            Self::Duration => "duration",
            Self::Interrupted => "interrupted",
            Self::Terminated => "terminated",
            Self::Error => "error",
        }
    }
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Document {
    pub schema_version: u32,
    pub vfio_trace_version: String,
    pub kernel: Kernel,
    pub command: Option<Vec<String>>,
    pub command_status: Option<i32>,
    pub duration_seconds: f64,
    pub stop_reason: StopReason,
    /// False when recording ended on an error; what was recorded is still here.
    pub complete: bool,
    pub error: Option<String>,
    pub probes: Vec<ProbeDoc>,
    pub offsets: Vec<FieldDoc>,
    /// Every event lost, whatever the cause: the sum of `losses`.
    pub lost_events: u64,
    pub losses: LossesDoc,
    pub collector: CollectorDoc,
    pub health: HealthDoc,
    pub unattributed_faults: u64,
    /// Zaps of vfio address spaces before any mmap or fault told their device.
    pub unattributed_zaps: u64,
    /// DMA maps of no device's BAR (a VMM's guest RAM). Absent in older recordings.
    #[serde(default)]
    pub other_dma_maps: super::dma::DmaMapsDoc,
    pub rings: Vec<RingDoc>,
    pub devices: Vec<DeviceDoc>,
    pub timeline: TimelineDoc,
}

/// How a probe attached. The file's own names: the plan's types may change
/// without changing the schema.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum ProbeKind {
    Kprobe,
    Kretprobe,
    Tracepoint,
    Fentry,
    Fexit,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum ProbeStatus {
    Available,
    Attached,
    Absent,
    Failed,
    Unsupported,
    Inferred,
    /// Left out of the run on purpose (`record --floor`).
    Skipped,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ProbeDoc {
    pub name: String,
    pub program: Option<String>,
    pub kind: ProbeKind,
    pub symbol: Option<String>,
    pub module: Option<String>,
    pub required: bool,
    pub status: ProbeStatus,
    pub reason: Option<String>,
    /// Time to load and attach it, fallback included; only for probes tried.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub attach_us: Option<u64>,
    /// Runs of its program the kernel skipped because another program was
    /// running on the CPU; only where not 0.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub skipped_runs: Option<u64>,
}

impl ProbeDoc {
    /// The probe, with its program's skipped runs from `counts`.
    pub fn of(p: &PlannedProbe, counts: &KernelCounts) -> Self {
        let mut doc = Self::from(p);
        doc.skipped_runs = p
            .program
            .filter(|_| p.status == plan::Status::Attached)
            .and_then(|name| counts.skipped_runs.get(name).copied());
        doc
    }
}

impl From<&PlannedProbe> for ProbeDoc {
    fn from(p: &PlannedProbe) -> Self {
        Self {
            name: p.role.name().to_owned(),
            program: p.program.map(str::to_owned),
            kind: match p.kind {
                plan::Kind::Kprobe => ProbeKind::Kprobe,
                plan::Kind::Kretprobe => ProbeKind::Kretprobe,
                plan::Kind::Tracepoint => ProbeKind::Tracepoint,
                plan::Kind::Fentry => ProbeKind::Fentry,
                plan::Kind::Fexit => ProbeKind::Fexit,
            },
            symbol: p.symbol.clone(),
            module: p.module.clone(),
            required: p.required,
            status: match p.status {
                plan::Status::Available => ProbeStatus::Available,
                plan::Status::Attached => ProbeStatus::Attached,
                plan::Status::Absent => ProbeStatus::Absent,
                plan::Status::Failed => ProbeStatus::Failed,
                plan::Status::Unsupported => ProbeStatus::Unsupported,
                plan::Status::Inferred => ProbeStatus::Inferred,
                plan::Status::Skipped => ProbeStatus::Skipped,
            },
            reason: p.reason.clone(),
            attach_us: p.attach_us,
            skipped_runs: None,
        }
    }
}

/// A struct field the programs read, and where this kernel has it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct FieldDoc {
    pub name: String,
    pub offset: Option<u32>,
    pub needed_for: String,
    pub optional: bool,
}

impl From<&Field> for FieldDoc {
    fn from(f: &Field) -> Self {
        Self {
            name: f.name.to_string(),
            offset: f.offset,
            needed_for: f.needed_for.to_string(),
            optional: f.optional,
        }
    }
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct RingDoc {
    /// A BDF, or "shared".
    pub device: String,
    pub events: u64,
}

/// A BDF as its text, `0000:01:00.0`.
pub mod bdf_text {
    use serde::{Deserialize, Deserializer, Serializer, de::Error as _};

    use crate::device::Bdf;

    pub fn serialize<S: Serializer>(bdf: &Bdf, s: S) -> Result<S::Ok, S::Error> {
        s.collect_str(bdf)
    }

    pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<Bdf, D::Error> {
        let text = String::deserialize(d)?;
        Bdf::parse(&text).map_err(D::Error::custom)
    }
}

/// Why a file is not a document this version reads.
#[derive(Debug, thiserror::Error)]
pub enum ReadError {
    #[error("cannot read {path}: {error}")]
    Io { path: String, error: std::io::Error },
    #[error("{path} is not JSON: {error}")]
    NotJson {
        path: String,
        error: serde_json::Error,
    },
    #[error("{path} is not a vfio-trace record (no schema_version)")]
    NotARecord { path: String },
    #[error("{path} has schema_version {found}; this vfio-trace reads {SCHEMA_VERSION}")]
    Version { path: String, found: u64 },
    #[error("{path} is not a valid vfio-trace record: {error}")]
    Invalid {
        path: String,
        error: serde_json::Error,
    },
}

/// Just the version, read before the rest: another version's document
/// gets that said, not a complaint about some field.
#[derive(Deserialize)]
struct Header {
    schema_version: Option<u64>,
}

impl Document {
    /// Parses a document; `path` names it in errors.
    pub fn parse(text: &str, path: &str) -> Result<Self, ReadError> {
        let path = path.to_owned();
        if let Err(error) = serde_json::from_str::<serde::de::IgnoredAny>(text) {
            return Err(ReadError::NotJson { path, error });
        }
        // JSON, but not an object with a number for a version: not ours.
        let version = serde_json::from_str::<Header>(text)
            .ok()
            .and_then(|h| h.schema_version);
        match version {
            None => Err(ReadError::NotARecord { path }),
            Some(found) if found != u64::from(SCHEMA_VERSION) => {
                Err(ReadError::Version { path, found })
            }
            Some(_) => {
                serde_json::from_str(text).map_err(|error| ReadError::Invalid { path, error })
            }
        }
    }

    pub fn read(path: &Path) -> Result<Self, ReadError> {
        let name = path.display().to_string();
        let text = std::fs::read_to_string(path).map_err(|error| ReadError::Io {
            path: name.clone(),
            error,
        })?;
        Self::parse(&text, &name)
    }
}

/// Everything about a run except the aggregates.
pub struct RunInfo {
    pub kernel: Kernel,
    pub command: Option<Vec<String>>,
    pub command_status: Option<i32>,
    pub duration_seconds: f64,
    pub stop_reason: StopReason,
    pub error: Option<String>,
    pub probes: Vec<PlannedProbe>,
    pub offsets: Vec<Field>,
    pub counts: KernelCounts,
    pub rings: Vec<RingCount>,
    pub stack_map_readable: bool,
    pub usage: Usage,
    pub pci: Vec<PciDevice>,
}

/// The document of a run. Zap stacks are the model's (`Model::add_stacks`).
pub fn build(model: &Model, info: RunInfo) -> Document {
    let devices: Vec<DeviceDoc> = model
        .devices
        .iter()
        .map(|(bdf, d)| {
            let cx = DeviceContext {
                pci: info.pci.iter().find(|p| p.bdf == *bdf),
                lost_events: info
                    .counts
                    .lost_by_device
                    .get(&bdf.key())
                    .copied()
                    .unwrap_or(0),
                ring_events: info
                    .rings
                    .iter()
                    .filter(|r| r.device == Some(*bdf))
                    .map(|r| r.stats.events)
                    .sum(),
                comms: &model.comms,
                threads: &model.threads,
                stacks: &model.stacks,
                origin_ns: model.origin_ns(),
            };
            device_doc(*bdf, d, &cx)
        })
        .collect();
    let losses = LossesDoc::new(&info.counts, &info.rings);
    let seen = HealthInputs {
        stack_map_readable: info.stack_map_readable,
        stacks_unresolved: if info.stack_map_readable {
            model.stacks_unresolved()
        } else {
            0
        },
        pages_out_of_range: model.pages_out_of_range(),
    };
    Document {
        schema_version: SCHEMA_VERSION,
        vfio_trace_version: env!("CARGO_PKG_VERSION").to_owned(),
        kernel: info.kernel,
        command: info.command,
        command_status: info.command_status,
        duration_seconds: info.duration_seconds,
        stop_reason: info.stop_reason,
        complete: info.error.is_none(),
        error: info.error,
        probes: info
            .probes
            .iter()
            .map(|p| ProbeDoc::of(p, &info.counts))
            .collect(),
        offsets: info.offsets.iter().map(FieldDoc::from).collect(),
        lost_events: losses.events(),
        losses,
        collector: CollectorDoc::new(info.usage, &info.counts, &info.rings),
        health: HealthDoc::new(&info.counts, &info.rings, seen),
        unattributed_faults: model.unattributed,
        unattributed_zaps: model.unattributed_zaps,
        other_dma_maps: super::dma::DmaMapsDoc::new(&model.other_dma, model.origin_ns()),
        rings: info
            .rings
            .iter()
            .map(|r| RingDoc {
                device: r.device.map_or("shared".into(), |d: Bdf| d.to_string()),
                events: r.stats.events,
            })
            .collect(),
        devices,
        timeline: TimelineDoc::new(model),
    }
}
