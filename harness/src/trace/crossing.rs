//! Comparing rendered traces without the orders the wire leaves open.
//!
//! On one connection the proxy records the client's packets and the
//! broker's packets as it reads them from two sockets. When the device
//! sends `PUBACK b1` while the broker is already sending `PUBLISH b2`, the
//! two cross on the wire, and which one the proxy reads first is the
//! scheduler's doing: both orders are the same behaviour. [`canonical`]
//! rewrites every connection's run of packet lines into one order chosen
//! from what the protocol fixes, so that two traces that differ only by
//! such crossings compare equal, and any other difference still shows.
//!
//! Two packet lines of the same connection keep their order (are
//! *dependent*) when:
//! - they go the same way (TCP keeps each direction in order);
//! - they name the same packet id (`c1`, `b2`: ids are already renumbered
//!   per namespace, so this is a request and its response, or a response
//!   and the reuse of its id after it);
//! - either is a CONNECT, CONNACK, DISCONNECT, AUTH or a malformed packet
//!   (they open, close or gate the session), or carries a proxy fate
//!   (`[held by proxy]` …: the harness chose when that happened).
//!
//! Everything else in opposite directions is independent: a crossing. The
//! canonical order is the lexicographic normal form of that partial order
//! (trace theory's): repeatedly take the earliest line nothing pending
//! depends on, the client's (`->`) before the broker's (`<-`) when both
//! are free. Since at most one line per direction can be free at a time,
//! the result depends only on the partial order, not on which crossing the
//! run happened to record. Lines that are not packets (opening, closing,
//! keep alive, client reports, other actors) stay where they are and end a
//! run. The rendering itself is untouched: traces read as recorded, and
//! only comparisons use this.

use std::path::Path;

/// One packet line of a run, as far as ordering goes.
struct PacketLine<'a> {
    to_broker: bool,
    /// The renumbered packet id (`c1`, `b3`), if the packet has one.
    id: Option<&'a str>,
    /// Ordered against everything on its connection.
    barrier: bool,
}

impl PacketLine<'_> {
    fn depends_on(&self, other: &PacketLine) -> bool {
        self.to_broker == other.to_broker
            || self.barrier
            || other.barrier
            || (self.id.is_some() && self.id == other.id)
    }
}

/// Reads `  ACTOR    #N -> TYPE [ID] …` into its lane (actor and
/// connection) and ordering facts; anything else is not a packet line.
fn parse(line: &str) -> Option<((&str, &str), PacketLine<'_>)> {
    let rest = line.strip_prefix("  ")?;
    let (actor, rest) = rest.split_once(' ')?;
    let mut words = rest.trim_start().split(' ');
    let conn = words.next()?.strip_prefix('#')?;
    let to_broker = match words.next()? {
        "->" => true,
        "<-" => false,
        _ => return None,
    };
    let kind = words.next()?;
    let id = words.next().filter(|w| {
        let mut c = w.chars();
        matches!(c.next(), Some('c' | 'b'))
            && !c.as_str().is_empty()
            && c.as_str().chars().all(|d| d.is_ascii_digit())
    });
    let barrier = matches!(
        kind,
        "CONNECT" | "CONNACK" | "DISCONNECT" | "AUTH" | "MALFORMED"
    ) || line.ends_with(" by proxy]");
    Some((
        (actor, conn),
        PacketLine {
            to_broker,
            id,
            barrier,
        },
    ))
}

/// `trace` with every connection's crossings in the canonical order (see
/// the module docs).
pub fn canonical(trace: &str) -> String {
    let lines: Vec<&str> = trace.lines().collect();
    let mut out: Vec<&str> = Vec::with_capacity(lines.len());
    let mut i = 0;
    while i < lines.len() {
        let Some((lane, _)) = parse(lines[i]) else {
            out.push(lines[i]);
            i += 1;
            continue;
        };
        let mut run = Vec::new();
        while let Some((l, p)) = lines.get(i).and_then(|l| parse(l)) {
            if l != lane {
                break;
            }
            run.push((lines[i], p));
            i += 1;
        }
        out.extend(normal_form(&run));
    }
    let mut s = out.join("\n");
    if trace.ends_with('\n') {
        s.push('\n');
    }
    s
}

/// The lexicographic normal form of one connection's run.
fn normal_form<'a>(run: &[(&'a str, PacketLine)]) -> Vec<&'a str> {
    let mut done = vec![false; run.len()];
    let mut out = Vec::with_capacity(run.len());
    while out.len() < run.len() {
        let free =
            |j: usize| !done[j] && (0..j).all(|k| done[k] || !run[j].1.depends_on(&run[k].1));
        let pick = (0..run.len())
            .filter(|&j| free(j))
            .min_by_key(|&j| (!run[j].1.to_broker, j))
            .expect("a partial order always has a minimal element");
        done[pick] = true;
        out.push(run[pick].0);
    }
    out
}

/// Whether two traces show the same behaviour, crossings aside.
pub fn equivalent(a: &str, b: &str) -> bool {
    canonical(a) == canonical(b)
}

