//! pcapng files from histories the live tests do not produce (a PUBLISH
//! longer than a TCP segment, MQTT 5.0, a malformed frame), read by tshark:
//! its TCP reassembly and MQTT dissector must agree with what was recorded.

use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::SystemTime;

use bytes::Bytes;
use mqtt_hil::history::{CloseReason, ConnId, Dir, EventKind, Fate, History};
use mqtt_hil::mqtt::{Connect, Packet, Properties, Publish, QoS, Version};
use mqtt_hil::report::pcap;

fn tshark() -> PathBuf {
    std::env::split_paths(&std::env::var_os("PATH").unwrap())
        .map(|d| d.join("tshark"))
        .find(|f| f.is_file())
        .expect("`tshark` is not installed: install the Debian package `tshark` (make test-deps)")
}

fn fields(file: &Path, filter: &str, fields: &[&str]) -> Vec<String> {
    let mut cmd = Command::new(tshark());
    cmd.arg("-r").arg(file).args(["-Y", filter, "-T", "fields"]);
    for f in fields {
        cmd.args(["-e", f]);
    }
    let o = cmd.output().unwrap();
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    String::from_utf8_lossy(&o.stdout)
        .lines()
        .map(str::to_string)
        .collect()
}

fn packet(dir: Dir, packet: Packet) -> EventKind {
    EventKind::Packet {
        conn: ConnId(4),
        actor: "device".into(),
        dir,
        packet,
        // Encoded by the pcap writer from the model.
        raw: Bytes::new(),
        fate: Fate::Forwarded,
    }
}

#[test]
fn tshark_reassembles_long_packets_and_decodes_mqtt_5() {
    let big = "x".repeat(4000);
    let h = History::build()
        .push(EventKind::ConnOpened {
            conn: ConnId(4),
            actor: "device".into(),
        })
        .push(packet(
            Dir::ToBroker,
            Packet::Connect(Connect {
                version: Version::V5,
                client_id: "dut-5".into(),
                clean_start: true,
                keep_alive: 30,
                will: None,
                username: None,
                password: None,
                properties: Properties::default(),
            }),
        ))
        .push(packet(
            Dir::ToBroker,
            Packet::Publish(Publish {
                dup: false,
                qos: QoS::AtLeastOnce,
                retain: true,
                topic: "dut/big".into(),
                pid: Some(9),
                payload: Bytes::from(big.clone()),
                properties: Properties::default(),
            }),
        ))
        .push(EventKind::Malformed {
            conn: ConnId(4),
            actor: "device".into(),
            dir: Dir::ToClient,
            raw: Bytes::from_static(&[0xf0, 0x00]),
            error: "reserved packet type 15".into(),
        })
        .push(EventKind::ConnClosed {
            conn: ConnId(4),
            actor: "device".into(),
            reason: CloseReason::BrokerClosed,
        })
        .finish();
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("x.pcapng");
    std::fs::write(
        &file,
        pcap::pcapng(&pcap::frames(&h), SystemTime::now(), "test"),
    )
    .unwrap();
    let decoded = fields(
        &file,
        "mqtt",
        &[
            "mqtt.msgtype",
            "mqtt.ver",
            "mqtt.topic",
            "mqtt.msgid",
            "mqtt.len",
        ],
    );
    // The 4000-byte PUBLISH spans three segments; tshark puts it together.
    assert_eq!(
        decoded[..2],
        [
            "1\t5\t\t\t18".to_string(),
            "3\t\tdut/big\t9\t4012".to_string()
        ],
        "{decoded:?}"
    );
    assert!(fields(&file, "tcp.analysis.flags", &["frame.number"]).is_empty());
    // The malformed bytes are there, and the dissector says so.
    assert!(!fields(
        &file,
        "_ws.malformed || mqtt.msgtype == 15",
        &["frame.number"]
    )
    .is_empty());
}
