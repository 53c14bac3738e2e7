//! Ages and dates on the command line: `6months`, `180days`, `2weeks`, `1year`, or a date.

use chrono::{DateTime, Days, Months, NaiveDate, Utc};

/// `now` minus an age like `6months`; `None` when the text is not an age.
pub fn before(now: DateTime<Utc>, age: &str) -> Option<DateTime<Utc>> {
    let age = age.trim();
    let split = age.find(|c: char| !c.is_ascii_digit())?;
    let (n, unit) = age.split_at(split);
    let n: u32 = n.parse().ok()?;
    match unit.trim() {
        "d" | "day" | "days" => now.checked_sub_days(Days::new(n.into())),
        "w" | "week" | "weeks" => now.checked_sub_days(Days::new(u64::from(n) * 7)),
        "m" | "month" | "months" => now.checked_sub_months(Months::new(n)),
        "y" | "year" | "years" => now.checked_sub_months(Months::new(n.checked_mul(12)?)),
        _ => None,
    }
}

/// A `--since`: a date (`2026-09-01`, midnight UTC) or an age (`7days`).
pub fn since(now: DateTime<Utc>, text: &str) -> Option<DateTime<Utc>> {
    match NaiveDate::parse_from_str(text.trim(), "%Y-%m-%d") {
        Ok(d) => Some(d.and_hms_opt(0, 0, 0)?.and_utc()),
        Err(_) => before(now, text),
    }
}

/// How the audit log compares times (same format as it stores them).
pub fn stamp(t: DateTime<Utc>) -> String {
    t.to_rfc3339_opts(chrono::SecondsFormat::Millis, true)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ages_and_dates() {
        let now = NaiveDate::from_ymd_opt(2026, 11, 22)
            .and_then(|d| d.and_hms_opt(12, 0, 0))
            .expect("now")
            .and_utc();
        assert_eq!(
            stamp(before(now, "6months").expect("age")),
            "2026-05-22T12:00:00.000Z"
        );
        assert_eq!(
            stamp(before(now, "2weeks").expect("age")),
            "2026-11-08T12:00:00.000Z"
        );
        assert_eq!(
            stamp(before(now, "1year").expect("age")),
            "2025-11-22T12:00:00.000Z"
        );
        assert_eq!(
            stamp(since(now, "2026-09-01").expect("date")),
            "2026-09-01T00:00:00.000Z"
        );
        assert!(before(now, "six months").is_none());
        assert!(before(now, "6 fortnights").is_none());
    }
}
