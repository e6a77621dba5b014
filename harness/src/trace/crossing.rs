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
//! - either is a CONNECT, DISCONNECT, AUTH or a malformed packet (they
//!   open, close or gate the session), or carries a proxy fate (`[held by
//!   proxy]` …: the harness chose when that happened).
//!
//! A CONNACK is not such a barrier: it comes after the CONNECT (a barrier)
//! and before the broker's later packets (same direction), but a client
//! may send further packets right after its CONNECT without waiting for
//! the CONNACK (MQTT 3.1.1 section 3.1.4, 5.0 section 3.1.4), so whether
//! the proxy reads those before or after the broker's CONNACK is a crossing
//! too. A client that waits for the CONNACK still shows as one: it cannot
//! send before the proxy has read the CONNACK it waits for.
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
//!
//! Before that, [`canonical`] folds every step that only waits (`expect`,
//! `wait`) into the action step before it. Such a step puts nothing on the
//! wire; what shows in its section is its action step's consequences (a
//! resend after a resumed session, an ack, a forwarded message), and
//! whether one lands before or after the harness moved on to the next
//! waiting step is the scheduler's: the harness ends an action step when the
//! wire has been quiet for a moment and nothing is owed, and an expect step
//! as soon as what it waits for has come. The fold keeps every line and,
//! for each actor's connection (and its client's reports), their order;
//! only which of those waiting sections a line fell into is left out. Any
//! line on the other side of an action step (the next connect, publish,
//! fault, reset) stays there, and a waiting step's verdict (`expect ok`)
//! stays in the fold of its action.
//!
//! And a client's own word for a connection the other end or the network
//! ended (`peer_closed` for an EOF, `io_error` for ECONNRESET or EPIPE) is
//! read as one, `lost`: whether a reset reaches the client's read or its
//! write first, after a FIN or before it, is the scheduler's and the OS's,
//! and how the connection really ended is on the wire line the proxy
//! records (`severed (RST)`, `closed by broker`), which is still compared.
//! The client's other reasons (a keep-alive timeout, a refused connect, its
//! own DISCONNECT, a reboot) are its behaviour and stay as they are.
//!
//! Likewise a device connection its board abandoned (open when a `board
//! reset` or `power_cycle` step ran) reads as `closed after the board's
//! reset`, whichever end the proxy saw close it: the broker on the takeover
//! when the device connects again, or the device's side when its network
//! stack met the rebooted board reusing the old connection's port (the
//! emulated board's user network closes it then). Either is the half-open
//! connection of a reset board ending; that it ends, and in which step, is
//! still compared, and so is every close of a connection the board did not
//! abandon.

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
    let barrier = matches!(kind, "CONNECT" | "DISCONNECT" | "AUTH" | "MALFORMED")
        || line.ends_with(" by proxy]");
    Some((
        (actor, conn),
        PacketLine {
            to_broker,
            id,
            barrier,
        },
    ))
}

