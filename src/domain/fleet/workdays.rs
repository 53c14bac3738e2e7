//! Working days in France, for the delivery-conformity deadline (HdF: quantities, models,
//! serial numbers and working order are checked within 5 working days of delivery).

use chrono::{Datelike, Days, NaiveDate, Weekday};

/// Days the Région gives to check a delivery.
pub const CONFORMITY_WORKING_DAYS: u32 = 5;

/// Easter Sunday (anonymous Gregorian algorithm).
pub fn easter(year: i32) -> NaiveDate {
    let a = year % 19;
    let b = year / 100;
    let c = year % 100;
    let d = b / 4;
    let e = b % 4;
    let f = (b + 8) / 25;
    let g = (b - f + 1) / 3;
    let h = (19 * a + b - d - g + 15) % 30;
    let i = c / 4;
    let k = c % 4;
    let l = (32 + 2 * e + 2 * i - h - k) % 7;
    let m = (a + 11 * h + 22 * l) / 451;
    let month = (h + l - 7 * m + 114) / 31;
    let day = (h + l - 7 * m + 114) % 31 + 1;
    NaiveDate::from_ymd_opt(year, month as u32, day as u32).unwrap_or_default()
}

/// Whether `d` is a French public holiday (metropolitan France).
pub fn is_public_holiday(d: NaiveDate) -> bool {
    let fixed = [
        (1, 1),
        (5, 1),
        (5, 8),
        (7, 14),
        (8, 15),
        (11, 1),
        (11, 11),
        (12, 25),
    ];
    if fixed.contains(&(d.month(), d.day())) {
        return true;
    }
    let e = easter(d.year());
    [1u64, 39, 50]
        .iter()
        .any(|&n| e.checked_add_days(Days::new(n)) == Some(d))
}

pub fn is_working_day(d: NaiveDate) -> bool {
    !matches!(d.weekday(), Weekday::Sat | Weekday::Sun) && !is_public_holiday(d)
}

/// The `n`-th working day after `from` (not counting `from` itself).
pub fn add_working_days(from: NaiveDate, n: u32) -> NaiveDate {
    let mut d = from;
    let mut left = n;
    while left > 0 {
        d = d.succ_opt().unwrap_or(d);
        if is_working_day(d) {
            left -= 1;
        }
    }
    d
}

/// The last day to report a non-conforming delivery received on `delivered`.
pub fn conformity_deadline(delivered: NaiveDate) -> NaiveDate {
    add_working_days(delivered, CONFORMITY_WORKING_DAYS)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn d(s: &str) -> NaiveDate {
        NaiveDate::parse_from_str(s, "%Y-%m-%d").unwrap()
    }

    #[test]
    fn easter_dates() {
        assert_eq!(easter(2024), d("2024-03-31"));
        assert_eq!(easter(2025), d("2025-04-20"));
        assert_eq!(easter(2027), d("2027-03-28"));
    }

    #[test]
    fn deadline_skips_weekends_and_holidays() {
        // Thursday 28 Oct 2027 → Fri 29, Tue 2 Nov (Mon 1 is Toussaint), Wed 3, Thu 4, Fri 5.
        assert_eq!(conformity_deadline(d("2027-10-28")), d("2027-11-05"));
        // Monday 8 Nov 2027 → Tue 9, Wed 10, Fri 12 (11 Nov), Mon 15, Tue 16.
        assert_eq!(conformity_deadline(d("2027-11-08")), d("2027-11-16"));
        assert!(is_public_holiday(d("2025-05-29"))); // Ascension 2025
        assert!(!is_working_day(d("2025-06-09"))); // Whit Monday 2025
    }
}
