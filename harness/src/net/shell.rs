//! The thin tokio shell around [`Stack`]: QEMU's `-netdev stream` connects
//! to a Unix socket the harness listens on (frames as a 4-byte big-endian
//! length and the frame, the framing QEMU's stream and socket netdevs
//! use); each flow of the stack is a loopback TCP connection to the
//! device's proxy lane; timers come from [`Stack::deadline`]; the radio is
//! QMP `set_link` on the board's netdev. A new connection on the socket is
//! a new QEMU process (a power cycle): the old board is gone.

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::time::Duration;

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::unix::OwnedWriteHalf;
use tokio::net::{TcpStream, UnixListener};
use tokio::sync::{mpsc, oneshot};
use tokio::time::Instant;

use super::fault::{NetFault, Wifi};
use super::stack::{Action, Config, FlowId, LaneEvent, Stack};
use crate::error::{Error, Result};
use crate::history::Recorder;
use crate::proxy::Lane;

/// The netdev id the board's NIC hangs on (QMP `set_link` names it).
pub const NETDEV: &str = "n0";
/// How long a roam keeps the link down before the new network answers.
const ROAM_GAP: Duration = Duration::from_millis(600);
/// How long a radio fault waits for a board that is still starting.
const QMP_WAIT: Duration = Duration::from_secs(5);
/// Largest frame accepted from QEMU (a jumbo frame would be a bug).
const MAX_FRAME: usize = 65536;

enum Cmd {
    Fault(NetFault, oneshot::Sender<std::result::Result<(), String>>),
}

/// A running network for one board. Dropping it stops it.
pub struct Network {
    cmds: mpsc::Sender<Cmd>,
    task: tokio::task::JoinHandle<()>,
    socket: PathBuf,
}

enum ConnCmd {
    Write(Vec<u8>),
    Shutdown,
    Reset,
}

impl Network {
    /// Listens on `socket` for QEMU and splices the board's connections to
    /// `lane`. `qmp` is the board's QMP socket, for the radio.
    pub async fn start(
        cfg: Config,
        socket: &Path,
        lane: Lane,
        recorder: Recorder,
        qmp: PathBuf,
    ) -> Result<Network> {
        let _ = std::fs::remove_file(socket);
        let listener = UnixListener::bind(socket).map_err(|e| {
            Error::io(
                format!("listening for the board's network on {}", socket.display()),
                e,
            )
        })?;
        let (cmds, rx) = mpsc::channel(16);
        let task = tokio::spawn(run(cfg, listener, lane, recorder, qmp, rx));
        Ok(Network {
            cmds,
            task,
            socket: socket.to_path_buf(),
        })
    }

    /// The socket QEMU's `-netdev stream` connects to.
    pub fn socket(&self) -> &Path {
        &self.socket
    }

    /// Applies a fault now; recorded in the history with its parameters.
    pub async fn apply(&self, fault: NetFault) -> std::result::Result<(), String> {
        let (tx, rx) = oneshot::channel();
        self.cmds
            .send(Cmd::Fault(fault, tx))
            .await
            .map_err(|_| "the board's network has stopped".to_string())?;
        rx.await
            .map_err(|_| "the board's network has stopped".to_string())?
    }

    pub async fn shutdown(self) {
        drop(self.cmds);
        let _ = tokio::time::timeout(Duration::from_secs(5), self.task).await;
        let _ = std::fs::remove_file(&self.socket);
    }
}

struct Shell {
    stack: Stack,
    start: Instant,
    lane: Lane,
    recorder: Recorder,
    qmp: PathBuf,
    link: Option<OwnedWriteHalf>,
    conns: HashMap<FlowId, mpsc::UnboundedSender<ConnCmd>>,
    lane_tx: mpsc::UnboundedSender<(FlowId, LaneEvent)>,
    /// A roam's link comes back at this time.
    roam_back: Option<Instant>,
}

