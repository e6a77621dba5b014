//! `cargo bench --bench report`: what the reports cost for a long
//! scenario. A synthetic history of 10,000 events (2,000 QoS 1 messages from
//! the device to an observer: PUBLISH, PUBACK, PUBLISH, delivery, PUBACK,
//! with real encoded bytes) is rendered by each report, timed (best of 5)
//! and sized, side by side with the normalized trace every run already
//! renders, as a ratio. Takes a few seconds.

use std::sync::Arc;
use std::time::{Duration, Instant, SystemTime};

use bytes::Bytes;
use mqtt_hil::check::Verdict;
use mqtt_hil::history::{ConnId, Delivery, Dir, EventKind, Fate, History};
use mqtt_hil::mqtt::codec;
use mqtt_hil::mqtt::{Ack, Packet, Properties, Publish, QoS, Version};
use mqtt_hil::report::{html, junit, pcap, Finished};
use mqtt_hil::runner::{Outcome, Status};

const MESSAGES: usize = 2_000;

fn packet(conn: u32, actor: &str, dir: Dir, p: Packet) -> EventKind {
    EventKind::Packet {
        conn: ConnId(conn),
        actor: actor.into(),
        dir,
        raw: codec::encode(&p, Version::V311).expect("encodes"),
        packet: p,
        fate: Fate::Forwarded,
    }
}

fn history() -> History {
    let mut b = History::build()
        .push(EventKind::ConnOpened {
            conn: ConnId(1),
            actor: "device".into(),
        })
        .push(EventKind::ConnOpened {
            conn: ConnId(2),
            actor: "cloud".into(),
        });
    for i in 0..MESSAGES {
        let pid = (i % 60_000 + 1) as u16;
        let payload = Bytes::from(format!("reading-{i} {}", "x".repeat(40)));
        let publish = |pid| {
            Packet::Publish(Publish {
                dup: false,
                qos: QoS::AtLeastOnce,
                retain: false,
                topic: "dut/1/data".into(),
                pid: Some(pid),
                payload: payload.clone(),
                properties: Properties::default(),
            })
        };
        b = b
            .push(packet(1, "device", Dir::ToBroker, publish(pid)))
            .push(packet(
                1,
                "device",
                Dir::ToClient,
                Packet::PubAck(Ack::new(pid)),
            ))
            .push(packet(2, "cloud", Dir::ToClient, publish(pid)))
            .push(EventKind::Delivered {
                actor: "cloud".into(),
                msg: Delivery {
                    topic: "dut/1/data".into(),
                    payload: payload.clone(),
                    qos: QoS::AtLeastOnce,
                    retain: false,
                    dup: false,
                    properties: Default::default(),
                },
            })
            .push(packet(
                2,
                "cloud",
                Dir::ToBroker,
                Packet::PubAck(Ack::new(pid)),
            ));
    }
    b.finish()
}

/// Best of five runs, and the size of what it made.
fn time(f: impl Fn() -> usize) -> (Duration, usize) {
    let mut best = Duration::MAX;
    let mut size = 0;
    for _ in 0..5 {
        let t = Instant::now();
        size = std::hint::black_box(f());
        best = best.min(t.elapsed());
    }
    (best, size)
}

fn main() {
    let h = history();
    let events = h.events.len();
    let mut v = Verdict::new("exactly_once");
    v.fail("MQTT-4.3.3-2", "delivered twice", vec![10, 5000]);
    let outcome = Outcome {
        id: "long".into(),
        name: "a long scenario".into(),
        path: "scenarios/long.toml".into(),
        status: Status::Failed,
        failures: Vec::new(),
        verdicts: vec![v],
        history: h.clone(),
        duration: Duration::from_secs(60),
    };
    let finished = Arc::new(Finished::new(0, "mosquitto", outcome, SystemTime::now()));

    let (base, base_size) = time(|| mqtt_hil::trace::render("long", &h).len());
    let offending = finished.offending_events();
    let rows: Vec<(&str, (Duration, usize))> = vec![
        ("normalized trace (baseline)", (base, base_size)),
        (
            "SVG sequence diagram",
            time(|| html::svg::diagram(&h, &offending).len()),
        ),
        (
            "HTML scenario page (incl. SVG)",
            time(|| html::scenario(&finished, "index.html").len()),
        ),
        (
            "pcapng (frames + file)",
            time(|| pcap::pcapng(&pcap::frames(&h), SystemTime::now(), "long").len()),
        ),
        (
            "JUnit XML",
            time(|| junit::render(std::slice::from_ref(&finished)).len()),
        ),
    ];
    println!("report bench: one history of {events} events ({MESSAGES} QoS 1 messages)");
    println!(
        "{:<32} {:>10} {:>12} {:>10} {:>12}",
        "report", "time", "per event", "size", "vs trace"
    );
    for (name, (t, size)) in rows {
        println!(
            "{:<32} {:>8.1}ms {:>10.2}µs {:>8.2}MB {:>11.1}x",
            name,
            t.as_secs_f64() * 1e3,
            t.as_secs_f64() * 1e6 / events as f64,
            size as f64 / 1e6,
            t.as_secs_f64() / base.as_secs_f64()
        );
    }
}
