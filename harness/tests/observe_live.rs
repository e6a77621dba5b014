//! `observe`'s live checks (incremental ones on every event, the others at
//! observe::Pace: judged again after 10 % growth or 10 × the last
//! judgement's time, not every tick) on the recorded histories of
//! tests/fixtures/histories, fed one event at a time at their recorded
//! times: the verdicts at the end equal a full (batch) judgement of the
//! history by fresh checkers, every violation of that judgement was
//! printed (live or at the end), and on the bad histories some were printed
//! live, before the end.
use crate::check_util::*;
use mqtt_hil::check::{self, InvariantSpec, Verdict};
use mqtt_hil::observe::{default_checks, Live};

fn checks() -> Vec<InvariantSpec> {
    let mut c = default_checks();
    for extra in [
        r#"check = "exactly_once""#,
        "check = \"sequence\"\ntopic = \"#\"\nskip_unnumbered = true",
    ] {
        c.push(toml::from_str(extra).unwrap());
    }
    c
}

#[test]
fn paced_live_checks_end_with_the_full_judgement_on_every_recorded_history() {
    let dir = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/fixtures/histories");
    let mut names: Vec<String> = std::fs::read_dir(dir)
        .unwrap()
        .flatten()
        .map(|e| e.file_name().to_string_lossy().into_owned())
        .filter(|n| n.ends_with(".hist"))
        .collect();
    names.sort();
    assert!(names.len() >= 10, "{names:?}");
    let checks = checks();
    let (mut bad, mut shown_live) = (0, 0);
    for name in &names {
        let full = load_fixture(name);
        let mut live = Live::new(&checks);
        let mut printed = Vec::new();
        for ev in &full.events {
            printed.extend(live.feed(vec![ev.clone()], ev.at));
        }
        let during = printed.len();
        printed.extend(live.watch.fresh(&full));
        let mut batch = check::always();
        batch.extend(checks.iter().map(check::build));
        let expected: Vec<Verdict> = batch.iter().map(|c| c.check(&full)).collect();
        assert_eq!(live.watch.verdicts(&full), expected, "{name}");
        assert_eq!(
            live.history.events, full.events,
            "{name}: the appended copy differs"
        );
        for v in &expected {
            for x in &v.violations {
                let line = format!("VIOLATION {}: {x}", v.checker);
                // Printed once, when first seen; its message may have grown
                // since (a count), so match on checker and rule.
                let head = format!("VIOLATION {}: [{}]", v.checker, x.rule);
                assert!(
                    printed.iter().any(|p| p == &line || p.starts_with(&head)),
                    "{name}: `{line}` never printed; printed: {printed:?}"
                );
            }
        }
        if expected.iter().any(|v| !v.ok()) {
            bad += 1;
            if during > 0 {
                shown_live += 1;
            }
        }
    }
    assert!(bad >= 3, "only {bad} fixtures violate anything");
    assert!(shown_live > 0, "no violation was printed before the end");
}
