//! Kubernetes timestamps: `metav1.Time` (RFC 3339, seconds, UTC) and
//! `metav1.MicroTime`, and the short ages `kubectl get` shows.

use std::time::{Duration, SystemTime};

use flotilla_shared::model::{MicroTime, Time};
use time::OffsetDateTime;
use time::format_description::well_known::Rfc3339;

/// `t` as `metav1.Time`: `2026-11-21T14:16:28Z`.
pub fn format_time(t: SystemTime) -> Time {
    let seconds = OffsetDateTime::from(t)
        .replace_nanosecond(0)
        .unwrap_or(OffsetDateTime::UNIX_EPOCH);
    Time(seconds.format(&Rfc3339).unwrap_or_default())
}

/// `t` as `metav1.MicroTime`: `2026-11-21T14:16:28.123456Z`.
pub fn format_micro_time(t: SystemTime) -> MicroTime {
    let at = OffsetDateTime::from(t);
    let micros = at.microsecond() * 1000;
    let at = at.replace_nanosecond(micros).unwrap_or(at);
    MicroTime(at.format(&Rfc3339).unwrap_or_default())
}

/// Parses an RFC 3339 timestamp (`Time` or `MicroTime` text).
pub fn parse_time(text: &str) -> Option<SystemTime> {
    OffsetDateTime::parse(text, &Rfc3339)
        .ok()
        .map(SystemTime::from)
}

/// A duration as kubectl prints ages (`apimachinery`'s `HumanDuration`):
/// `45s`, `5m12s`, `3h4m`, `2d5h`, `400d`, `3y120d`.
pub fn human_duration(d: Duration) -> String {
    let seconds = d.as_secs();
    if seconds < 60 * 2 {
        return format!("{seconds}s");
    }
    let minutes = seconds / 60;
    if minutes < 10 {
        let s = seconds % 60;
        return if s == 0 {
            format!("{minutes}m")
        } else {
            format!("{minutes}m{s}s")
        };
    }
    if minutes < 60 * 3 {
        return format!("{minutes}m");
    }
    let hours = minutes / 60;
    if hours < 8 {
        let m = minutes % 60;
        return if m == 0 {
            format!("{hours}h")
        } else {
            format!("{hours}h{m}m")
        };
    }
    if hours < 48 {
        return format!("{hours}h");
    }
    if hours < 24 * 8 {
        let h = hours % 24;
        let days = hours / 24;
        return if h == 0 {
            format!("{days}d")
        } else {
            format!("{days}d{h}h")
        };
    }
    if hours < 24 * 365 * 2 {
        return format!("{}d", hours / 24);
    }
    if hours < 24 * 365 * 8 {
        let days = (hours / 24) % 365;
        let years = hours / 24 / 365;
        return if days == 0 {
            format!("{years}y")
        } else {
            format!("{years}y{days}d")
        };
    }
    format!("{}y", hours / 24 / 365)
}

/// The age of something created at `created`, as `kubectl get` shows it;
/// `<unknown>` for a missing or unreadable timestamp.
pub fn age(created: Option<&Time>, now: SystemTime) -> String {
    created
        .and_then(|t| parse_time(&t.0))
        .map(|at| human_duration(now.duration_since(at).unwrap_or_default()))
        .unwrap_or_else(|| "<unknown>".to_owned())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn times_round_trip_at_second_precision() {
        let t = SystemTime::UNIX_EPOCH + Duration::from_millis(1_795_000_000_123);
        let text = format_time(t);
        assert_eq!(text.0, "2026-11-18T11:06:40Z");
        assert_eq!(
            parse_time(&text.0),
            Some(SystemTime::UNIX_EPOCH + Duration::from_secs(1_795_000_000))
        );
        assert_eq!(format_micro_time(t).0, "2026-11-18T11:06:40.123Z");
    }

    #[test]
    fn ages_read_like_kubectl() {
        let cases = [
            (5, "5s"),
            (119, "119s"),
            (120, "2m"),
            (312, "5m12s"),
            (3600, "60m"),
            (3 * 3600 + 240, "3h4m"),
            (30 * 3600, "30h"),
            (2 * 86400 + 5 * 3600, "2d5h"),
            (400 * 86400, "400d"),
            (3 * 365 * 86400 + 120 * 86400, "3y120d"),
        ];
        for (seconds, want) in cases {
            assert_eq!(
                human_duration(Duration::from_secs(seconds)),
                want,
                "{seconds}s"
            );
        }
    }
}
