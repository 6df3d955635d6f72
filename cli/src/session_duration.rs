//! How long `unlock` keeps a key: `30s`, `15m`, `8h`, `1d`.

use std::time::Duration;

/// Parses `30s`, `15m`, `8h`, `1d` (or a bare number of seconds).
pub fn parse_duration(text: &str) -> Result<Duration, String> {
    let (number, unit) = match text.find(|c: char| !c.is_ascii_digit()) {
        Some(at) => text.split_at(at),
        None => (text, "s"),
    };
    let n: u64 = number
        .parse()
        .map_err(|_| format!("{text:?}: a number and a unit: 30s, 15m, 8h, 1d"))?;
    let seconds = match unit {
        "s" => Some(n),
        "m" => n.checked_mul(60),
        "h" => n.checked_mul(3600),
        "d" => n.checked_mul(86_400),
        _ => None,
    }
    .filter(|&s| (1..=7 * 86_400).contains(&s))
    .ok_or_else(|| format!("{text:?}: from 1s to 7d (30s, 15m, 8h, 1d)"))?;
    Ok(Duration::from_secs(seconds))
}

#[cfg(test)]
mod tests {
    use super::parse_duration;

    #[test]
    fn durations() {
        assert_eq!(parse_duration("90").unwrap().as_secs(), 90);
        assert_eq!(parse_duration("15m").unwrap().as_secs(), 900);
        assert_eq!(parse_duration("8h").unwrap().as_secs(), 28_800);
        assert_eq!(parse_duration("1d").unwrap().as_secs(), 86_400);
        for bad in [
            "",
            "m",
            "0s",
            "8d",
            "1w",
            "-1m",
            "1.5h",
            "99999999999999999999d",
        ] {
            assert!(parse_duration(bad).is_err(), "{bad}");
        }
    }
}
