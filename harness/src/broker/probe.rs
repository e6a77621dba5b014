//! Is a broker ready? Only a real MQTT handshake says so: a port that accepts
//! TCP proves little (Docker's port proxy accepts before the broker inside
//! listens, RabbitMQ opens its port before its MQTT plugin is up), and log
//! lines differ per broker and version. [`connack`] sends a CONNECT and
//! waits for the CONNACK, then says goodbye with a DISCONNECT.

use std::net::SocketAddr;
use std::time::Duration;

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::time::Instant;

/// CONNECT, MQTT 3.1.1, clean session, keep alive 10s, client id
/// `mqtt-hil-probe-<pid>-<n>`: the one packet every broker in the matrix
/// accepts. The id is unique per probe, so probes of harness runs sharing
/// an external broker never take each other's sessions over.
fn connect_packet() -> Vec<u8> {
    static N: std::sync::atomic::AtomicU32 = std::sync::atomic::AtomicU32::new(0);
    let n = N.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
    let id = format!("mqtt-hil-probe-{}-{n}", std::process::id());
    let mut body = vec![0x00, 0x04, b'M', b'Q', b'T', b'T', 0x04, 0x02, 0x00, 0x0a];
    body.extend_from_slice(&(id.len() as u16).to_be_bytes());
    body.extend_from_slice(id.as_bytes());
    // Remaining length < 128: one byte (the id is at most ~40 bytes).
    let mut p = vec![0x10, body.len() as u8];
    p.extend(body);
    p
}
const DISCONNECT: &[u8] = &[0xe0, 0x00];

/// One CONNECT/CONNACK exchange within `timeout`. `Err` says what happened
/// instead (refused TCP, closed without CONNACK, a refusing return code).
pub async fn connack(addr: SocketAddr, timeout: Duration) -> Result<(), String> {
    let exchange = async {
        let mut s = tokio::net::TcpStream::connect(addr)
            .await
            .map_err(|e| format!("TCP connect: {e}"))?;
        s.write_all(&connect_packet())
            .await
            .map_err(|e| format!("sending CONNECT: {e}"))?;
        let mut ack = [0u8; 4];
        s.read_exact(&mut ack)
            .await
            .map_err(|e| format!("closed before CONNACK ({e})"))?;
        if ack[0] != 0x20 || ack[1] != 0x02 {
            return Err(format!("answered {ack:02x?} instead of a CONNACK"));
        }
        if ack[3] != 0 {
            return Err(format!(
                "CONNACK refused the probe (return code {})",
                ack[3]
            ));
        }
        // Goodbye as a client says it: DISCONNECT, then our FIN, then the
        // broker's close (briefly awaited), so its log shows a clean
        // disconnect rather than a connection lost.
        let _ = s.write_all(DISCONNECT).await;
        let _ = s.shutdown().await;
        let mut rest = [0u8; 64];
        let _ = tokio::time::timeout(Duration::from_millis(200), s.read(&mut rest)).await;
        Ok(())
    };
    match tokio::time::timeout(timeout, exchange).await {
        Ok(r) => r,
        Err(_) => Err(format!("no CONNACK within {}ms", timeout.as_millis())),
    }
}

/// Probes until a CONNACK comes or `deadline` passes; `alive` is asked
/// between attempts so a broker that died is reported at once, with its
/// own explanation, instead of after the whole wait. Returns the time the
/// first CONNACK took.
pub async fn wait_ready<F, Fut>(
    addr: SocketAddr,
    deadline: Duration,
    mut alive: F,
) -> Result<Duration, String>
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = Result<(), String>>,
{
    let started = Instant::now();
    let mut last = String::from("no attempt yet");
    while started.elapsed() < deadline {
        match connack(addr, Duration::from_secs(2)).await {
            Ok(()) => return Ok(started.elapsed()),
            Err(e) => last = e,
        }
        alive().await?;
        // Short enough that an in-process broker is seen within a few ms
        // of binding; a refused connect costs nothing.
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    Err(format!(
        "no MQTT CONNACK on {addr} within {}s (last attempt: {last})",
        deadline.as_secs()
    ))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn connect_packet_is_well_formed_and_unique() {
        let (a, b) = (connect_packet(), connect_packet());
        let p = crate::mqtt::codec::decode(&a, crate::mqtt::Version::V311).unwrap();
        let crate::mqtt::Packet::Connect(c) = p else {
            panic!("{p:?}")
        };
        assert!(
            c.client_id.starts_with("mqtt-hil-probe-"),
            "{}",
            c.client_id
        );
        assert_eq!(a[1] as usize, a.len() - 2);
        assert_ne!(a, b);
    }

    /// What a broker sees of a probe: CONNECT, then (after its CONNACK)
    /// DISCONNECT and the end of the stream — a whole session, nothing
    /// half-open for its log to complain about.
    #[tokio::test]
    async fn a_probe_is_a_whole_mqtt_session() {
        let l = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = l.local_addr().unwrap();
        let seen = tokio::spawn(async move {
            let (mut s, _) = l.accept().await.unwrap();
            let mut got = Vec::new();
            let mut buf = [0u8; 256];
            let mut acked = false;
            loop {
                let n = s.read(&mut buf).await.unwrap();
                if n == 0 {
                    break;
                }
                got.extend_from_slice(&buf[..n]);
                if !acked && got.len() >= 2 && got.len() >= got[1] as usize + 2 {
                    s.write_all(&[0x20, 0x02, 0x00, 0x00]).await.unwrap();
                    acked = true;
                }
            }
            got
        });
        connack(addr, Duration::from_secs(2)).await.unwrap();
        let got = seen.await.unwrap();
        let split = got[1] as usize + 2;
        let first = crate::mqtt::codec::decode(&got[..split], crate::mqtt::Version::V311).unwrap();
        assert_eq!(first.packet_type(), crate::mqtt::PacketType::Connect);
        assert_eq!(&got[split..], DISCONNECT, "then DISCONNECT and EOF");
    }

    #[tokio::test]
    async fn a_listener_that_never_answers_is_not_ready() {
        let l = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = l.local_addr().unwrap();
        let _keep = tokio::spawn(async move {
            let mut held = Vec::new();
            while let Ok((s, _)) = l.accept().await {
                held.push(s);
            }
        });
        let e = connack(addr, Duration::from_millis(300)).await.unwrap_err();
        assert!(e.contains("no CONNACK"), "{e}");
    }

    #[tokio::test]
    async fn a_listener_that_closes_at_once_is_not_ready() {
        let l = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = l.local_addr().unwrap();
        tokio::spawn(async move {
            while let Ok((s, _)) = l.accept().await {
                drop(s);
            }
        });
        let e = connack(addr, Duration::from_secs(2)).await.unwrap_err();
        assert!(e.contains("closed before CONNACK"), "{e}");
    }
}
