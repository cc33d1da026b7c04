//! The dashboards query only what the exporter exposes: every metric name in
//! a panel's expression (or a variable's query) is a series of the text the
//! exporter renders over a synthetic model.

use std::{collections::BTreeSet, path::PathBuf};

use serde_json::Value;

use super::{metrics::render, tests::synthetic};

fn dashboards() -> Vec<(PathBuf, Value)> {
    let dir = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../dashboards");
    let mut out = Vec::new();
    for entry in std::fs::read_dir(&dir).expect("dashboards/ exists") {
        let path = entry.expect("entry").path();
        if path.extension().is_some_and(|e| e == "json") {
            let text = std::fs::read_to_string(&path).expect("readable");
            out.push((path, serde_json::from_str(&text).expect("valid JSON")));
        }
    }
    assert!(!out.is_empty(), "no dashboards in {}", dir.display());
    out
}

/// Every string under a key that holds a query.
fn queries(v: &Value, out: &mut Vec<String>) {
    match v {
        Value::Object(map) => {
            for (k, v) in map {
                match (k.as_str(), v) {
                    ("expr" | "query" | "definition", Value::String(s)) => out.push(s.clone()),
                    _ => queries(v, out),
                }
            }
        }
        Value::Array(items) => items.iter().for_each(|v| queries(v, out)),
        _ => {}
    }
}

/// Metric names in a query: identifiers starting `vfio_trace_`.
fn names(query: &str) -> Vec<String> {
    let mut out = Vec::new();
    let mut rest = query;
    while let Some(at) = rest.find("vfio_trace_") {
        let tail = &rest[at..];
        let end = tail
            .find(|c: char| !(c.is_ascii_alphanumeric() || c == '_'))
            .unwrap_or(tail.len());
        out.push(tail[..end].to_owned());
        rest = &tail[end..];
    }
    out
}

fn exposed() -> BTreeSet<String> {
    render(synthetic())
        .expect("renders")
        .lines()
        .filter(|l| !l.starts_with('#'))
        .filter_map(|l| l.split(['{', ' ']).next())
        .map(str::to_owned)
        .collect()
}

#[test]
fn every_metric_a_panel_queries_is_exposed() {
    let exposed = exposed();
    for (path, dash) in dashboards() {
        let mut qs = Vec::new();
        queries(&dash, &mut qs);
        assert!(qs.len() >= 10, "{}: too few queries", path.display());
        for q in qs {
            for name in names(&q) {
                assert!(
                    exposed.contains(&name),
                    "{}: {name} (in {q:?}) is not exposed",
                    path.display()
                );
            }
        }
    }
}

#[test]
fn dashboards_name_no_datasource_of_their_own() {
    for (path, dash) in dashboards() {
        let inputs = dash["__inputs"].as_array().expect("__inputs");
        assert!(
            inputs.iter().any(|i| i["name"] == "DS_PROMETHEUS"),
            "{}",
            path.display()
        );
        let mut uids = Vec::new();
        collect_uids(&dash, &mut uids);
        assert!(!uids.is_empty());
        for uid in uids {
            assert_eq!(uid, "${DS_PROMETHEUS}", "{}", path.display());
        }
    }
}

fn collect_uids(v: &Value, out: &mut Vec<String>) {
    match v {
        Value::Object(map) => {
            if let Some(ds) = map.get("datasource") {
                out.push(ds["uid"].as_str().unwrap_or("").to_owned());
            }
            map.values().for_each(|v| collect_uids(v, out));
        }
        Value::Array(items) => items.iter().for_each(|v| collect_uids(v, out)),
        _ => {}
    }
}

#[test]
fn names_are_read_out_of_expressions() {
    assert_eq!(
        names("sum(rate(vfio_trace_faults_total{a=\"b\"}[5m])) / vfio_trace_x"),
        ["vfio_trace_faults_total", "vfio_trace_x"]
    );
}
