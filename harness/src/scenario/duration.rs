//! Durations as scenario files write them: `250ms`, `2s`, `1.5s`, `1m`.

use std::time::Duration;

pub fn parse(s: &str) -> Result<Duration, String> {
    let s = s.trim();
    let split = s
        .find(|c: char| !(c.is_ascii_digit() || c == '.'))
        .ok_or_else(|| format!("`{s}` has no unit: write e.g. `500ms`, `2s` or `1m`"))?;
    let (num, unit) = s.split_at(split);
    let value: f64 = num
        .parse()
        .map_err(|_| format!("`{s}` is not a number followed by a unit (e.g. `1.5s`)"))?;
    let scale = match unit.trim() {
        "ms" => 0.001,
        "s" => 1.0,
        "m" | "min" => 60.0,
        other => {
            return Err(format!(
                "unknown time unit `{other}` in `{s}`: use ms, s or m"
            ))
        }
    };
    let secs = value * scale;
    if !secs.is_finite() || secs > 86_400.0 {
        return Err(format!("`{s}` is out of range (at most a day)"));
    }
    Ok(Duration::from_secs_f64(secs))
}

/// The inverse, for messages and traces: the shortest exact form.
pub fn format(d: Duration) -> String {
    let ms = d.as_millis();
    if ms.is_multiple_of(1000) {
        format!("{}s", ms / 1000)
    } else {
        format!("{ms}ms")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_units_and_fractions() {
        assert_eq!(parse("250ms").unwrap(), Duration::from_millis(250));
        assert_eq!(parse("2s").unwrap(), Duration::from_secs(2));
        assert_eq!(parse("1.5s").unwrap(), Duration::from_millis(1500));
        assert_eq!(parse("1m").unwrap(), Duration::from_secs(60));
        assert!(parse("5").unwrap_err().contains("no unit"));
        assert!(parse("5h").unwrap_err().contains("unknown time unit"));
        assert_eq!(format(Duration::from_millis(1500)), "1500ms");
        assert_eq!(format(Duration::from_secs(3)), "3s");
    }
}
