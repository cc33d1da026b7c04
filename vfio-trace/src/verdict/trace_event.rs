//! `report --trace-event OUT.json EVENTS.jsonl`: the events of `record
//! --events` in the Chrome trace-event format (Perfetto, `chrome://tracing`).
//! One process per device, one thread track per faulting thread, each
//! fault and DMA map a complete slice named by what it is; zaps and the writer's
//! `memory_lock` hold on a track of their own.

use std::collections::{BTreeMap, BTreeSet};

use serde::Serialize;
use serde_json::{Value, json};

use super::pages::order_name;
use crate::{device::Bdf, record::events::EventLine};

/// The track of a device's zaps and write holds (no thread has id 0).
const ZAP_TRACK: u32 = 0;

#[derive(Debug, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct Trace {
    pub trace_events: Vec<Value>,
    pub display_time_unit: &'static str,
}

/// Microseconds, as the format wants them, from nanoseconds.
fn us(ns: u64) -> f64 {
    ns as f64 / 1000.0
}

fn slice(name: &str, cat: &str, pid: u32, tid: u32, t_ns: u64, dur_ns: u64, args: &Value) -> Value {
    json!({
        "name": name, "cat": cat, "ph": "X", "pid": pid, "tid": tid,
        "ts": us(t_ns), "dur": us(dur_ns), "args": args,
    })
}

/// The slice of an event, and the (device, thread) track it is on when that
/// is a thread's.
fn event_slice(
    e: &EventLine,
    pid_of: &impl Fn(&Option<Bdf>) -> u32,
) -> Option<(Value, Option<(u32, u32)>)> {
    Some(match e {
        EventLine::Fault {
            t_ns,
            dur_ns,
            device,
            pid,
            tid,
            order,
            result,
            origin,
            bar,
            page,
            refaulted_pages,
            ..
        } => {
            let p = pid_of(device);
            let args = json!({"result": result, "origin": origin, "bar": bar, "page": page,
                              "process": pid, "refaulted_pages": refaulted_pages});
            let (name, cat) = if *refaulted_pages > 0 {
                (format!("{} refault", order_name(*order)), "refault")
            } else {
                (format!("{} fault", order_name(*order)), "fault")
            };
            (
                slice(&name, cat, p, *tid, *t_ns, *dur_ns, &args),
                Some((p, *tid)),
            )
        }
        EventLine::Zap {
            t_ns,
            dur_ns,
            device,
            comm,
            pages,
            pid,
            ..
        } => {
            let args = json!({"pages": pages, "comm": comm, "process": pid});
            let p = pid_of(device);
            (
                slice("zap", "zap", p, ZAP_TRACK, *t_ns, *dur_ns, &args),
                None,
            )
        }
        EventLine::WriteHold {
            t_ns,
            dur_ns,
            device,
        } => {
            let p = pid_of(device);
            let name = "memory_lock write hold";
            (
                slice(name, "zap", p, ZAP_TRACK, *t_ns, *dur_ns, &json!({})),
                None,
            )
        }
        EventLine::LockWait {
            t_ns,
            dur_ns,
            device,
            tid,
            mode,
            ..
        } => {
            let p = pid_of(device);
            let name = format!("memory_lock {mode} wait");
            (
                slice(&name, "lock", p, *tid, *t_ns, *dur_ns, &json!({})),
                Some((p, *tid)),
            )
        }
        EventLine::DmaMap { .. } | EventLine::DmaBufMove { .. } | EventLine::DecodeOn { .. } => {
            return dma_slice(e, pid_of);
        }
        EventLine::Task { .. } => return None,
    })
}

