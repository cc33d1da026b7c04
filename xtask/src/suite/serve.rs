//! `vfio-trace serve` in the guest: scraped over loopback with busybox wget
//! before, during and after an exercise fault storm. Fifty scrapes run at once
//! during the storm and must all succeed, and two scrapers go on back to back
//! until it ends; the counts after must equal what
//! the exercise did, with nothing lost; every metric the dashboards query
//! must be in the real scrape, which promtool must pass; SIGTERM must stop
//! the exporter with every probe detached. A real Prometheus server (Debian's)
//! scrapes it meanwhile: every dashboard expression must return data through
//! its HTTP API, and its fault count must equal the exercise's.

use std::{collections::BTreeSet, process::Command};

use super::{Ctx, Scenario, TestResult, prometheus, read_out, status_ok};
use crate::{cmd, paths, promtool};

/// Scrapes run at once during the storm.
const CONCURRENT: usize = 50;
/// Pages the storm touches, one mapped 4 KiB fault each (64 MiB).
const PAGES: u64 = 16384;

pub const SCENARIO: Scenario = Scenario {
    name: "serve",
    guest: r#"
DEV=$(basename "$(ls -d /sys/bus/pci/drivers/vfio-pci/0000:* | head -1)")
ip link set lo up
URL=http://127.0.0.1:9748
PROM=/mnt/host/prometheus
KPROBES=/sys/kernel/debug/kprobes/list
FTRACE=/sys/kernel/tracing/enabled_functions

# prom_start: Prometheus from the staged Debian package through its own
# loader, scraping the exporter every second; returns once it is ready.
prom_start() {
  LDSO=""
  for l in $PROM/lib/x86_64-linux-gnu/ld-linux-x86-64.so.2 $PROM/usr/lib/x86_64-linux-gnu/ld-linux-x86-64.so.2; do
    [ -f $l ] && LDSO=$l
  done
  [ -n "$LDSO" ] || { echo "no ld-linux-x86-64.so.2 in the staged packages" >prometheus.failed; return 1; }
  printf 'global:\n  scrape_interval: 1s\nscrape_configs:\n  - job_name: vfio-trace\n    static_configs:\n      - targets: ["127.0.0.1:9748"]\n' >prometheus.yml
  $LDSO --library-path $PROM/lib/x86_64-linux-gnu:$PROM/usr/lib/x86_64-linux-gnu \
    $PROM/usr/bin/prometheus --config.file=prometheus.yml --storage.tsdb.path=/tmp/prometheus \
    --web.listen-address=127.0.0.1:9090 >prometheus.log 2>&1 &
  PROMPID=$!
  for i in $(seq 900); do
    wget -q -O /dev/null http://127.0.0.1:9090/-/ready && return 0
    sleep 0.1
  done
  echo "not ready after 90 s" >prometheus.failed
  return 1
}

vfio-trace serve --device "$DEV" 2>serve.stderr &
SRV=$!
for i in $(seq 300); do grep -q serving serve.stderr && break; sleep 0.1; done
prom_start
wget -q -O index.html $URL/
echo $? > index.status
vfio-trace exercise --device "$DEV" --json touch:4k:64m:4k >exercise.json 2>exercise.stderr &
EX=$!
PIDS=""
for i in $(seq 50); do
  (wget -q -O scrape.$i.prom $URL/metrics; echo $? > scrape.$i.status) &
  PIDS="$PIDS $!"
done
# Two more scrapers back to back for the whole storm: a scrape that cost the
# tracer events (a BPF recursion miss, a full ring) shows as a loss.
for l in 1 2; do
  (while [ ! -e storm.done ]; do wget -q -O /dev/null $URL/metrics && echo >> loop.$l.count; done) &
  PIDS="$PIDS $!"
done
wait $EX
echo $? > exercise.status
touch storm.done
for p in $PIDS; do wait $p; done
# A scrape drains the rings first: this one counts the whole storm.
wget -q -O after.prom $URL/metrics
echo $? > after.status
if [ -n "$PROMPID" ]; then
  # Every dashboard expression needs two samples of each series in its
  # window: a scrape can time out while the guest is busy, so wait for them
  # (up to 30 s) instead of for a fixed time.
  TWO='min%28count_over_time%28vfio_trace_faults_total%5B1m%5D%29%29%20%3E%3D%202'
  for i in $(seq 30); do
    sleep 1
    wget -q -O two.json "http://127.0.0.1:9090/api/v1/query?query=$TWO"
    grep -q '"result":\[{' two.json && break
  done
  n=0
  while read -r q; do
    n=$((n+1))
    wget -q -O query.$n.json "http://127.0.0.1:9090/api/v1/query?query=$q"
  done < $PROM/queries.txt
  wget -q -O prom-faults.json "http://127.0.0.1:9090/api/v1/query?query=sum%28vfio_trace_fault_results_total%7Bresult%3D%22nopage%22%7D%29"
  wget -q -O prom-lost.json "http://127.0.0.1:9090/api/v1/query?query=sum%28vfio_trace_lost_events_total%29"
  kill -TERM $PROMPID
  wait $PROMPID
fi
kill -TERM $SRV
wait $SRV
echo $? > serve.status
cat $KPROBES $FTRACE 2>/dev/null | grep -c vfio_pci_mmap > probes.after
"#,
    check,
};