async fn run(
    cfg: Config,
    listener: UnixListener,
    lane: Lane,
    recorder: Recorder,
    qmp: PathBuf,
    mut cmds: mpsc::Receiver<Cmd>,
) {
    let (lane_tx, mut lane_rx) = mpsc::unbounded_channel();
    let (frame_tx, mut frames) = mpsc::channel::<(u64, Option<Vec<u8>>)>(256);
    let mut sh = Shell {
        stack: Stack::new(cfg),
        start: Instant::now(),
        lane,
        recorder,
        qmp,
        link: None,
        conns: HashMap::new(),
        lane_tx,
        roam_back: None,
    };
    let mut generation = 0u64;
    loop {
        let deadline = sh
            .stack
            .deadline()
            .map(|d| sh.start + d)
            .into_iter()
            .chain(sh.roam_back)
            .min();
        let timer = async {
            match deadline {
                Some(t) => tokio::time::sleep_until(t).await,
                None => std::future::pending().await,
            }
        };
        tokio::select! {
            accepted = listener.accept() => {
                let Ok((stream, _)) = accepted else { continue };
                if sh.link.is_some() {
                    let a = sh.stack.board_gone();
                    let _ = sh.act(a).await;
                }
                generation += 1;
                let (mut rd, wr) = stream.into_split();
                sh.link = Some(wr);
                let tx = frame_tx.clone();
                let g = generation;
                tokio::spawn(async move {
                    loop {
                        let mut len = [0u8; 4];
                        if rd.read_exact(&mut len).await.is_err() {
                            break;
                        }
                        let n = u32::from_be_bytes(len) as usize;
                        if n > MAX_FRAME {
                            break;
                        }
                        let mut f = vec![0u8; n];
                        if rd.read_exact(&mut f).await.is_err() {
                            break;
                        }
                        if tx.send((g, Some(f))).await.is_err() {
                            return;
                        }
                    }
                    let _ = tx.send((g, None)).await;
                });
            }
            Some((g, frame)) = frames.recv() => {
                if g != generation {
                    continue;
                }
                match frame {
                    Some(f) => {
                        sh.stack.set_lane_refusing(sh.lane.refusing());
                        let now = sh.now();
                        let a = sh.stack.on_frame(now, &f);
                        let _ = sh.act(a).await;
                    }
                    None => {
                        sh.link = None;
                        let a = sh.stack.board_gone();
                        let _ = sh.act(a).await;
                    }
                }
            }
            Some((id, ev)) = lane_rx.recv() => {
                if ev == LaneEvent::Reset {
                    sh.conns.remove(&id);
                }
                let now = sh.now();
                let a = sh.stack.on_lane(now, id, ev);
                let _ = sh.act(a).await;
            }
            cmd = cmds.recv() => match cmd {
                None => break,
                Some(Cmd::Fault(f, reply)) => {
                    let a = sh.stack.apply(&f);
                    let r = sh.act(a).await;
                    if f == NetFault::Wifi(Wifi::Roam) && r.is_ok() {
                        sh.roam_back = Some(Instant::now() + ROAM_GAP);
                    }
                    let _ = reply.send(r);
                }
            },
            _ = timer => {
                if sh.roam_back.is_some_and(|t| t <= Instant::now()) {
                    sh.roam_back = None;
                    let a = sh.stack.radio_on_now();
                    if let Err(e) = sh.act(a).await {
                        tracing::warn!("bringing the radio back after a roam: {e}");
                    }
                }
                let now = sh.now();
                let a = sh.stack.on_timer(now);
                let _ = sh.act(a).await;
            }
        }
    }
}

impl Shell {
    fn now(&self) -> Duration {
        Instant::now() - self.start
    }

