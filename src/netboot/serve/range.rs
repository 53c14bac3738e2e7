//! The one HTTP Range form resuming downloads need: `bytes=<start>-[<end>]`. Pure.

/// A satisfiable byte range `[start, end]` (inclusive) of a body of `len` bytes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ByteRange {
    pub start: u64,
    pub end: u64,
}

/// What to do with a request's Range header.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RangeAnswer {
    /// No usable range: send the whole body (200).
    Whole,
    /// Send this part (206).
    Part(ByteRange),
    /// Starts past the end (416).
    Unsatisfiable,
}

/// Interprets `Range` for a body of `len` bytes. Several ranges or suffix ranges are not
/// used by the agent and get the whole body, as RFC 9110 allows.
pub fn parse_range(header: Option<&str>, len: u64) -> RangeAnswer {
    let Some(spec) = header.and_then(|h| h.trim().strip_prefix("bytes=")) else {
        return RangeAnswer::Whole;
    };
    if spec.contains(',') {
        return RangeAnswer::Whole;
    }
    let Some((a, b)) = spec.split_once('-') else {
        return RangeAnswer::Whole;
    };
    let Ok(start) = a.trim().parse::<u64>() else {
        return RangeAnswer::Whole;
    };
    if start >= len {
        return RangeAnswer::Unsatisfiable;
    }
    let end = match b.trim() {
        "" => len - 1,
        e => match e.parse::<u64>() {
            Ok(e) if e >= start => e.min(len - 1),
            _ => return RangeAnswer::Whole,
        },
    };
    RangeAnswer::Part(ByteRange { start, end })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn forms() {
        assert_eq!(parse_range(None, 10), RangeAnswer::Whole);
        assert_eq!(
            parse_range(Some("bytes=4-"), 10),
            RangeAnswer::Part(ByteRange { start: 4, end: 9 })
        );
        assert_eq!(
            parse_range(Some("bytes=4-100"), 10),
            RangeAnswer::Part(ByteRange { start: 4, end: 9 })
        );
        assert_eq!(
            parse_range(Some("bytes=10-"), 10),
            RangeAnswer::Unsatisfiable
        );
        assert_eq!(parse_range(Some("bytes=-5"), 10), RangeAnswer::Whole);
        assert_eq!(parse_range(Some("bytes=0-1,4-5"), 10), RangeAnswer::Whole);
        assert_eq!(parse_range(Some("items=0-1"), 10), RangeAnswer::Whole);
    }
}
