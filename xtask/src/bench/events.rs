//! The events mode's JSON Lines file, as the guest counted it before deleting
//! it (events.R.lines), checked against the record document of the same run.

use serde::Serialize;

use super::parse::Record;

/// Lines of one `record --events` file.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
pub struct Lines {
    pub total: u64,
    /// Lines of kind `fault`.
    pub faults: u64,
}

/// Parses `TOTAL FAULTS`, as guest/bench.sh writes it.
pub fn parse(text: &str) -> Option<Lines> {
    let mut it = text.split_whitespace().map(str::parse::<u64>);
    let (Some(Ok(total)), Some(Ok(faults)), None) = (it.next(), it.next(), it.next()) else {
        return None;
    };
    Some(Lines { total, faults })
}

/// Whether the file has a line for every fault the document counts: a
/// streamed file that drops events would make the mode look cheaper than it is.
/// Unknown counts (an old record without them) are not a failure.
pub fn check(lines: Option<Lines>, record: Option<&Record>) -> Result<(), String> {
    let Some(lines) = lines else {
        return Err("no events.R.lines: the events file was not written".to_owned());
    };
    match record.and_then(|r| r.faults) {
        Some(faults) if faults != lines.faults => Err(format!(
            "the events file has {} fault lines where record counted {faults} faults",
            lines.faults
        )),
        _ => Ok(()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_the_guest_counts() {
        assert_eq!(
            parse("16390 16384\n"),
            Some(Lines {
                total: 16390,
                faults: 16384
            })
        );
        assert_eq!(parse("16390"), None);
        assert_eq!(parse("a b"), None);
        assert_eq!(parse("1 2 3"), None);
    }

    #[test]
    fn fault_lines_must_match_the_record() {
        let record = Record {
            faults: Some(16384),
            ..Record::default()
        };
        let lines = |faults| {
            Some(Lines {
                total: faults + 6,
                faults,
            })
        };
        assert_eq!(check(lines(16384), Some(&record)), Ok(()));
        let short = check(lines(16000), Some(&record)).expect_err("a mismatch");
        assert!(
            short.contains("16000 fault lines where record counted 16384"),
            "{short}"
        );
        assert!(check(None, Some(&record)).is_err());
        // Nothing to compare with: not a failure.
        assert_eq!(check(lines(1), None), Ok(()));
        assert_eq!(check(lines(1), Some(&Record::default())), Ok(()));
    }
}