/// The value of the series `name{labels}` exactly as written, if present.
fn value(text: &str, series: &str) -> Option<f64> {
    text.lines()
        .find_map(|l| l.strip_prefix(series)?.strip_prefix(' ')?.parse().ok())
}

/// Every sample of `name` (any labels) in a Prometheus text exposition.
pub fn samples<'a>(text: &'a str, name: &'a str) -> impl Iterator<Item = f64> + 'a {
    text.lines()
        .filter(move |l| {
            l.strip_prefix(name)
                .is_some_and(|r| r.starts_with('{') || r.starts_with(' '))
        })
        .filter_map(|l| l.rsplit_once(' ')?.1.parse::<f64>().ok())
}

/// Sum of every sample of `name` (any labels).
fn sum(text: &str, name: &str) -> f64 {
    samples(text, name).sum()
}

fn device(ctx: &Ctx) -> Result<String, String> {
    let text = read_out(ctx, "after.prom")?;
    text.lines()
        .find_map(|l| {
            let rest = l.strip_prefix("vfio_trace_device_info{device=\"")?;
            Some(rest.split('"').next()?.to_owned())
        })
        .ok_or_else(|| "no vfio_trace_device_info in the scrape".into())
}

fn counts(ctx: &Ctx) -> Result<(), String> {
    status_ok(ctx, "exercise")?;
    let text = read_out(ctx, "after.prom")?;
    let dev = device(ctx)?;
    let of = |name: &str| {
        let prefix = format!("{name}{{device=\"{dev}\",");
        text.lines()
            .filter(|l| l.starts_with(&prefix))
            .filter_map(|l| l.rsplit_once(' ')?.1.parse::<f64>().ok())
            .sum::<f64>()
    };
    // Every fault has one order and one result.
    let (faults, results) = (
        of("vfio_trace_faults_total"),
        of("vfio_trace_fault_results_total"),
    );
    if (faults - results).abs() > 0.5 {
        return Err(format!("{faults} faults by order, {results} by result"));
    }
    // One mapped fault per page touched (huge attempts fall back first), or
    // one for the whole mapping where the first fault remaps the VMA.
    let pages = if ctx.facts.remaps_whole_vma { 1 } else { PAGES };
    #[expect(clippy::cast_precision_loss, reason = "small counts")]
    let want = pages as f64;
    let nopage = value(
        &text,
        &format!("vfio_trace_fault_results_total{{device=\"{dev}\",result=\"nopage\"}}"),
    );
    if nopage != Some(want) {
        return Err(format!(
            "{nopage:?} mapped faults, the exercise touched {want} pages"
        ));
    }
    Ok(())
}

fn nothing_lost(ctx: &Ctx) -> Result<(), String> {
    let text = read_out(ctx, "after.prom")?;
    let lost = sum(&text, "vfio_trace_lost_events_total");
    if lost != 0.0 {
        return Err(format!("{lost} events lost"));
    }
    match value(&text, "vfio_trace_healthy") {
        Some(1.0) => Ok(()),
        v => Err(format!("vfio_trace_healthy {v:?}")),
    }
}

fn concurrent(ctx: &Ctx) -> Result<(), String> {
    for l in 1..=2 {
        let n = read_out(ctx, &format!("loop.{l}.count")).map_or(0, |t| t.lines().count());
        if n == 0 {
            return Err(format!("scraper loop {l} got no scrape during the storm"));
        }
    }
    for i in 1..=CONCURRENT {
        let status = read_out(ctx, &format!("scrape.{i}.status"))?;
        if status.trim() != "0" {
            return Err(format!("scrape {i}: wget exited {}", status.trim()));
        }
        let text = read_out(ctx, &format!("scrape.{i}.prom"))?;
        if !text.contains("\nvfio_trace_faults_total{") {
            return Err(format!("scrape {i} has no vfio_trace_faults_total"));
        }
    }
    Ok(())
}

/// Metric names the dashboards query.
fn dashboard_metrics() -> Result<BTreeSet<String>, String> {
    let dir = paths::workspace_root().join("dashboards");
    let mut names = BTreeSet::new();
    for entry in std::fs::read_dir(&dir).map_err(|e| format!("{}: {e}", dir.display()))? {
        let path = entry.map_err(|e| e.to_string())?.path();
        if path.extension().is_none_or(|e| e != "json") {
            continue;
        }
        let text = std::fs::read_to_string(&path).map_err(|e| e.to_string())?;
        let mut rest = text.as_str();
        while let Some(at) = rest.find("vfio_trace_") {
            let tail = &rest[at..];
            let end = tail
                .find(|c: char| !(c.is_ascii_alphanumeric() || c == '_'))
                .unwrap_or(tail.len());
            names.insert(tail[..end].to_owned());
            rest = &tail[end..];
        }
    }
    Ok(names)
}

