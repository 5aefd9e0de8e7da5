//! Dates, durations and HTML text as Spark's UI writes them.

/// The REST API's date: `2026-11-29T08:59:28.000GMT` (Spark's `yyyy-MM-dd'T'HH:mm:ss.SSS'GMT'`).
pub fn api_date(ms: u64) -> String {
    let u = ember::Time::from_millis(ms).utc();
    format!(
        "{:04}-{:02}-{:02}T{:02}:{:02}:{:02}.{:03}GMT",
        u.year, u.month, u.day, u.hour, u.minute, u.second, u.millis
    )
}

/// The pages' date: `2026/11/29 08:59:28` (UTC), as Spark's batch tables show batch times.
pub fn page_date(ms: u64) -> String {
    let u = ember::Time::from_millis(ms).utc();
    format!("{:04}/{:02}/{:02} {:02}:{:02}:{:02}", u.year, u.month, u.day, u.hour, u.minute, u.second)
}

/// A duration as Spark's `UIUtils.formatDuration` writes it: `16 ms`, `0.4 s`, `6 s`, `1.5 min`.
pub fn duration(ms: u64) -> String {
    if ms < 100 {
        return format!("{ms} ms");
    }
    let s = ms as f64 / 1000.0;
    if s < 1.0 {
        return format!("{s:.1} s");
    }
    if s < 60.0 {
        return format!("{s:.0} s");
    }
    let min = s / 60.0;
    if min < 10.0 {
        return format!("{min:.1} min");
    }
    if min < 60.0 {
        return format!("{min:.0} min");
    }
    format!("{:.1} h", min / 60.0)
}

/// An optional duration; `-` when unknown, as Spark's tables show it.
pub fn opt_duration(ms: Option<u64>) -> String {
    ms.map_or_else(|| "-".to_owned(), duration)
}

/// Text made safe for HTML content and attribute values.
pub fn esc(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for c in s.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' => out.push_str("&quot;"),
            '\'' => out.push_str("&#39;"),
            c => out.push(c),
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn dates_as_spark_writes_them() {
        // Values read from Spark's own REST API (tests/golden/spark/batch.json).
        assert_eq!(api_date(1_795_942_768_000), "2026-11-29T08:59:28.000GMT");
        assert_eq!(api_date(0), "1970-01-01T00:00:00.000GMT");
        assert_eq!(api_date(951_782_400_123), "2000-02-29T00:00:00.123GMT");
        assert_eq!(page_date(1_795_942_768_000), "2026/11/29 08:59:28");
    }

    #[test]
    fn durations_as_spark_writes_them() {
        assert_eq!(duration(16), "16 ms");
        assert_eq!(duration(366), "0.4 s");
        assert_eq!(duration(6040), "6 s");
        assert_eq!(duration(90_000), "1.5 min");
        assert_eq!(duration(7_200_000), "2.0 h");
        assert_eq!(esc("<a href=\"x\">&'"), "&lt;a href=&quot;x&quot;&gt;&amp;&#39;");
    }
}
