//! A real Prometheus server for the serve scenario: Debian bookworm's
//! prometheus package and the libraries it needs (glibc included; the
//! initramfs has none), downloaded with the private apt and unpacked into the
//! lab share, with the dashboards' expressions written beside it for the
//! guest to ask Prometheus's HTTP API. Nothing is installed on the host.

use std::{fs, path::Path};

use anyhow::{Context as _, Result};

use crate::{debtree::DebTree, paths};

const TREE: DebTree = DebTree {
    specs: &["prometheus=2.42.0+ds-5+deb12u1"],
    release: "bookworm",
    share_dir: SHARE_DIR,
    binary: "usr/bin/prometheus",
};
/// The directory in the share, the guest's /mnt/host/prometheus.
pub const SHARE_DIR: &str = "prometheus";
/// In that directory: one URL-encoded dashboard expression a line.
pub const QUERIES: &str = "queries.txt";

/// Unpacks Prometheus into `share/prometheus` (unless already there) and
/// writes the dashboards' expressions beside it.
pub fn stage(share: &Path) -> Result<()> {
    TREE.stage(&TREE.debs()?, share)?;
    let dest = share.join(SHARE_DIR);
    let mut queries = String::new();
    for e in expressions()? {
        queries.push_str(&encode(&concrete(&e)));
        queries.push('\n');
    }
    fs::write(dest.join(QUERIES), queries).context("writing the dashboard queries")
}

/// Every panel expression of the dashboards.
pub fn expressions() -> Result<Vec<String>> {
    let dir = paths::workspace_root().join("dashboards");
    let mut out = Vec::new();
    for entry in fs::read_dir(&dir).with_context(|| format!("reading {}", dir.display()))? {
        let path = entry?.path();
        if path.extension().is_none_or(|e| e != "json") {
            continue;
        }
        let dash: serde_json::Value = serde_json::from_str(&fs::read_to_string(&path)?)
            .with_context(|| format!("parsing {}", path.display()))?;
        collect(&dash, &mut out);
    }
    Ok(out)
}

fn collect(v: &serde_json::Value, out: &mut Vec<String>) {
    match v {
        serde_json::Value::Object(map) => {
            for (k, v) in map {
                match (k.as_str(), v) {
                    ("expr", serde_json::Value::String(s)) => out.push(s.clone()),
                    _ => collect(v, out),
                }
            }
        }
        serde_json::Value::Array(items) => items.iter().for_each(|v| collect(v, out)),
        _ => {}
    }
}

/// An expression as Grafana would send it: its variables filled in.
pub fn concrete(expr: &str) -> String {
    expr.replace("$__rate_interval", "1m")
        .replace("$device", ".*")
}

/// Percent-encoding for a query string value.
pub fn encode(s: &str) -> String {
    s.bytes()
        .map(|b| match b {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'_' | b'.' | b'~' => {
                char::from(b).to_string()
            }
            _ => format!("%{b:02X}"),
        })
        .collect()
}

#[cfg(test)]
mod tests {
    #[test]
    fn expressions_are_filled_in_and_encoded() {
        let e = super::concrete("rate(x{device=~\"$device\"}[$__rate_interval])");
        assert_eq!(e, "rate(x{device=~\".*\"}[1m])");
        assert_eq!(super::encode("a b{\"}"), "a%20b%7B%22%7D");
        assert!(super::expressions().expect("dashboards").len() >= 10);
    }
}