/// The slice of a DMA map (on its thread's track), of a dma-buf move (on
/// the zap track), or the instant memory decode was written on.
fn dma_slice(
    e: &EventLine,
    pid_of: &impl Fn(&Option<Bdf>) -> u32,
) -> Option<(Value, Option<(u32, u32)>)> {
    Some(match e {
        EventLine::DmaMap {
            t_ns,
            dur_ns,
            device,
            pid,
            tid,
            size,
            faults,
            fault_ns,
            lookups,
            ret,
            ..
        } => {
            let p = pid_of(device);
            let args = json!({"size": size, "faults": faults, "fault_ns": fault_ns,
                              "lookups": lookups, "ret": ret, "process": pid});
            (
                slice("DMA map", "dma", p, *tid, *t_ns, *dur_ns, &args),
                Some((p, *tid)),
            )
        }
        EventLine::DmaBufMove {
            t_ns,
            dur_ns,
            device,
            revoked,
            ..
        } => {
            let p = pid_of(device);
            let name = if *revoked {
                "dma-buf revoke"
            } else {
                "dma-buf restore"
            };
            (
                slice(name, "zap", p, ZAP_TRACK, *t_ns, *dur_ns, &json!({})),
                None,
            )
        }
        EventLine::DecodeOn { t_ns, device, .. } => {
            let p = pid_of(device);
            (
                json!({"name": "decode on", "cat": "zap", "ph": "i", "s": "t",
                       "pid": p, "tid": ZAP_TRACK, "ts": us(*t_ns)}),
                None,
            )
        }
        _ => return None,
    })
}

/// From the end of each zap to the last refault before the device's next
/// zap: how long repopulating took, on the zap track.
fn refault_windows(events: &[EventLine], pid_of: &impl Fn(&Option<Bdf>) -> u32) -> Vec<Value> {
    // Per device: the zap's end and the end of its last refault so far.
    let mut open: BTreeMap<u32, (u64, Option<u64>)> = BTreeMap::new();
    let mut out = Vec::new();
    let close = |out: &mut Vec<Value>, p: u32, (from, to): (u64, Option<u64>)| {
        if let Some(to) = to {
            let args = json!({});
            out.push(slice(
                "refault window",
                "refault",
                p,
                ZAP_TRACK,
                from,
                to.saturating_sub(from),
                &args,
            ));
        }
    };
    for e in events {
        match e {
            EventLine::Zap {
                t_ns,
                dur_ns,
                device,
                ..
            } => {
                let p = pid_of(device);
                if let Some(w) = open.insert(p, (t_ns + dur_ns, None)) {
                    close(&mut out, p, w);
                }
            }
            EventLine::Fault {
                t_ns,
                dur_ns,
                device,
                refaulted_pages,
                ..
            } if *refaulted_pages > 0 => {
                if let Some(w) = open.get_mut(&pid_of(device)) {
                    w.1 = Some(t_ns + dur_ns);
                }
            }
            _ => {}
        }
    }
    for (p, w) in open {
        close(&mut out, p, w);
    }
    out
}

