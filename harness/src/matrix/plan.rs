//! Which brokers a matrix covers and which cells one runner takes.

use crate::broker::container::{self, ImageRef, KNOWN};
use crate::broker::BrokerSpec;
use crate::error::{Error, Result};

/// One scenario against one broker.
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub struct Cell {
    pub scenario: String,
    pub broker: String,
}

/// `K/N`: this runner takes the K-th of N shares (1-based).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Partition {
    pub k: usize,
    pub n: usize,
}

impl std::str::FromStr for Partition {
    type Err = Error;

    fn from_str(s: &str) -> Result<Partition> {
        let bad = || {
            Error::Usage(format!(
                "--partition `{s}`: expected K/N with 1 <= K <= N, e.g. 2/4"
            ))
        };
        let (k, n) = s.split_once('/').ok_or_else(bad)?;
        let (k, n): (usize, usize) = (
            k.trim().parse().map_err(|_| bad())?,
            n.trim().parse().map_err(|_| bad())?,
        );
        if n == 0 || k == 0 || k > n {
            return Err(bad());
        }
        Ok(Partition { k, n })
    }
}

impl std::fmt::Display for Partition {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}/{}", self.k, self.n)
    }
}

impl Partition {
    pub const WHOLE: Partition = Partition { k: 1, n: 1 };

    /// The cells of this share: the cells in (scenario, broker) order,
    /// dealt round-robin, so every runner of a CI matrix computes the same
    /// split from the same inputs and the shares differ by at most one cell.
    /// Dealing goes scenario by scenario, so a slow broker's cells spread
    /// over all runners instead of landing on one.
    pub fn select(&self, mut cells: Vec<Cell>) -> Vec<Cell> {
        cells.sort();
        cells
            .into_iter()
            .enumerate()
            .filter(|(i, _)| i % self.n == self.k - 1)
            .map(|(_, c)| c)
            .collect()
    }
}

/// Every broker this machine can run, cheapest first: the mosquitto
/// process if installed, the embedded broker, and each known image that is
/// present on a reachable Docker engine. The second value lists what was
/// left out and why, for the report.
pub async fn available_brokers() -> (Vec<BrokerSpec>, Vec<String>) {
    let mut out = Vec::new();
    let mut missing = Vec::new();
    if crate::process::find_program("mosquitto").is_some() {
        out.push(BrokerSpec::Mosquitto);
    } else {
        missing.push("mosquitto: not installed (Debian package mosquitto)".into());
    }
    out.push(BrokerSpec::Embedded);
    match container::docker().await {
        Ok(docker) => {
            for k in KNOWN {
                let Some(repo) = k.repos.first() else {
                    continue;
                };
                let image = ImageRef {
                    repo: repo.to_string(),
                    tag: k.tags.first().unwrap_or(&"latest").to_string(),
                };
                if docker.inspect_image(&image.to_string()).await.is_ok() {
                    out.push(BrokerSpec::Container(image));
                } else if k.local {
                    missing.push(format!("container:{image}: not built (make images)"));
                }
            }
        }
        Err(e) => missing.push(format!("containers: {}", e.to_string().replace('\n', " "))),
    }
    (out, missing)
}

/// Parses `--brokers a,b,c`.
pub fn parse_brokers(list: &str) -> Result<Vec<BrokerSpec>> {
    let mut out: Vec<BrokerSpec> = Vec::new();
    for b in list.split(',').map(str::trim).filter(|b| !b.is_empty()) {
        let spec = BrokerSpec::resolve(b)?;
        if !out.contains(&spec) {
            out.push(spec);
        }
    }
    if out.is_empty() {
        return Err(Error::Usage("--brokers: name at least one broker".into()));
    }
    Ok(out)
}

/// `--profile NAME` for a matrix: the profile of its external brokers.
pub fn with_profile(brokers: Vec<BrokerSpec>, profile: Option<String>) -> Result<Vec<BrokerSpec>> {
    let Some(p) = profile else {
        return Ok(brokers);
    };
    if !brokers
        .iter()
        .any(|b| matches!(b, BrokerSpec::External { .. }))
    {
        return Err(Error::Usage(format!(
            "--profile {p} is for external brokers, and --brokers names none (external:HOST:PORT)"
        )));
    }
    brokers
        .into_iter()
        .map(|b| match b {
            BrokerSpec::External { .. } => b.with_profile(Some(p.clone())),
            other => Ok(other),
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn cells(scenarios: &[&str], brokers: &[&str]) -> Vec<Cell> {
        let mut v = Vec::new();
        for s in scenarios {
            for b in brokers {
                v.push(Cell {
                    scenario: s.to_string(),
                    broker: b.to_string(),
                });
            }
        }
        v
    }

    #[test]
    fn partitions_cover_every_cell_exactly_once_whatever_the_input_order() {
        let all = cells(&["a", "b", "c", "d", "e"], &["x", "y", "z"]);
        for n in 1..=7 {
            let mut seen = Vec::new();
            for k in 1..=n {
                let mut shuffled = all.clone();
                shuffled.reverse();
                let mine = Partition { k, n }.select(shuffled);
                let again = Partition { k, n }.select(all.clone());
                assert_eq!(mine, again, "share {k}/{n} depends on input order");
                assert!(mine.len() <= all.len().div_ceil(n));
                seen.extend(mine);
            }
            seen.sort();
            let mut want = all.clone();
            want.sort();
            assert_eq!(seen, want, "N={n}");
        }
    }

    #[test]
    fn partition_syntax() {
        assert_eq!(
            "2/4".parse::<Partition>().unwrap(),
            Partition { k: 2, n: 4 }
        );
        for bad in ["0/4", "5/4", "1/0", "x", "1/", "/2", "1-2"] {
            let e = bad.parse::<Partition>().unwrap_err().to_string();
            assert!(e.contains("expected K/N"), "{bad}: {e}");
        }
    }

    #[test]
    fn broker_lists() {
        let b = parse_brokers("mosquitto, embedded,container:nats,mosquitto").unwrap();
        assert_eq!(b.len(), 3);
        assert_eq!(b[2].to_string(), "container:nats");
        assert!(parse_brokers(" , ").is_err());
        assert!(parse_brokers("mosquito").is_err());
    }
}
