//! The one place that decides when the next attempt happens: the retry schedule, what a
//! receiver's `Retry-After` asks for, and when a webhook has failed long enough to be
//! disabled. Pure functions over times, so the rules are testable without a clock.

use std::time::{Duration, SystemTime};

use crate::model::Millis;

/// `Retry-After` is honoured up to this long.
pub const MAX_RETRY_AFTER: Duration = Duration::from_secs(3600);

/// The retry rules from `[delivery]`.
#[derive(Clone, Debug, serde::Serialize, serde::Deserialize)]
pub struct RetryPolicy {
    /// Delay before attempt 1..=N of a run; N is the number of attempts in a run.
    pub schedule: Vec<Duration>,
    pub disable_after: Duration,
}

impl RetryPolicy {
    /// When the first attempt of a (new) run is due.
    pub fn first_due(&self, now: Millis) -> Millis {
        now.saturating_add(self.schedule.first().copied().unwrap_or_default())
    }

    /// After a failed attempt that ended at `now` and was attempt number `made` of the
    /// current run: when the next one is due, or `None` when the run is exhausted.
    /// Each delay runs from the end of the previous attempt; a receiver's pause pushes
    /// the attempt back further, never earlier.
    pub fn next_due(
        &self,
        made: usize,
        now: Millis,
        paused_until: Option<Millis>,
    ) -> Option<Millis> {
        let delay = self.schedule.get(made)?;
        let due = now.saturating_add(*delay);
        Some(paused_until.map_or(due, |p| p.max(due)))
    }

    /// Whether a webhook whose failures began at `failing_since` (with no success since)
    /// has failed for long enough to be disabled.
    pub fn should_disable(&self, failing_since: Millis, now: Millis) -> bool {
        failing_since.saturating_add(self.disable_after) <= now
    }
}

/// Parses a `Retry-After` value: delta-seconds or an HTTP-date in any of the three forms
/// RFC 9110 §5.6.7 tells recipients to accept (IMF-fixdate, RFC 850, asctime), capped at
/// [`MAX_RETRY_AFTER`]. A date in the past means "now"; garbage means no pause.
pub fn parse_retry_after(value: &str, now: SystemTime) -> Option<Duration> {
    let value = value.trim();
    let wait = if let Ok(seconds) = value.parse::<u64>() {
        Duration::from_secs(seconds)
    } else {
        let at = httpdate::parse_http_date(value).ok()?;
        at.duration_since(now).unwrap_or(Duration::ZERO)
    };
    Some(wait.min(MAX_RETRY_AFTER))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn policy() -> RetryPolicy {
        RetryPolicy {
            schedule: ["0s", "1m", "5m", "30m", "2h"]
                .iter()
                .map(|s| crate::config::parse_duration(s).unwrap())
                .collect(),
            disable_after: Duration::from_secs(5 * 86400),
        }
    }

    #[test]
    fn follows_the_guide_schedule_then_stops() {
        let p = policy();
        let now = Millis(1_000_000);
        assert_eq!(p.first_due(now), now);
        assert_eq!(p.next_due(1, now, None), Some(Millis(1_000_000 + 60_000)));
        assert_eq!(p.next_due(2, now, None), Some(Millis(1_000_000 + 300_000)));
        assert_eq!(
            p.next_due(3, now, None),
            Some(Millis(1_000_000 + 1_800_000))
        );
        assert_eq!(
            p.next_due(4, now, None),
            Some(Millis(1_000_000 + 7_200_000))
        );
        assert_eq!(p.next_due(5, now, None), None, "five attempts in all");
    }

    #[test]
    fn a_pause_only_ever_delays() {
        let p = policy();
        let now = Millis(0);
        assert_eq!(
            p.next_due(1, now, Some(Millis(120_000))),
            Some(Millis(120_000))
        );
        assert_eq!(p.next_due(1, now, Some(Millis(10))), Some(Millis(60_000)));
    }

    #[test]
    fn disables_after_the_configured_time() {
        let p = policy();
        assert!(!p.should_disable(Millis(0), Millis(5 * 86_400_000 - 1)));
        assert!(p.should_disable(Millis(0), Millis(5 * 86_400_000)));
    }

    #[test]
    fn retry_after_in_both_forms_capped_at_an_hour() {
        let now = SystemTime::UNIX_EPOCH + Duration::from_secs(784_111_777); // Sun, 06 Nov 1994 08:49:37 GMT
        assert_eq!(
            parse_retry_after("120", now),
            Some(Duration::from_secs(120))
        );
        assert_eq!(parse_retry_after(" 0 ", now), Some(Duration::ZERO));
        assert_eq!(parse_retry_after("99999", now), Some(MAX_RETRY_AFTER));
        assert_eq!(
            parse_retry_after("Sun, 06 Nov 1994 08:51:37 GMT", now),
            Some(Duration::from_secs(120))
        );
        assert_eq!(
            parse_retry_after("Sun, 06 Nov 1994 08:00:00 GMT", now),
            Some(Duration::ZERO)
        );
        assert_eq!(
            parse_retry_after("Mon, 07 Nov 1994 08:49:37 GMT", now),
            Some(MAX_RETRY_AFTER)
        );
        // The two obsolete forms recipients must still accept (RFC 9110 §5.6.7).
        assert_eq!(
            parse_retry_after("Sunday, 06-Nov-94 08:51:37 GMT", now),
            Some(Duration::from_secs(120))
        );
        assert_eq!(
            parse_retry_after("Sun Nov  6 08:51:37 1994", now),
            Some(Duration::from_secs(120))
        );
        assert_eq!(parse_retry_after("soon", now), None);
        assert_eq!(parse_retry_after("-5", now), None);
    }
}
