//! Reading what one round left behind: exercise's JSON (the phase times and the
//! faults it caused), record's JSON (counts and the collector's own costs) and
//! the /proc/uptime pair around the command.
//!
//! record's collector fields are newer than this bench and may be missing from
//! the binary measured: every one of them is optional, never an error.

use std::collections::BTreeMap;

use serde::Serialize;
use serde_json::Value;

/// One exercise run, reduced to what the bench compares.
#[derive(Clone, Debug, PartialEq)]
pub struct Exercise {
    /// Sum of the phases' own `elapsed_ns`: the workload without process
    /// start-up, VFIO setup or (under record) attaching.
    pub elapsed_ns: u64,
    /// Faults the phases should cost on 6.12+ (exercise's `expected`); a
    /// refault phase walks its mapping twice.
    pub faults: u64,
}

/// Parses `vfio-trace exercise --json` output (vfio-trace/src/exercise/report.rs).
pub fn exercise(text: &str) -> Result<Exercise, String> {
    let v: Value = serde_json::from_str(text).map_err(|e| format!("exercise JSON: {e}"))?;
    if let Some(err) = v.get("error") {
        return Err(format!("exercise failed: {err}"));
    }
    let phases = v["phases"]
        .as_array()
        .filter(|p| !p.is_empty())
        .ok_or("exercise JSON has no phases")?;
    let mut out = Exercise {
        elapsed_ns: 0,
        faults: 0,
    };
    for p in phases {
        let ns = p["elapsed_ns"]
            .as_u64()
            .ok_or_else(|| format!("phase {} has no elapsed_ns", p["spec"]))?;
        out.elapsed_ns += ns;
        let e = &p["expected"];
        let expected: u64 = ["order0", "order9", "order18"]
            .iter()
            .filter_map(|k| e[k].as_u64())
            .sum();
        let passes = if p["phase"] == "refault" { 2 } else { 1 };
        out.faults += expected * passes;
    }
    Ok(out)
}

/// What a record document says about its own run. Every field is optional.
#[derive(Clone, Debug, Default, PartialEq, Serialize)]
pub struct Record {
    /// `devices[].faults.total`, summed.
    pub faults: Option<u64>,
    pub lost_events: Option<u64>,
    /// `losses`: events lost by cause.
    pub losses: Option<BTreeMap<String, u64>>,
    pub attach_ms: Option<f64>,
    pub events: Option<u64>,
    pub wakeups: Option<u64>,
    pub cpu_ns: Option<u64>,
    /// Time reading the rings, and in the model (`collector.read_ns`, `ingest_ns`).
    pub read_ns: Option<u64>,
    pub ingest_ns: Option<u64>,
    /// Times the yielding collector competed to catch up (`collector.catch_ups`).
    pub catch_ups: Option<u64>,
    pub max_rss_kib: Option<u64>,
    pub bpf_run_ns: Option<u64>,
    pub bpf_run_cnt: Option<u64>,
    /// The 4 KiB fault latency p50 record reports (first device with one).
    pub p50_4k_ns: Option<u64>,
    /// `probes[]` that attached, as `program (kind)`.
    pub attached: Vec<String>,
}

/// Parses `vfio-trace record` output (docs/record-schema.md).
pub fn record(text: &str) -> Result<Record, String> {
    let v: Value = serde_json::from_str(text).map_err(|e| format!("record JSON: {e}"))?;
    if v.get("complete") == Some(&Value::Bool(false)) {
        return Err(format!("record incomplete: {}", v["error"]));
    }
    let c = &v["collector"];
    Ok(Record {
        faults: v["devices"].as_array().map(|ds| {
            ds.iter()
                .filter_map(|d| d["faults"]["total"].as_u64())
                .sum()
        }),
        lost_events: v["lost_events"].as_u64(),
        losses: v["losses"].as_object().map(|m| {
            m.iter()
                .filter_map(|(k, n)| Some((k.clone(), n.as_u64()?)))
                .collect()
        }),
        attach_ms: c["attach_ms"].as_f64(),
        events: c["events"].as_u64(),
        wakeups: c["wakeups"].as_u64(),
        cpu_ns: c["cpu_ns"].as_u64(),
        read_ns: c["read_ns"].as_u64(),
        ingest_ns: c["ingest_ns"].as_u64(),
        catch_ups: c["catch_ups"].as_u64(),
        max_rss_kib: c["max_rss_kib"].as_u64(),
        bpf_run_ns: c["bpf_run_ns"].as_u64(),
        bpf_run_cnt: c["bpf_run_cnt"].as_u64(),
        p50_4k_ns: v["devices"].as_array().and_then(|ds| {
            ds.iter().find_map(|d| {
                let l = &d["latency_ns"]["by_order"]["0"];
                (l["count"].as_u64()? > 0).then(|| l["p50"].as_u64())?
            })
        }),
        attached: v["probes"]
            .as_array()
            .map(|ps| {
                ps.iter()
                    .filter(|p| p["status"] == "attached")
                    .filter_map(|p| {
                        Some(format!(
                            "{} ({})",
                            p["program"].as_str()?,
                            p["kind"].as_str()?
                        ))
                    })
                    .collect()
            })
            .unwrap_or_default(),
    })
}

/// `START END` seconds of /proc/uptime around a command, as milliseconds.
pub fn wall_ms(text: &str) -> Option<f64> {
    let mut it = text.split_whitespace().map(str::parse::<f64>);
    let (Some(Ok(start)), Some(Ok(end))) = (it.next(), it.next()) else {
        return None;
    };
    (end >= start).then_some((end - start) * 1000.0)
}

