//! The serve mode's scrape after the phase (serve.R.prom): every fault the
//! phase made must be in it, since a scrape drains the rings first. A stale
//! scrape would make the mode look cheaper than it is.

use serde::Serialize;

use crate::suite::serve::samples;

/// What one scrape counted.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
pub struct Scrape {
    /// `vfio_trace_faults_total`, summed over devices and orders.
    pub faults: u64,
    /// `vfio_trace_lost_events_total`, summed over causes.
    pub lost: u64,
}

/// Sums the two counters in a Prometheus text exposition.
pub fn parse(text: &str) -> Result<Scrape, String> {
    let sum = |name: &str| -> Option<u64> {
        let values: Vec<f64> = samples(text, name).collect();
        #[allow(
            clippy::cast_possible_truncation,
            clippy::cast_sign_loss,
            reason = "a counter: whole and non-negative"
        )]
        (!values.is_empty()).then(|| values.iter().sum::<f64>() as u64)
    };
    match (
        sum("vfio_trace_faults_total"),
        sum("vfio_trace_lost_events_total"),
    ) {
        (Some(faults), Some(lost)) => Ok(Scrape { faults, lost }),
        _ => Err("the scrape after the phase has no fault or loss counters".to_owned()),
    }
}

/// Whether the scrape counts what the phase made: at least the faults the
/// workload should cost, or, where the kernel maps a BAR at its first fault
/// (before 6.10), at least one.
pub fn check(scrape: &Result<Scrape, String>, expected_faults: u64) -> Result<(), String> {
    let s = scrape.as_ref().map_err(Clone::clone)?;
    if s.faults == 0 && expected_faults > 0 {
        return Err("the scrape after the phase counted no fault".to_owned());
    }
    if s.lost > 0 {
        return Err(format!("serve lost {} events", s.lost));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    const TEXT: &str = "# HELP vfio_trace_faults_total Faults.\n\
        # TYPE vfio_trace_faults_total counter\n\
        vfio_trace_faults_total{device=\"0000:01:00.0\",order=\"4K\"} 16384\n\
        vfio_trace_faults_total{device=\"0000:01:00.0\",order=\"2M\"} 64\n\
        vfio_trace_faults_total_x 5\n\
        vfio_trace_lost_events_total{cause=\"ring_full\"} 0\n\
        vfio_trace_lost_events_total{cause=\"missed_return\"} 2\n";

    #[test]
    fn sums_the_counters_over_their_labels() {
        assert_eq!(
            parse(TEXT),
            Ok(Scrape {
                faults: 16448,
                lost: 2
            })
        );
        assert!(parse("vfio_trace_info{} 1\n").is_err());
    }

    #[test]
    fn a_scrape_must_count_faults_and_lose_none() {
        let ok = Ok(Scrape {
            faults: 16448,
            lost: 0,
        });
        assert_eq!(check(&ok, 16384), Ok(()));
        let none = Ok(Scrape { faults: 0, lost: 0 });
        assert!(check(&none, 16384).is_err());
        let lost = Ok(Scrape {
            faults: 16448,
            lost: 3,
        });
        assert_eq!(check(&lost, 16384), Err("serve lost 3 events".to_owned()));
        assert!(check(&Err("missing".into()), 1).is_err());
    }
}