/// For a snapshot test: the reviewed snapshot's own text when `trace`
/// differs from it only by crossings, else `trace`, so that insta passes
/// on the former and shows the real difference on the latter. `snap` is
/// the `.snap` file (it may not exist yet).
pub fn as_reviewed(trace: String, snap: &Path) -> String {
    let Ok(file) = std::fs::read_to_string(snap) else {
        return trace;
    };
    // insta's file: `---`, a YAML header, `---`, then the snapshot.
    let Some(body) = file
        .strip_prefix("---\n")
        .and_then(|rest| rest.split_once("\n---\n"))
        .map(|(_, body)| body)
    else {
        return trace;
    };
    if body.trim_end() != trace.trim_end() && equivalent(body.trim_end(), trace.trim_end()) {
        body.to_string()
    } else {
        trace
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const RECORDED: &str = "\
step 7: device connect
  device   #2 open
  device   #2 -> CONNECT v4 id=dut-s1 clean=0 ka=60
  device   #2 <- CONNACK sp=1 rc=0
  device   #2 <- PUBLISH b1 q1 t/a \"x\"
  device   #2 <- PUBLISH b2 q2 t/b \"y\"
  device   #2 -> PUBACK b1
  device   #2 -> PUBREC b2
  device   #2 <- PUBREL b2
  device   #2 -> PUBCOMP b2
  device   · delivered t/a \"x\" q1
";

    fn swap(trace: &str, a: &str, b: &str) -> String {
        trace.replace(a, "\u{0}").replace(b, a).replace('\u{0}', b)
    }

    #[test]
    fn a_crossing_on_one_connection_is_the_same_trace() {
        // The device's PUBACK left before the broker's next PUBLISH came in.
        let crossed = swap(RECORDED, "#2 <- PUBLISH b2 q2 t/b \"y\"", "#2 -> PUBACK b1");
        assert_ne!(crossed, RECORDED);
        assert!(equivalent(&crossed, RECORDED), "{}", canonical(&crossed));
        assert_eq!(canonical(&crossed), canonical(RECORDED));
        // The normal form keeps every line and each direction's order.
        assert_eq!(
            canonical(RECORDED).lines().count(),
            RECORDED.lines().count()
        );
    }

    #[test]
    fn orders_the_protocol_fixes_still_differ() {
        // Same direction: the broker's two PUBLISHes reversed.
        let reversed = swap(
            RECORDED,
            "#2 <- PUBLISH b1 q1 t/a \"x\"",
            "#2 <- PUBLISH b2 q2 t/b \"y\"",
        );
        assert!(!equivalent(&reversed, RECORDED));
        // A response before its request: PUBREC b2 before PUBLISH b2.
        let early_ack = RECORDED
            .replace("  device   #2 -> PUBREC b2\n", "")
            .replace(
                "  device   #2 <- PUBLISH b2",
                "  device   #2 -> PUBREC b2\n  device   #2 <- PUBLISH b2",
            );
        assert!(
            !equivalent(&early_ack, RECORDED),
            "{}",
            canonical(&early_ack)
        );
        // Nothing crosses CONNACK: a PUBLISH before it is another session.
        let before_connack = swap(RECORDED, "#2 <- CONNACK sp=1 rc=0", "#2 -> PUBACK b1");
        assert!(!equivalent(&before_connack, RECORDED));
    }

    #[test]
    fn other_lanes_and_connections_do_not_mix() {
        // The same two lines on different connections are not a crossing
        // the normal form may undo: the lane ends the run.
        let a = "  device   #1 <- PUBLISH b1 q0 t \"x\"\n  device   #2 -> PUBLISH q0 t \"y\"\n";
        let b = "  device   #2 -> PUBLISH q0 t \"y\"\n  device   #1 <- PUBLISH b1 q0 t \"x\"\n";
        assert!(!equivalent(a, b));
        // Actor reports and proxy fates are not reordered.
        let held = "  device   #1 <- PUBLISH b1 q1 t \"x\"\n  device   #1 -> PUBLISH c1 q1 u \"y\" [held by proxy]\n";
        let held_first = "  device   #1 -> PUBLISH c1 q1 u \"y\" [held by proxy]\n  device   #1 <- PUBLISH b1 q1 t \"x\"\n";
        assert!(!equivalent(held, held_first));
        let plain = held.replace(" [held by proxy]", "");
        let plain_first = held_first.replace(" [held by proxy]", "");
        assert!(equivalent(&plain, &plain_first));
    }

    #[test]
    fn a_snapshot_that_differs_only_by_a_crossing_is_taken_as_reviewed() {
        let dir = tempfile::tempdir().unwrap();
        let snap = dir.path().join("x.snap");
        std::fs::write(&snap, format!("---\nsource: t\n---\n{RECORDED}")).unwrap();
        let crossed = swap(RECORDED, "#2 <- PUBLISH b2 q2 t/b \"y\"", "#2 -> PUBACK b1");
        assert_eq!(as_reviewed(crossed, &snap), RECORDED);
        let reversed = swap(
            RECORDED,
            "#2 <- PUBLISH b1 q1 t/a \"x\"",
            "#2 <- PUBLISH b2 q2 t/b \"y\"",
        );
        assert_eq!(as_reviewed(reversed.clone(), &snap), reversed);
        assert_eq!(
            as_reviewed("new".into(), &dir.path().join("missing.snap")),
            "new"
        );
    }
}
