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
/// `mqtt-hil-probe`: the one packet every broker in the matrix accepts.
const CONNECT: &[u8] = &[
    0x10, 26, // CONNECT, remaining length
    0x00, 0x04, b'M', b'Q', b'T', b'T', // protocol name
    0x04, // level 4 = 3.1.1
    0x02, // clean session
    0x00, 0x0a, // keep alive
    0x00, 14, b'm', b'q', b't', b't', b'-', b'h', b'i', b'l', b'-', b'p', b'r', b'o', b'b', b'e',
];
const DISCONNECT: &[u8] = &[0xe0, 0x00];

/// One CONNECT/CONNACK exchange within `timeout`. `Err` says what happened
/// instead (refused TCP, closed without CONNACK, a refusing return code).
pub async fn connack(addr: SocketAddr, timeout: Duration) -> Result<(), String> {
    let exchange = async {
        let mut s = tokio::net::TcpStream::connect(addr)
            .await
            .map_err(|e| format!("TCP connect: {e}"))?;
        s.write_all(CONNECT)
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
        let _ = s.write_all(DISCONNECT).await;
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
    fn connect_packet_is_well_formed() {
        let p = crate::mqtt::codec::decode(CONNECT, crate::mqtt::Version::V311).unwrap();
        assert_eq!(p.packet_type(), crate::mqtt::PacketType::Connect);
        assert_eq!(CONNECT[1] as usize, CONNECT.len() - 2);
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
