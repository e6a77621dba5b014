//! `mqtt-hil splice ADDR`: copies stdin to a TCP connection and the
//! connection to stdout. QEMU's `guestfwd=...-cmd:` runs one per guest
//! connection, which is how the emulated board reaches the fault proxy on
//! loopback, and how reconnects get a fresh path each time.

use tokio::io::AsyncWriteExt;

use crate::error::{Error, Result};

pub async fn run(addr: &str) -> Result<i32> {
    let ip: std::net::SocketAddr = addr
        .parse()
        .map_err(|_| Error::Usage(format!("splice: `{addr}` is not IP:PORT")))?;
    if !ip.ip().is_loopback() {
        return Err(Error::Usage(format!(
            "splice: {addr} is not a loopback address; the emulated board may only reach the harness"
        )));
    }
    let stream = tokio::net::TcpStream::connect(ip)
        .await
        .map_err(|e| Error::io(format!("splice: connecting to {addr}"), e))?;
    let _ = stream.set_nodelay(true);
    let (mut rd, mut wr) = stream.into_split();
    let mut stdin = tokio::io::stdin();
    let mut stdout = tokio::io::stdout();
    let up = async {
        let _ = tokio::io::copy(&mut stdin, &mut wr).await;
        let _ = wr.shutdown().await;
    };
    let down = async {
        let _ = tokio::io::copy(&mut rd, &mut stdout).await;
        let _ = stdout.flush().await;
    };
    // Either side ending ends the guest's connection. Exit at once: the
    // runtime would otherwise wait for its blocking stdin reader, and QEMU
    // only tells the guest the connection is gone when this process ends.
    tokio::select! {
        _ = up => {},
        _ = down => {},
    }
    std::process::exit(0)
}