/// `trace` with its waiting steps folded into their action steps and every
/// connection's crossings in the canonical order (see the module docs).
pub fn canonical(trace: &str) -> String {
    let folded: Vec<String> = fold_waiting_steps(&abandoned_by_reset(trace))
        .into_iter()
        .map(|l| lost_in_one_word(&l))
        .collect();
    let lines: Vec<&str> = folded.iter().map(String::as_str).collect();
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

/// A client report of a connection it did not end, in one word (see the
/// module docs); any other line as it is.
fn lost_in_one_word(line: &str) -> String {
    for word in ["peer_closed", "io_error"] {
        let report = format!("· disconnected reason={word}");
        if let Some(at) = line.find(&report) {
            let rest = &line[at + report.len()..];
            // The whole word only (not `io_errors`); a code may follow.
            if rest.is_empty() || rest.starts_with(' ') {
                return format!("{}· disconnected reason=lost{rest}", &line[..at]);
            }
        }
    }
    line.to_string()
}

/// The trace with the close line of every device connection its board
/// abandoned in one form (see the module docs). The renderer lists a
/// section's board lines after the device's, so a connection counts as
/// abandoned when it was open as the section with the reset began.
fn abandoned_by_reset(trace: &str) -> String {
    let lines: Vec<&str> = trace.lines().collect();
    let mut open: std::collections::BTreeSet<&str> = Default::default();
    let mut abandoned: std::collections::BTreeSet<&str> = Default::default();
    let mut out = Vec::with_capacity(lines.len());
    let mut i = 0;
    while i < lines.len() {
        // One section: its header (or the title) and its body.
        let end = (i + 1..lines.len())
            .find(|&j| !lines[j].starts_with(' '))
            .unwrap_or(lines.len());
        let section = &lines[i..end];
        let resets = section.iter().any(|l| {
            l.strip_prefix("  board ")
                .is_some_and(|w| matches!(w.trim(), "reset" | "power_cycle"))
        });
        if resets {
            abandoned.extend(open.iter().copied());
        }
        for l in section {
            let conn = l
                .strip_prefix("  device ")
                .map(str::trim_start)
                .and_then(|r| r.split_once(' '))
                .filter(|(c, _)| c.starts_with('#'));
            match conn {
                Some((c, "open")) => {
                    open.insert(c);
                    out.push(l.to_string());
                }
                Some((c, what)) if !what.starts_with("->") && !what.starts_with("<-") => {
                    open.remove(c);
                    if abandoned.contains(c)
                        && matches!(what, "closed by broker" | "closed by client")
                    {
                        out.push(l.replace(what, "closed after the board's reset"));
                    } else {
                        out.push(l.to_string());
                    }
                }
                _ => out.push(l.to_string()),
            }
        }
        i = end;
    }
    let mut s = out.join("\n");
    if trace.ends_with('\n') {
        s.push('\n');
    }
    s
}

/// A step that puts nothing on the wire: its section header reads
/// `step N: expect ...` or `step N: wait ...` (runner::outcome::summarize).
fn waits_only(header: &str) -> bool {
    header
        .strip_prefix("step ")
        .and_then(|rest| rest.split_once(": "))
        .is_some_and(|(_, what)| what.starts_with("expect ") || what.starts_with("wait "))
}

/// Where the renderer puts a body line within a section (trace::render's
/// lane, without the direction: each direction's order is kept by keeping
/// the lines' order): actor rank, actor, wire (0) or client report (1),
/// connection ordinal. `None` for a `(repeated)` marker, which belongs to
/// the line before it.
fn lane_of(line: &str) -> Option<(u8, &str, u8, usize)> {
    let rest = line.strip_prefix("  ")?;
    let (actor, rest) = rest.split_once(' ').unwrap_or((rest, ""));
    let rest = rest.trim_start();
    let (source, rest) = match rest.strip_prefix("· ") {
        Some(r) => (1, r),
        None => (0, rest),
    };
    if rest == "(repeated)" {
        return None;
    }
    let conn = match source {
        0 => rest
            .split(' ')
            .next()
            .and_then(|w| w.strip_prefix('#'))
            .and_then(|n| n.parse().ok())
            .unwrap_or(0),
        _ => 0,
    };
    Some((super::rank(actor), actor, source, conn))
}

/// The trace with every action step's section followed by the sections of
/// the waiting steps after it, folded into one: their headers, then all
/// their lines ordered by lane as the renderer orders one section's, each
/// lane's lines in their order, runs of identical lines folded again.
fn fold_waiting_steps(trace: &str) -> Vec<String> {
    let mut out: Vec<String> = Vec::new();
    let mut lines = trace.lines().peekable();
    // What precedes the first section (the title) stays as it is.
    while let Some(l) = lines.next_if(|l| l.starts_with(' ') || l.starts_with('#') || l.is_empty())
    {
        out.push(l.to_string());
    }
    while let Some(header) = lines.next() {
        let mut headers = vec![header];
        let mut body: Vec<&str> = Vec::new();
        loop {
            while let Some(l) = lines.next_if(|l| l.starts_with(' ') || l.is_empty()) {
                body.push(l);
            }
            match lines.peek() {
                Some(h) if waits_only(h) => headers.push(lines.next().expect("peeked")),
                _ => break,
            }
        }
        out.extend(headers.iter().map(|h| h.to_string()));
        if headers.len() == 1 {
            out.extend(body.iter().map(|l| l.to_string()));
            continue;
        }
        // Each line with its lane; a `(repeated)` marker takes its line's.
        let mut keyed = Vec::with_capacity(body.len());
        let mut last = None;
        for l in body {
            let lane = lane_of(l).or(last);
            last = lane;
            keyed.push((lane, l));
        }
        keyed.sort_by_key(|(lane, _)| *lane); // stable: each lane keeps its order
        let mut i = 0;
        while i < keyed.len() {
            let lane = keyed[i].0;
            let mut run: Vec<(&str, bool)> = Vec::new();
            while i < keyed.len() && keyed[i].0 == lane {
                let l = keyed[i].1;
                let marker = lane.is_some() && lane_of(l).is_none();
                match run.last_mut() {
                    // A repeat, marked or not: one line and one marker.
                    Some((prev, repeated)) if marker || *prev == l => *repeated = true,
                    _ => run.push((l, false)),
                }
                i += 1;
            }
            for (l, repeated) in run {
                out.push(l.to_string());
                if repeated {
                    // `  actor    ` as the line has it, then the marker.
                    let rest = l.trim_start().split_once(' ').map_or("", |(_, r)| r);
                    let prefix = &l[..l.len() - rest.trim_start().len()];
                    let mark = if rest.trim_start().starts_with("· ") {
                        "· "
                    } else {
                        ""
                    };
                    out.push(format!("{prefix}{mark}(repeated)"));
                }
            }
        }
    }
    out
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

    /// A client that does not wait for its CONNACK (the counter device
    /// after a reconnect): its PUBLISH and SUBSCRIBE and the broker's
    /// CONNACK cross, as the protocol allows.
    const EAGER: &str = "\
step 3: device connect
  device   #2 open
  device   #2 -> CONNECT v4 id=counter clean=1 ka=15
  device   #2 <- CONNACK sp=0 rc=0
  device   #2 -> PUBLISH c1 q1 dev/count \"1\"
  device   #2 -> SUBSCRIBE c2 [dev/cmd q1]
  device   #2 <- PUBACK c1
  device   #2 <- SUBACK c2 [1]
";

    #[test]
    fn a_client_may_send_before_its_connack_comes() {
        let early = EAGER.replace(
            "  device   #2 <- CONNACK sp=0 rc=0\n  device   #2 -> PUBLISH c1 q1 dev/count \"1\"\n  device   #2 -> SUBSCRIBE c2 [dev/cmd q1]\n",
            "  device   #2 -> PUBLISH c1 q1 dev/count \"1\"\n  device   #2 -> SUBSCRIBE c2 [dev/cmd q1]\n  device   #2 <- CONNACK sp=0 rc=0\n",
        );
        assert_ne!(early, EAGER);
        assert!(equivalent(&early, EAGER), "{}", canonical(&early));
        let between = swap(
            EAGER,
            "#2 <- CONNACK sp=0 rc=0",
            "#2 -> PUBLISH c1 q1 dev/count \"1\"",
        );
        assert!(equivalent(&between, EAGER), "{}", canonical(&between));
    }

    #[test]
    fn a_connack_still_keeps_the_orders_the_protocol_fixes() {
        // A client packet before its CONNECT is another connection's life.
        let before_connect = swap(
            EAGER,
            "#2 -> CONNECT v4 id=counter clean=1 ka=15",
            "#2 -> PUBLISH c1 q1 dev/count \"1\"",
        );
        assert!(!equivalent(&before_connect, EAGER));
        // The broker's CONNACK after its own PUBACK: same direction.
        let late_connack = EAGER
            .replace("  device   #2 <- CONNACK sp=0 rc=0\n", "")
            .replace(
                "  device   #2 <- SUBACK c2 [1]\n",
                "  device   #2 <- SUBACK c2 [1]\n  device   #2 <- CONNACK sp=0 rc=0\n",
            );
        assert!(
            !equivalent(&late_connack, EAGER),
            "{}",
            canonical(&late_connack)
        );
        // An answer still comes after its request, CONNACK or not.
        let early_puback = swap(EAGER, "#2 <- CONNACK sp=0 rc=0", "#2 <- PUBACK c1");
        assert!(
            !equivalent(&early_puback, EAGER),
            "{}",
            canonical(&early_puback)
        );
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

    /// qos2_out_cut_after_pubrec as reviewed: the resumed session's resend,
    /// its PUBCOMP and the cloud's delivery all in the reconnect step.
    const RESUMED: &str = "\
step 6: net sever on device
  device   #1 severed (RST)
  device   · disconnected reason=io_error
  net      sever on device
step 7: device connect expecting session_present=true
  device   #2 open
  device   #2 -> CONNECT v4 id=dut-o2 clean=0 ka=60
  device   #2 <- CONNACK sp=1 rc=0
  device   #2 -> PUBREL c1
  device   #2 <- PUBCOMP c1
  cloud    #1 <- PUBLISH b1 q2 dut/o2/data \"m1\"
  cloud    #1 -> PUBREC b1
  cloud    #1 <- PUBREL b1
  cloud    #1 -> PUBCOMP b1
  cloud    · delivered dut/o2/data \"m1\" q2
step 8: expect 1 PUBCOMP to client on device's connection
  expect   ok: 1 PUBCOMP to client on device's connection
step 9: expect cloud receives 1 message(s) on dut/o2/data \"m1\"
  expect   ok: cloud receives 1 message(s) on dut/o2/data \"m1\"
step 10: wait 500ms
";

    /// The same run on a loaded machine: the reconnect step went quiet
    /// before the resend, so it and what follows from it landed in the
    /// expect steps' sections.
    const RESUMED_LATE: &str = "\
step 6: net sever on device
  device   #1 severed (RST)
  device   · disconnected reason=io_error
  net      sever on device
step 7: device connect expecting session_present=true
  device   #2 open
  device   #2 -> CONNECT v4 id=dut-o2 clean=0 ka=60
  device   #2 <- CONNACK sp=1 rc=0
step 8: expect 1 PUBCOMP to client on device's connection
  device   #2 -> PUBREL c1
  device   #2 <- PUBCOMP c1
  cloud    #1 <- PUBLISH b1 q2 dut/o2/data \"m1\"
  expect   ok: 1 PUBCOMP to client on device's connection
step 9: expect cloud receives 1 message(s) on dut/o2/data \"m1\"
  cloud    #1 -> PUBREC b1
  cloud    #1 <- PUBREL b1
  cloud    #1 -> PUBCOMP b1
  cloud    · delivered dut/o2/data \"m1\" q2
  expect   ok: cloud receives 1 message(s) on dut/o2/data \"m1\"
step 10: wait 500ms
";

    #[test]
    fn consequences_landing_in_a_waiting_step_are_the_same_trace() {
        assert_ne!(RESUMED, RESUMED_LATE);
        assert!(
            equivalent(RESUMED, RESUMED_LATE),
            "{}\n---\n{}",
            canonical(RESUMED),
            canonical(RESUMED_LATE)
        );
        // Nothing is lost in the fold: every line is still there.
        assert_eq!(
            canonical(RESUMED_LATE).lines().count(),
            RESUMED_LATE.lines().count()
        );
    }

    /// The fold leaves open only which waiting section a line fell into:
    /// each of these genuinely wrong orders still differs.
    #[test]
    fn wrong_orders_around_waiting_steps_still_differ() {
        // The resend before the CONNECT: no session to resend in yet.
        let before_connect = RESUMED_LATE
            .replace("  device   #2 -> PUBREL c1\n", "")
            .replace(
                "  device   #2 -> CONNECT",
                "  device   #2 -> PUBREL c1\n  device   #2 -> CONNECT",
            );
        assert!(!equivalent(&before_connect, RESUMED));
        // (The resend read before the CONNACK is a crossing: a client may
        // send right after its CONNECT; see the module docs.)
        let before_connack = RESUMED_LATE
            .replace("  device   #2 -> PUBREL c1\n", "")
            .replace(
                "  device   #2 <- CONNACK sp=1 rc=0\n",
                "  device   #2 -> PUBREL c1\n  device   #2 <- CONNACK sp=1 rc=0\n",
            );
        assert!(equivalent(&before_connack, RESUMED));
        // The PUBCOMP before the PUBREL it answers, across the sections.
        let answer_first = RESUMED_LATE
            .replace("  device   #2 <- PUBCOMP c1\n", "")
            .replace(
                "  device   #2 <- CONNACK sp=1 rc=0\n",
                "  device   #2 <- CONNACK sp=1 rc=0\n  device   #2 <- PUBCOMP c1\n",
            );
        assert!(!equivalent(&answer_first, RESUMED));
        // A resend on the old connection, before the sever (an action step):
        // a device that resent without reconnecting.
        let before_sever = RESUMED.replace("  device   #2 -> PUBREL c1\n", "").replace(
            "  device   #1 severed (RST)\n",
            "  device   #1 -> PUBREL c1\n  device   #1 severed (RST)\n",
        );
        assert!(!equivalent(&before_sever, RESUMED));
        // What lands after the next action step is not folded back: with a
        // publish as step 9, the cloud's whole exchange landing there (after
        // the device's next publish went out) differs.
        let next_action = RESUMED.replace("step 9: expect", "step 9: device publish");
        let cloud: String = RESUMED
            .lines()
            .filter(|l| l.starts_with("  cloud "))
            .map(|l| format!("{l}\n"))
            .collect();
        let moved = next_action.replace(&cloud, "").replace(
            "  expect   ok: cloud receives",
            &format!("{cloud}  expect   ok: cloud receives"),
        );
        assert_ne!(moved, next_action);
        assert!(!equivalent(&moved, &next_action));
        // A second delivery of the message during the last wait: a
        // duplicate, not a late line.
        let duplicate = format!(
            "{RESUMED}  cloud    #1 <- PUBLISH b1 q2 dut/o2/data \"m1\" dup\n  cloud    · delivered dut/o2/data \"m1\" q2\n"
        );
        assert!(!equivalent(&duplicate, RESUMED));
        // A failed expectation is not the same trace as a passed one.
        let failed = RESUMED_LATE.replace("expect   ok: 1 PUBCOMP", "expect   FAILED: 1 PUBCOMP");
        assert!(!equivalent(&failed, RESUMED));
    }

    #[test]
    fn repeated_lines_fold_across_waiting_steps() {
        let one = "\
step 3: device connect
  device   #1 refused
  device   (repeated)
  device   · disconnected reason=connect_failed
  device   · (repeated)
step 4: wait 2s
";
        let split = "\
step 3: device connect
  device   #1 refused
  device   · disconnected reason=connect_failed
step 4: wait 2s
  device   #1 refused
  device   (repeated)
  device   · disconnected reason=connect_failed
";
        assert!(equivalent(one, split), "{}", canonical(split));
        // But once is not several times.
        let once = "\
step 3: device connect
  device   #1 refused
  device   · disconnected reason=connect_failed
step 4: wait 2s
";
        assert!(!equivalent(one, once));
    }

    #[test]
    fn a_clients_word_for_a_lost_connection_is_not_compared() {
        let reset = RESUMED;
        let eof = RESUMED.replace("reason=io_error", "reason=peer_closed");
        assert!(equivalent(reset, &eof), "{}", canonical(&eof));
        // How the connection ended is still compared, on the wire line.
        let closed = eof.replace("#1 severed (RST)", "#1 closed by broker");
        assert!(!equivalent(reset, &closed));
        // And the client's other reasons are its behaviour.
        let timeout = RESUMED.replace("reason=io_error", "reason=keepalive_timeout");
        assert!(!equivalent(reset, &timeout));
        let refused = RESUMED.replace("reason=io_error", "reason=connect_failed");
        assert!(!equivalent(reset, &refused));
    }

    /// reboot_loop on the emulated board behind a pty: after the third
    /// reset the old connection was closed from the device's side (the
    /// board reused its port) instead of by the broker's takeover.
    #[test]
    fn who_closes_a_connection_its_board_abandoned_is_not_compared() {
        let reviewed = "\
step 6: device connect expecting session_present=true
  device   #2 closed by broker
  device   #3 open
  device   #3 -> CONNECT v4 id=dut-l1 clean=0 ka=60
  device   #3 <- CONNACK sp=1 rc=0
step 7: board reset
  board    reset
step 8: device connect expecting session_present=true
  device   #3 closed by broker
  device   #4 open
  device   #4 -> CONNECT v4 id=dut-l1 clean=0 ka=60
  device   #4 <- CONNACK sp=1 rc=0
";
        let by_device = reviewed.replace("#3 closed by broker", "#3 closed by client");
        assert!(
            equivalent(reviewed, &by_device),
            "{}",
            canonical(&by_device)
        );
        // That it ends, and where, is compared: not at all, or a step later
        // (after an action step) differs.
        let never = reviewed.replace("  device   #3 closed by broker\n", "");
        assert!(!equivalent(reviewed, &never));
        let later = format!(
            "{never}step 9: device publish t \"x\" qos=0\n  device   #3 closed by broker\n"
        );
        let reviewed_then = format!("{reviewed}step 9: device publish t \"x\" qos=0\n");
        assert!(!equivalent(&reviewed_then, &later));
        // A connection the board did not abandon: who closed it is behaviour.
        let no_reset = by_device.replace("step 7: board reset\n  board    reset\n", "");
        let no_reset_reviewed = reviewed.replace("step 7: board reset\n  board    reset\n", "");
        assert!(!equivalent(&no_reset_reviewed, &no_reset));
        // Nor is a connection opened after the reset, or one severed.
        let after = reviewed.replace(
            "  device   #4 <- CONNACK sp=1 rc=0\n",
            "  device   #4 <- CONNACK sp=1 rc=0\n  device   #4 closed by broker\n",
        );
        let after_by_device = after.replace("#4 closed by broker", "#4 closed by client");
        assert!(!equivalent(&after, &after_by_device));
        let severed = reviewed.replace("#3 closed by broker", "#3 severed (RST)");
        assert!(!equivalent(reviewed, &severed));
    }
}
