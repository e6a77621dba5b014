//! Topic names and filters: validation, wildcard matching and the shared
//! subscription prefixes. Pure functions; the checkers use them as the
//! reference for what a broker must deliver.

/// A parsed subscription filter: the part that matches topics, plus the share
/// group when the filter is a shared subscription.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Filter<'a> {
    /// `$share/<group>/...` (MQTT 5.0 and many 3.1.1 brokers) or `$queue/...`
    /// (a single implicit group, as some brokers offer).
    pub share_group: Option<&'a str>,
    pub pattern: &'a str,
}

/// Splits a shared-subscription prefix off a filter.
pub fn parse_filter(filter: &str) -> Filter<'_> {
    if let Some(rest) = filter.strip_prefix("$share/") {
        if let Some((group, pattern)) = rest.split_once('/') {
            return Filter {
                share_group: Some(group),
                pattern,
            };
        }
    }
    if let Some(pattern) = filter.strip_prefix("$queue/") {
        return Filter {
            share_group: Some("$queue"),
            pattern,
        };
    }
    Filter {
        share_group: None,
        pattern: filter,
    }
}

/// Does `filter` (wildcards `+` and `#`, share prefixes allowed) match the
/// topic name? Follows MQTT 3.1.1 §4.7: wildcards at the first level do not
/// match topics starting with `$` [MQTT-4.7.2-1].
pub fn matches(filter: &str, topic: &str) -> bool {
    let pattern = parse_filter(filter).pattern;
    if topic.starts_with('$') && (pattern.starts_with('+') || pattern.starts_with('#')) {
        return false;
    }
    let mut f = pattern.split('/');
    let mut t = topic.split('/');
    loop {
        match (f.next(), t.next()) {
            (Some("#"), _) => return true,
            (Some("+"), Some(_)) => {}
            (Some(a), Some(b)) if a == b => {}
            (None, None) => return true,
            _ => return false,
        }
    }
}

/// Why a topic name or filter is invalid, with the spec rule it breaks.
pub fn validate_filter(filter: &str) -> Result<(), String> {
    if filter.is_empty() {
        return Err("a topic filter must be at least one character [MQTT-4.7.3-1]".into());
    }
    let pattern = parse_filter(filter).pattern;
    let levels: Vec<&str> = pattern.split('/').collect();
    for (i, level) in levels.iter().enumerate() {
        if level.contains('#') && (*level != "#" || i + 1 != levels.len()) {
            return Err(format!(
                "`#` must be the last level and alone in it, in `{filter}` [MQTT-4.7.1-2]"
            ));
        }
        if level.contains('+') && *level != "+" {
            return Err(format!(
                "`+` must occupy a whole level, in `{filter}` [MQTT-4.7.1-3]"
            ));
        }
    }
    if filter.contains('\0') {
        return Err("a topic filter must not contain NUL [MQTT-4.7.3-2]".into());
    }
    fits_length("topic filter", filter)
}

/// Topics and filters are UTF-8 strings with a two-byte length prefix
/// [MQTT-1.5.3]; a longer one cannot be sent at all. (A Rust string is
/// valid UTF-8 already, which is the other half of that rule.)
fn fits_length(what: &str, s: &str) -> Result<(), String> {
    if s.len() > usize::from(u16::MAX) {
        return Err(format!(
            "a {what} is at most 65,535 bytes of UTF-8; this one is {} [MQTT-1.5.3]",
            s.len()
        ));
    }
    Ok(())
}

pub fn validate_topic(topic: &str) -> Result<(), String> {
    if topic.is_empty() {
        return Err("a topic name must be at least one character [MQTT-4.7.3-1]".into());
    }
    if topic.contains(['+', '#']) {
        return Err(format!(
            "a topic name must not contain wildcards, in `{topic}` [MQTT-3.3.2-2]"
        ));
    }
    if topic.contains('\0') {
        return Err("a topic name must not contain NUL [MQTT-4.7.3-2]".into());
    }
    fits_length("topic name", topic)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn wildcards_follow_the_spec_examples() {
        assert!(matches("sport/tennis/player1/#", "sport/tennis/player1"));
        assert!(matches(
            "sport/tennis/player1/#",
            "sport/tennis/player1/ranking"
        ));
        assert!(matches("sport/#", "sport"));
        assert!(matches("#", "a/b/c"));
        assert!(matches("sport/tennis/+", "sport/tennis/player1"));
        assert!(!matches("sport/tennis/+", "sport/tennis/player1/ranking"));
        assert!(matches("+/+", "/finance"));
        assert!(matches("/+", "/finance"));
        assert!(!matches("+", "/finance"));
        assert!(!matches("a/b", "a/b/c"));
        assert!(!matches("a/b/c", "a/b"));
    }

    #[test]
    fn dollar_topics_escape_leading_wildcards() {
        assert!(!matches("#", "$SYS/uptime"));
        assert!(!matches("+/uptime", "$SYS/uptime"));
        assert!(matches("$SYS/#", "$SYS/uptime"));
    }

    #[test]
    fn share_prefixes_are_stripped_for_matching() {
        assert_eq!(
            parse_filter("$share/g1/a/+"),
            Filter {
                share_group: Some("g1"),
                pattern: "a/+"
            }
        );
        assert!(matches("$share/g1/a/+", "a/b"));
        assert!(matches("$queue/jobs", "jobs"));
        assert_eq!(parse_filter("$queue/jobs").share_group, Some("$queue"));
    }

    #[test]
    fn invalid_filters_are_named_with_their_rule() {
        assert!(validate_filter("a/#/b").unwrap_err().contains("4.7.1-2"));
        assert!(validate_filter("a/b+").unwrap_err().contains("4.7.1-3"));
        assert!(validate_filter("").is_err());
        assert!(validate_filter("a/+/#").is_ok());
        assert!(validate_topic("a/+").is_err());
    }
}
