//! UTC days and months as the usage table's sort keys name them, and the time left in each.

use std::time::{SystemTime, UNIX_EPOCH};

/// The UTC day and month a moment falls in, as the table's sort keys name them.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Period {
    /// `YYYY-MM-DD`.
    pub day: String,
    /// `YYYY-MM`.
    pub month: String,
    /// Seconds until the day ends.
    pub day_left: u64,
    /// Seconds until the month ends.
    pub month_left: u64,
    /// The moment itself, in seconds since the epoch.
    pub now: u64,
}

impl Period {
    /// True when both moments fall in the same day (and so the same month).
    pub fn same_day(&self, other: &Self) -> bool {
        self.day == other.day
    }

    /// The period this moment is in.
    pub fn now() -> Self {
        Self::at(
            SystemTime::now()
                .duration_since(UNIX_EPOCH)
                .unwrap_or_default()
                .as_secs(),
        )
    }

    /// The period of a moment, in seconds since the epoch.
    pub fn at(epoch_seconds: u64) -> Self {
        let days = epoch_seconds / 86_400;
        let (year, month, day) = civil_from_days(days as i64);
        let (next_year, next_month) = if month == 12 { (year + 1, 1) } else { (year, month + 1) };
        let month_end = days_from_civil(next_year, next_month, 1) as u64 * 86_400;
        Self {
            day: format!("{year:04}-{month:02}-{day:02}"),
            month: format!("{year:04}-{month:02}"),
            day_left: (days + 1) * 86_400 - epoch_seconds,
            month_left: month_end - epoch_seconds,
            now: epoch_seconds,
        }
    }
}

/// Days since 1970-01-01 → (year, month, day), proleptic Gregorian (Howard Hinnant's
/// `civil_from_days`, http://howardhinnant.github.io/date_algorithms.html).
#[expect(
    clippy::cast_possible_truncation,
    reason = "day is 1..=31 and month 1..=12 by construction"
)]
fn civil_from_days(days: i64) -> (i64, u32, u32) {
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097);
    let yoe = (doe - doe / 1_460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let day = (doy - (153 * mp + 2) / 5 + 1) as u32;
    let month = if mp < 10 { mp + 3 } else { mp - 9 } as u32;
    let year = yoe + era * 400 + i64::from(month <= 2);
    (year, month, day)
}

/// The inverse: (year, month, day) → days since 1970-01-01.
fn days_from_civil(year: i64, month: u32, day: u32) -> i64 {
    let year = year - i64::from(month <= 2);
    let era = year.div_euclid(400);
    let yoe = year.rem_euclid(400);
    let month = i64::from(month);
    let doy = (153 * (if month > 2 { month - 3 } else { month + 9 }) + 2) / 5 + i64::from(day) - 1;
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    era * 146_097 + doe - 719_468
}

pub fn in_words(seconds: u64) -> String {
    let (days, hours, minutes) = (seconds / 86_400, seconds % 86_400 / 3_600, seconds % 3_600 / 60);
    match days {
        0 => format!("{hours} h {minutes} min"),
        _ => format!("{days} d {hours} h"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn periods_are_utc_days_and_months_with_the_time_left() {
        // 2026-11-26T16:00:00Z
        let p = Period::at(1_795_651_200 + 16 * 3_600);
        assert_eq!((p.day.as_str(), p.month.as_str()), ("2026-11-26", "2026-11"));
        assert_eq!(p.day_left, 8 * 3_600);
        assert_eq!(p.month_left, 4 * 86_400 + 8 * 3_600);
        // The last second of a leap-year February.
        let feb = Period::at(days_from_civil(2028, 3, 1) as u64 * 86_400 - 1);
        assert_eq!((feb.day.as_str(), feb.day_left, feb.month_left), ("2028-02-29", 1, 1));
        let december = Period::at(days_from_civil(2026, 12, 31) as u64 * 86_400);
        assert_eq!(december.month, "2026-12");
        assert_eq!(december.month_left, 86_400);
    }

    #[test]
    fn civil_dates_round_trip() {
        for days in [-1, 0, 59, 365, 10_957, 20_000, 20_783, 50_000] {
            let (y, m, d) = civil_from_days(days);
            assert_eq!(days_from_civil(y, m, d), days);
        }
        assert_eq!(civil_from_days(0), (1970, 1, 1));
    }

    #[test]
    fn time_left_reads_as_words() {
        assert_eq!(in_words(8 * 3_600 + 5 * 60), "8 h 5 min");
        assert_eq!(in_words(4 * 86_400 + 8 * 3_600), "4 d 8 h");
    }
}