/// Lines of a /sys/kernel/debug/kprobes/list copy in `after` that `before` lacks:
/// kprobes a run left registered.
pub fn new_kprobes(before: &str, after: &str) -> Vec<String> {
    let old: Vec<&str> = before.lines().map(str::trim).collect();
    after
        .lines()
        .map(str::trim)
        .filter(|l| !l.is_empty() && !old.contains(l))
        .map(str::to_owned)
        .collect()
}

/// bpftrace's `@order[N]: C` map as printed when it exits, summed.
pub fn bpftrace_faults(log: &str) -> Option<u64> {
    let counts: Vec<u64> = log
        .lines()
        .filter_map(|l| l.trim().strip_prefix("@order["))
        .filter_map(|rest| rest.split_once("]:"))
        .filter_map(|(_, n)| n.trim().parse().ok())
        .collect();
    (!counts.is_empty()).then(|| counts.iter().sum())
}

#[cfg(test)]
mod tests {
    use super::*;

    const TOUCH: &str = r#"{"device":"0000:01:00.0","bar":2,"bar_size":1073741824,"pid":9,
      "phases":[{"phase":"touch","spec":"touch:4k:64m:2m","map_addr":6291456,"map_align":2097152,
        "size":67108864,"stride":4096,"expected":{"order0":0,"order9":32,"order18":0},
        "touches":16384,"elapsed_ns":1500000}],
      "totals":{"touches":16384,"decode_toggles":0,"decode_off":0,"resets":0,"sigbus_touches":0,"mmaps":1}}"#;

    #[test]
    fn exercise_sums_phases_and_counts_refaults_twice() {
        assert_eq!(
            exercise(TOUCH),
            Ok(Exercise {
                elapsed_ns: 1_500_000,
                faults: 32
            })
        );
        let refault = r#"{"phases":[
          {"phase":"refault","spec":"refault:4k:4m:4k","expected":{"order0":1024,"order9":0,"order18":0},"elapsed_ns":10},
          {"phase":"refault","spec":"refault:4k:4m:4k","expected":{"order0":1024,"order9":0,"order18":0},"elapsed_ns":20}]}"#;
        assert_eq!(
            exercise(refault),
            Ok(Exercise {
                elapsed_ns: 30,
                faults: 4096
            })
        );
    }

    #[test]
    fn exercise_errors() {
        assert!(exercise("").is_err());
        assert!(exercise(r#"{"phases":[]}"#).is_err());
        let failed = r#"{"phases":[{"phase":"touch","elapsed_ns":1}],"error":"decode is off"}"#;
        assert_eq!(
            exercise(failed),
            Err("exercise failed: \"decode is off\"".into())
        );
    }

    #[test]
    fn record_today_has_no_collector_fields() {
        let r =
            record(r#"{"complete":true,"lost_events":0,"devices":[{"faults":{"total":16384}}]}"#);
        assert_eq!(
            r,
            Ok(Record {
                faults: Some(16384),
                lost_events: Some(0),
                ..Record::default()
            })
        );
    }

    #[test]
    fn record_with_collector_fields() {
        let r = record(
            r#"{"complete":true,"lost_events":5,"losses":{"ring_full":5,"odd":"x"},
              "collector":{"attach_ms":812.5,"events":16384,"wakeups":40,"cpu_ns":90000000,
                "max_rss_kib":20480,"bpf_run_ns":30000000,"bpf_run_cnt":49152,
                "read_ns":16384000,"ingest_ns":32768000},
              "devices":[{"faults":{"total":100}},{"faults":{"total":1}}]}"#,
        )
        .expect("parses");
        assert_eq!(r.faults, Some(101));
        assert_eq!(r.losses, Some(BTreeMap::from([("ring_full".into(), 5)])));
        assert_eq!(r.attach_ms, Some(812.5));
        assert_eq!(r.bpf_run_cnt, Some(49152));
        assert_eq!(
            (r.read_ns, r.ingest_ns),
            (Some(16_384_000), Some(32_768_000))
        );
        assert!(record(r#"{"complete":false,"error":"boom"}"#).is_err());
    }

    #[test]
    fn record_attached_programs() {
        let r = record(
            r#"{"complete":true,"probes":[
              {"name":"fault_entry","program":"floor_fentry","kind":"fentry","status":"attached"},
              {"name":"fault_return","program":"floor_kretprobe","kind":"kretprobe","status":"attached"},
              {"name":"zap_entry","program":null,"kind":"kprobe","status":"skipped"}]}"#,
        )
        .expect("parses");
        assert_eq!(
            r.attached,
            ["floor_fentry (fentry)", "floor_kretprobe (kretprobe)"]
        );
    }

    #[test]
    fn walls_kprobes_and_bpftrace_counts() {
        assert_eq!(wall_ms("12.50 13.75\n"), Some(1250.0));
        assert_eq!(wall_ms("12.50"), None);
        let before = "";
        let after = "ffffffffc0 k vfio_pci_mmap_huge_fault+0x0 [vfio_pci_core] [FTRACE]\n\
                     ffffffffc0 r vfio_pci_mmap_huge_fault+0x0 [vfio_pci_core] [FTRACE]\n";
        assert_eq!(new_kprobes(before, after).len(), 2);
        assert!(new_kprobes(after, after).is_empty());
        let log =
            "Attaching 2 probes...\n\n@order[9]: 160\n@order[0]: 98304\n\n@retval[256]: 98464\n";
        assert_eq!(bpftrace_faults(log), Some(98464));
        assert_eq!(bpftrace_faults("Attaching 2 probes...\n"), None);
    }
}