fn dashboards(ctx: &Ctx) -> Result<(), String> {
    let text = read_out(ctx, "after.prom")?;
    let exposed: BTreeSet<&str> = text
        .lines()
        .filter(|l| !l.starts_with('#'))
        .filter_map(|l| l.split(['{', ' ']).next())
        .collect();
    let missing: Vec<String> = dashboard_metrics()?
        .into_iter()
        .filter(|n| !exposed.contains(n.as_str()))
        .collect();
    if missing.is_empty() {
        Ok(())
    } else {
        Err(format!("not in the scrape: {}", missing.join(", ")))
    }
}

fn promtool_check(ctx: &Ctx) -> Result<(), String> {
    let tool = promtool::ensure(&mut None).map_err(|e| format!("{e:#}"))?;
    let file = ctx.out_dir.join("after.prom");
    let out = cmd::output(Command::new("sh").arg("-c").arg(format!(
        "{} check metrics < {} 2>&1",
        tool.display(),
        file.display()
    )))
    .map_err(|e| format!("{e:#}"))?;
    if out.trim().is_empty() {
        Ok(())
    } else {
        Err(format!("promtool: {}", out.trim()))
    }
}

fn stopped(ctx: &Ctx) -> Result<(), String> {
    status_ok(ctx, "serve")?;
    match read_out(ctx, "probes.after")?.trim() {
        "0" => Ok(()),
        n => Err(format!(
            "{n} vfio probes still registered after serve exited"
        )),
    }
}

/// Why Prometheus did not run, with the end of its log.
fn prometheus_ran(ctx: &Ctx) -> Result<(), String> {
    match read_out(ctx, "prometheus.failed") {
        Err(_) => Ok(()),
        Ok(why) => {
            let log = read_out(ctx, "prometheus.log").unwrap_or_default();
            let tail: Vec<&str> = log.lines().rev().take(5).collect();
            Err(format!("{}: {}", why.trim(), tail.join(" | ")))
        }
    }
}

/// The first sample's value of an instant query's answer.
fn answer(ctx: &Ctx, file: &str) -> Result<Vec<serde_json::Value>, String> {
    let v: serde_json::Value =
        serde_json::from_str(&read_out(ctx, file)?).map_err(|e| format!("{file}: {e}"))?;
    if v["status"] != "success" {
        return Err(format!("{file}: {v}"));
    }
    Ok(v["data"]["result"].as_array().cloned().unwrap_or_default())
}

fn prometheus_queries(ctx: &Ctx) -> Result<(), String> {
    prometheus_ran(ctx)?;
    let exprs = prometheus::expressions().map_err(|e| format!("{e:#}"))?;
    let empty: Vec<String> = exprs
        .iter()
        .enumerate()
        .filter_map(
            |(i, e)| match answer(ctx, &format!("query.{}.json", i + 1)) {
                Ok(r) if !r.is_empty() => None,
                Ok(_) => Some(format!("no data: {e}")),
                Err(why) => Some(why),
            },
        )
        .collect();
    if empty.is_empty() {
        Ok(())
    } else {
        Err(empty.join("; "))
    }
}

fn prometheus_counts(ctx: &Ctx) -> Result<(), String> {
    prometheus_ran(ctx)?;
    let scalar = |file: &str| -> Result<f64, String> {
        let r = answer(ctx, file)?;
        r.first()
            .and_then(|s| s["value"][1].as_str())
            .and_then(|v| v.parse().ok())
            .ok_or_else(|| format!("{file}: no value"))
    };
    let pages = if ctx.facts.remaps_whole_vma { 1 } else { PAGES };
    #[expect(clippy::cast_precision_loss, reason = "small counts")]
    let want = pages as f64;
    let got = scalar("prom-faults.json")?;
    if (got - want).abs() > 0.5 {
        return Err(format!(
            "Prometheus has {got} mapped faults, the exercise made {want}"
        ));
    }
    match scalar("prom-lost.json")? {
        0.0 => Ok(()),
        lost => Err(format!("Prometheus has {lost} lost events")),
    }
}

fn check(ctx: &Ctx) -> Vec<TestResult> {
    vec![
        ("landing-page".into(), status_ok(ctx, "index")),
        ("counts-match-exercise".into(), counts(ctx)),
        ("nothing-lost".into(), nothing_lost(ctx)),
        (format!("{CONCURRENT}-concurrent-scrapes"), concurrent(ctx)),
        ("dashboard-metrics-exposed".into(), dashboards(ctx)),
        ("promtool".into(), promtool_check(ctx)),
        ("sigterm-detaches".into(), stopped(ctx)),
        (
            "prometheus/dashboard-queries".into(),
            prometheus_queries(ctx),
        ),
        ("prometheus/counts".into(), prometheus_counts(ctx)),
    ]
}
