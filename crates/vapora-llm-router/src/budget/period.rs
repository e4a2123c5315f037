//! Budget periods: calendar periods in UTC (`daily` from 00:00, `weekly`
//! from Monday 00:00, `monthly` from the 1st at 00:00).

use chrono::{DateTime, Datelike, Duration as ChronoDuration, NaiveTime, TimeZone, Utc};
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "lowercase")]
pub enum Period {
    Daily,
    Weekly,
    Monthly,
}

impl Period {
    /// Start of the period containing `t`.
    pub fn start_of(self, t: DateTime<Utc>) -> DateTime<Utc> {
        let midnight = |d: chrono::NaiveDate| Utc.from_utc_datetime(&d.and_time(NaiveTime::MIN));
        let day = t.date_naive();
        match self {
            Self::Daily => midnight(day),
            Self::Weekly => midnight(day - ChronoDuration::days(day.weekday().num_days_from_monday() as i64)),
            Self::Monthly => midnight(day.with_day(1).expect("every month has a 1st")),
        }
    }

    /// Start of the next period after the one starting at `start`.
    pub fn end_of(self, start: DateTime<Utc>) -> DateTime<Utc> {
        match self {
            Self::Daily => start + ChronoDuration::days(1),
            Self::Weekly => start + ChronoDuration::days(7),
            Self::Monthly => {
                let d = start.date_naive();
                let (y, m) = if d.month() == 12 {
                    (d.year() + 1, 1)
                } else {
                    (d.year(), d.month() + 1)
                };
                Utc.with_ymd_and_hms(y, m, 1, 0, 0, 0)
                    .single()
                    .expect("valid date")
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn at(s: &str) -> DateTime<Utc> {
        s.parse().unwrap()
    }

    #[test]
    fn period_boundaries_are_utc_calendar_periods() {
        let t = at("2026-11-21T15:30:00Z"); // a Saturday
        assert_eq!(Period::Daily.start_of(t), at("2026-11-21T00:00:00Z"));
        assert_eq!(Period::Weekly.start_of(t), at("2026-11-16T00:00:00Z"));
        assert_eq!(Period::Monthly.start_of(t), at("2026-11-01T00:00:00Z"));
        assert_eq!(
            Period::Monthly.end_of(at("2026-12-01T00:00:00Z")),
            at("2027-01-01T00:00:00Z")
        );
        assert_eq!(
            Period::Weekly.end_of(at("2026-11-16T00:00:00Z")),
            at("2026-11-23T00:00:00Z")
        );
    }
}