    async fn act(&mut self, actions: Vec<Action>) -> std::result::Result<(), String> {
        let mut result = Ok(());
        for a in actions {
            match a {
                Action::Send(f) => {
                    if let Some(link) = self.link.as_mut() {
                        let mut buf = Vec::with_capacity(4 + f.len());
                        buf.extend_from_slice(&(f.len() as u32).to_be_bytes());
                        buf.extend_from_slice(&f);
                        if link.write_all(&buf).await.is_err() {
                            self.link = None;
                        }
                    }
                }
                Action::Open(id) => {
                    let (tx, rx) = mpsc::unbounded_channel();
                    self.conns.insert(id, tx);
                    tokio::spawn(lane_conn(id, self.lane.addr(), rx, self.lane_tx.clone()));
                }
                Action::Write(id, d) => {
                    if let Some(c) = self.conns.get(&id) {
                        let _ = c.send(ConnCmd::Write(d));
                    }
                }
                Action::Shutdown(id) => {
                    if let Some(c) = self.conns.get(&id) {
                        let _ = c.send(ConnCmd::Shutdown);
                    }
                }
                Action::Reset(id) => {
                    if let Some(c) = self.conns.remove(&id) {
                        let _ = c.send(ConnCmd::Reset);
                    }
                }
                Action::Refused => self.lane.record_refused(),
                Action::Record(kind) => {
                    self.recorder.record(kind);
                }
                Action::Link(up) => {
                    if let Err(e) = set_link(&self.qmp, up).await {
                        result = Err(format!("the board's radio (QMP set_link): {e}"));
                    }
                }
            }
        }
        result
    }
}

/// QMP `set_link` on the board's NIC. A fault applied while QEMU is still
/// starting (a scenario's first step, an `observe` command typed at once)
/// waits, bounded, for its QMP socket to answer.
async fn set_link(qmp: &Path, up: bool) -> std::result::Result<(), String> {
    let cmd = format!(r#"{{"execute":"set_link","arguments":{{"name":"{NETDEV}","up":{up}}}}}"#);
    let deadline = Instant::now() + QMP_WAIT;
    loop {
        match crate::target::qemu::qmp_execute(qmp, &cmd).await {
            Err(e)
                if Instant::now() < deadline
                    && (!qmp.exists() || e.contains("Connection refused")) =>
            {
                tokio::time::sleep(Duration::from_millis(20)).await;
            }
            other => return other,
        }
    }
}

/// One flow's connection to the lane: what the stack writes goes in, what
/// the lane sends comes back as [`LaneEvent`]s.
async fn lane_conn(
    id: FlowId,
    addr: std::net::SocketAddr,
    mut rx: mpsc::UnboundedReceiver<ConnCmd>,
    tx: mpsc::UnboundedSender<(FlowId, LaneEvent)>,
) {
    let mut s = match TcpStream::connect(addr).await {
        Ok(s) => s,
        Err(_) => {
            let _ = tx.send((id, LaneEvent::Reset));
            return;
        }
    };
    let _ = s.set_nodelay(true);
    let mut buf = vec![0u8; 16 * 1024];
    let mut reading = true;
    let mut shut = false;
    loop {
        tokio::select! {
            r = s.read(&mut buf), if reading => match r {
                Ok(0) => {
                    reading = false;
                    let _ = tx.send((id, LaneEvent::Eof));
                    if shut {
                        return;
                    }
                }
                Ok(n) => {
                    let _ = tx.send((id, LaneEvent::Data(buf[..n].to_vec())));
                }
                Err(_) => {
                    let _ = tx.send((id, LaneEvent::Reset));
                    return;
                }
            },
            cmd = rx.recv() => match cmd {
                Some(ConnCmd::Write(d)) => {
                    if s.write_all(&d).await.is_err() {
                        let _ = tx.send((id, LaneEvent::Reset));
                        return;
                    }
                }
                Some(ConnCmd::Shutdown) => {
                    let _ = s.shutdown().await;
                    shut = true;
                    if !reading {
                        return;
                    }
                }
                Some(ConnCmd::Reset) => {
                    let _ = socket2::SockRef::from(&s).set_linger(Some(Duration::ZERO));
                    return;
                }
                // The flow is forgotten: keep reading until the lane ends.
                None if reading => {
                    if !shut {
                        let _ = s.shutdown().await;
                    }
                    loop {
                        match s.read(&mut buf).await {
                            Ok(0) | Err(_) => return,
                            Ok(_) => {}
                        }
                    }
                }
                None => return,
            },
        }
    }
}