/// Converts events; devices become processes numbered from 1 in address order.
#[must_use]
pub fn convert(events: &[EventLine]) -> Trace {
    let mut devices: BTreeMap<Option<Bdf>, u32> = BTreeMap::new();
    for e in events {
        let d = match e {
            EventLine::Fault { device, .. }
            | EventLine::Zap { device, .. }
            | EventLine::WriteHold { device, .. }
            | EventLine::LockWait { device, .. }
            | EventLine::DmaMap { device, .. }
            | EventLine::DmaBufMove { device, .. }
            | EventLine::DecodeOn { device, .. } => *device,
            EventLine::Task { .. } => continue,
        };
        devices.entry(d).or_insert(0);
    }
    for (i, pid) in devices.values_mut().enumerate() {
        *pid = u32::try_from(i + 1).unwrap_or(u32::MAX);
    }
    let pid_of = |d: &Option<Bdf>| devices.get(d).copied().unwrap_or(0);
    let mut names: BTreeMap<u32, String> = BTreeMap::new();
    let mut threads: BTreeSet<(u32, u32)> = BTreeSet::new();
    let mut out = Vec::new();
    for e in events {
        if let EventLine::Task { tid, comm, .. } = e {
            names.insert(*tid, comm.clone());
        } else if let Some((v, thread)) = event_slice(e, &pid_of) {
            if let Some(t) = thread {
                threads.insert(t);
            }
            out.push(v);
        }
    }
    out.extend(refault_windows(events, &pid_of));
    let mut meta: Vec<Value> = devices
        .iter()
        .flat_map(|(d, p)| {
            let name = d.map_or("unknown device".into(), |b| b.to_string());
            [
                json!({"name": "process_name", "ph": "M", "pid": p, "args": {"name": name}}),
                json!({"name": "thread_name", "ph": "M", "pid": p, "tid": ZAP_TRACK,
                       "args": {"name": "zaps"}}),
            ]
        })
        .collect();
    meta.extend(threads.iter().map(|(p, tid)| {
        let name = names
            .get(tid)
            .map_or(format!("thread {tid}"), |c| format!("{c} ({tid})"));
        json!({"name": "thread_name", "ph": "M", "pid": p, "tid": tid, "args": {"name": name}})
    }));
    meta.extend(out);
    Trace {
        trace_events: meta,
        display_time_unit: "ns",
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::fault::Outcome;

    #[test]
    fn one_slice_per_fault_and_zap_on_device_tracks() {
        let bdf = Bdf::parse("0000:01:00.0").ok();
        let fault = |t_ns, order| EventLine::Fault {
            t_ns,
            dur_ns: 2_500,
            device: bdf,
            pid: 40,
            tid: 41,
            order,
            result: Outcome::Nopage,
            origin: crate::model::fault::Origin::Cpu,
            bar: Some(2),
            page: 0,
            vma_start: 0,
            pte: 1,
            pmd: 0,
            pud: 0,
            remap_pages: 0,
            refaulted_pages: u64::from(t_ns > 9_000),
        };
        let events = vec![
            EventLine::Task {
                pid: 40,
                tid: 41,
                comm: "qemu".into(),
            },
            fault(1_000, 0),
            fault(5_000, 9),
            EventLine::Zap {
                t_ns: 9_000,
                dur_ns: 4_000,
                device: bdf,
                pid: 40,
                tid: 41,
                comm: "qemu".into(),
                range_start: 0,
                range_len: 0,
                pages: 2,
                vmas: 1,
            },
            fault(20_000, 0),
        ];
        let v = serde_json::to_value(convert(&events)).expect("json");
        let all = v["traceEvents"].as_array().expect("events");
        let slices: Vec<&Value> = all.iter().filter(|e| e["ph"] == "X").collect();
        assert_eq!(slices.len(), 5);
        assert_eq!(slices[3]["name"], "4 KiB refault");
        // From the zap's end (13 us) to the refault's end (22.5 us).
        assert_eq!(slices[4]["name"], "refault window");
        assert_eq!(
            (slices[4]["ts"].as_f64(), slices[4]["dur"].as_f64()),
            (Some(13.0), Some(9.5))
        );
        assert_eq!(slices[0]["name"], "4 KiB fault");
        assert_eq!(slices[0]["args"]["origin"], "cpu");
        assert_eq!(slices[1]["name"], "2 MiB fault");
        assert_eq!(
            (slices[1]["ts"].as_f64(), slices[1]["dur"].as_f64()),
            (Some(5.0), Some(2.5))
        );
        assert_eq!(
            (slices[1]["pid"].as_u64(), slices[1]["tid"].as_u64()),
            (Some(1), Some(41))
        );
        assert_eq!(
            (slices[2]["name"].as_str(), slices[2]["tid"].as_u64()),
            (Some("zap"), Some(0))
        );
        let meta: Vec<&Value> = all.iter().filter(|e| e["ph"] == "M").collect();
        assert_eq!(meta[0]["args"]["name"], "0000:01:00.0");
        assert_eq!(meta[2]["args"]["name"], "qemu (41)");
        assert_eq!(v["displayTimeUnit"], "ns");
    }
}
