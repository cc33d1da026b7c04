//! `vfio-trace report FILE`: a recording, summarised for people.

use std::{fmt::Write as _, path::PathBuf};

use anyhow::{Context as _, bail};
use serde_json::Value;

#[derive(clap::Args, Debug)]
pub struct ReportArgs {
    /// JSON written by `vfio-trace record`.
    pub file: PathBuf,
}

fn n(v: &Value) -> u64 {
    v.as_u64().unwrap_or(0)
}

/// Nanoseconds as people read them.
pub fn duration(ns: u64) -> String {
    match ns {
        0..1_000 => format!("{ns} ns"),
        1_000..1_000_000 => format!("{:.1} us", ns as f64 / 1e3),
        1_000_000..1_000_000_000 => format!("{:.1} ms", ns as f64 / 1e6),
        _ => format!("{:.2} s", ns as f64 / 1e9),
    }
}

fn pairs(obj: &Value, keys: &[&str]) -> String {
    keys.iter()
        .map(|k| format!("{k} {}", n(&obj[k])))
        .collect::<Vec<_>>()
        .join(", ")
}

/// The text summary of a record document.
pub fn render(doc: &Value) -> anyhow::Result<String> {
    if doc["schema_version"] != 1 {
        bail!(
            "not a vfio-trace record (schema_version {}, expected 1)",
            doc["schema_version"]
        );
    }
    let mut s = String::new();
    let _ = writeln!(
        s,
        "kernel {} ({}), {:.2} s, stopped: {}, lost events {}",
        doc["kernel"]["release"].as_str().unwrap_or("?"),
        doc["kernel"]["generation"].as_str().unwrap_or("?"),
        doc["duration_seconds"].as_f64().unwrap_or(0.0),
        doc["stop_reason"].as_str().unwrap_or("?"),
        n(&doc["lost_events"]),
    );
    let probes = |keep: &dyn Fn(&Value) -> bool| -> Vec<&str> {
        doc["probes"]
            .as_array()
            .map(|ps| {
                ps.iter()
                    .filter(|p| keep(&p["status"]))
                    .filter_map(|p| p["name"].as_str())
                    .collect()
            })
            .unwrap_or_default()
    };
    let missing = probes(&|st| st != "attached" && st != "inferred");
    if !missing.is_empty() {
        let _ = writeln!(s, "not attached: {}", missing.join(", "));
    }
    let inferred = probes(&|st| st == "inferred");
    if !inferred.is_empty() {
        let _ = writeln!(
            s,
            "inferred from the fault's order and result: {}",
            inferred.join(", ")
        );
    }
    for d in doc["devices"]
        .as_array()
        .map(Vec::as_slice)
        .unwrap_or_default()
    {
        let f = &d["faults"];
        let _ = writeln!(
            s,
            "\n{} ({}:{}), lost {}",
            d["bdf"].as_str().unwrap_or("?"),
            d["vendor"].as_str().unwrap_or("?"),
            d["device"].as_str().unwrap_or("?"),
            n(&d["lost_events"])
        );
        let _ = writeln!(
            s,
            "  faults    {} | 4K {}, 2M {}, 1G {} | {}",
            n(&f["total"]),
            n(&f["by_order"]["0"]),
            n(&f["by_order"]["9"]),
            n(&f["by_order"]["18"]),
            pairs(&f["by_result"], &["nopage", "fallback", "sigbus"])
        );
        let _ = writeln!(
            s,
            "  inserts   {}",
            pairs(&d["inserts"], &["pte", "pmd", "pud", "remap"])
        );
        for (order, name) in [("0", "4K"), ("9", "2M"), ("18", "1G")] {
            let l = &d["latency_ns"]["by_order"][order];
            if n(&l["count"]) > 0 {
                let _ = writeln!(
                    s,
                    "  {name} fault  p50 {}, p99 {}, max {} ({} faults)",
                    duration(n(&l["p50"])),
                    duration(n(&l["p99"])),
                    duration(n(&l["max"])),
                    n(&l["count"])
                );
            }
        }
        let z = &d["zaps"];
        let causes: Vec<String> = z["causes"]
            .as_object()
            .map(|c| c.iter().map(|(k, v)| format!("{k} {}", n(v))).collect())
            .unwrap_or_default();
        let _ = writeln!(
            s,
            "  zaps      {} ({}), {} pages, p50 {} | refaulted pages {}",
            n(&z["count"]),
            if causes.is_empty() {
                "none".into()
            } else {
                causes.join(", ")
            },
            n(&z["pages"]),
            duration(n(&z["latency_ns"]["p50"])),
            n(&d["refaults"]["pages"])
        );
        let lock = &d["memory_lock"];
        let _ = writeln!(
            s,
            "  lock wait read {} (p50 {}), write {} (p50 {})",
            n(&lock["read"]["count"]),
            duration(n(&lock["read"]["wait_ns"]["p50"])),
            n(&lock["write"]["count"]),
            duration(n(&lock["write"]["wait_ns"]["p50"]))
        );
    }
    Ok(s)
}

pub fn run(args: &ReportArgs) -> anyhow::Result<()> {
    let text = std::fs::read_to_string(&args.file)
        .with_context(|| format!("cannot read {}", args.file.display()))?;
    let doc: Value = serde_json::from_str(&text)
        .with_context(|| format!("{} is not JSON", args.file.display()))?;
    print!("{}", render(&doc)?);
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn summarises_a_document() {
        let doc = serde_json::json!({
            "schema_version": 1,
            "kernel": {"release": "6.12.117", "generation": "huge-fault"},
            "duration_seconds": 1.5, "stop_reason": "command-exited", "lost_events": 0,
            "probes": [{"name": "fault_entry", "status": "attached"}, {"name": "zap_range", "status": "absent"},
                       {"name": "insert_pte", "status": "inferred"}],
            "devices": [{
                "bdf": "0000:01:00.0", "vendor": "1af4", "device": "1110", "lost_events": 0,
                "faults": {"total": 33, "by_order": {"0": 1, "9": 32, "18": 0}, "by_result": {"nopage": 33, "fallback": 0, "sigbus": 0}},
                "inserts": {"pte": 1, "pmd": 32, "pud": 0, "remap": 0},
                "latency_ns": {"by_order": {"9": {"count": 32, "p50": 3400, "p99": 9000, "max": 12000}}},
                "zaps": {"count": 1, "pages": 1024, "causes": {"reset": 1}, "latency_ns": {"p50": 25000}},
                "refaults": {"pages": 512},
                "memory_lock": {"read": {"count": 2, "wait_ns": {"p50": 11_500_000}}, "write": {"count": 0, "wait_ns": {"p50": 0}}}
            }]
        });
        let text = render(&doc).expect("renders");
        assert!(text.contains("not attached: zap_range\n"), "{text}");
        assert!(
            text.contains("inferred from the fault's order and result: insert_pte\n"),
            "{text}"
        );
        assert!(text.contains("faults    33 | 4K 1, 2M 32, 1G 0"), "{text}");
        assert!(text.contains("2M fault  p50 3.4 us"), "{text}");
        assert!(text.contains("zaps      1 (reset 1), 1024 pages"), "{text}");
        assert!(text.contains("lock wait read 2 (p50 11.5 ms)"), "{text}");
    }

    #[test]
    fn refuses_other_json() {
        let err = render(&serde_json::json!({"x": 1})).expect_err("not a record");
        assert!(err.to_string().starts_with("not a vfio-trace record"));
    }
}
