//! The container backend for real, on this machine's Docker engine: a run
//! against a locally built image passes, and after success, failure, a
//! scenario timeout and Ctrl-C nothing named `mqtt-hil-…` is left (checked
//! with the engine's own list, as `docker ps -a --filter name=mqtt-hil-`
//! would). A missing image and a broker that dies at start are explained.
//!
//! Needs Docker and `make images`. With MQTT_HIL_REQUIRE_DOCKER=1 (CI) a
//! missing engine or image fails these tests; without it they print SKIPPED
//! with the reason and return.

use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};
use std::time::{Duration, Instant};

fn root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("..")
}

fn bin() -> Command {
    let mut c = Command::new(env!("CARGO_BIN_EXE_mqtt-hil"));
    c.current_dir(root())
        // One scenario at a time, as the tests not about -j expect.
        .env("MQTT_HIL_JOBS", "1");
    c
}

/// Whether Docker and the image are here; panics where CI demands them.
fn docker_ready(image: &str) -> bool {
    let required = std::env::var("MQTT_HIL_REQUIRE_DOCKER").is_ok_and(|v| v == "1");
    let engine = Command::new("docker")
        .args(["info", "--format", "{{.ServerVersion}}"])
        .output()
        .is_ok_and(|o| o.status.success());
    let why = if !engine {
        "no Docker engine answers".to_string()
    } else if !Command::new("docker")
        .args(["image", "inspect", image])
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status()
        .is_ok_and(|s| s.success())
    {
        format!("image {image} is missing (make images)")
    } else {
        return true;
    };
    assert!(!required, "MQTT_HIL_REQUIRE_DOCKER=1 but {why}");
    eprintln!("SKIPPED: {why}; set MQTT_HIL_REQUIRE_DOCKER=1 to make this a failure");
    println!("SKIPPED: {why}");
    false
}

/// Runs `f`, then removes every container and network this process made,
/// also when `f` panics: a failed assertion must not leave brokers running.
fn swept<F: std::future::Future>(rt: &tokio::runtime::Runtime, f: F) -> F::Output {
    let r = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| rt.block_on(f)));
    rt.block_on(mqtt_hil::broker::container::sweep());
    r.unwrap_or_else(|p| std::panic::resume_unwind(p))
}

/// Runs `f` on a fresh runtime with the image `image` names, swept after
/// ([`swept`]); does nothing (or fails, where Docker is required) when
/// the image or the engine is missing ([`docker_ready`]).
fn on_image<F, Fut>(image: &str, f: F)
where
    F: FnOnce(mqtt_hil::broker::container::ImageRef) -> Fut,
    Fut: std::future::Future<Output = ()>,
{
    if !docker_ready(image) {
        return;
    }
    let image = mqtt_hil::broker::container::ImageRef::parse(image).unwrap();
    let rt = tokio::runtime::Runtime::new().unwrap();
    swept(&rt, f(image));
}

/// Containers and networks named for process `pid`, as the engine lists them.
fn leftovers(pid: u32) -> Vec<String> {
    let prefix = format!("mqtt-hil-{pid}-");
    let mut out = Vec::new();
    for args in [
        &["ps", "-a", "--format", "{{.Names}}", "--filter"][..],
        &["network", "ls", "--format", "{{.Name}}", "--filter"][..],
    ] {
        let o = Command::new("docker")
            .args(args)
            .arg(format!("name={prefix}"))
            .output()
            .unwrap();
        out.extend(
            String::from_utf8_lossy(&o.stdout)
                .lines()
                .filter(|l| l.starts_with(&prefix))
                .map(String::from),
        );
    }
    out
}

fn run(args: &[&str]) -> (Output, u32) {
    let out = tempfile::tempdir().unwrap();
    let child = bin()
        .args(args)
        .arg("--out")
        .arg(out.path())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let pid = child.id();
    (child.wait_with_output().unwrap(), pid)
}

fn text(o: &Output) -> String {
    format!(
        "{}\n{}",
        String::from_utf8_lossy(&o.stdout),
        String::from_utf8_lossy(&o.stderr)
    )
}

#[test]
fn a_passing_run_in_a_container_leaves_nothing() {
    if !docker_ready("mqtt-hil/mosquitto") {
        return;
    }
    let (o, pid) = run(&[
        "run",
        "scenarios/qos1_delivery.toml",
        "--broker",
        "container:mosquitto",
    ]);
    assert_eq!(o.status.code(), Some(0), "{}", text(&o));
    assert!(text(&o).contains("PASS  qos1_delivery"), "{}", text(&o));
    assert_eq!(leftovers(pid), Vec::<String>::new());
}

#[test]
fn a_failing_run_in_a_container_leaves_nothing() {
    if !docker_ready("mqtt-hil/mosquitto") {
        return;
    }
    let (o, pid) = run(&[
        "run",
        "harness/tests/fixtures/cli/fails.toml",
        "--broker",
        "container:mosquitto",
    ]);
    assert_eq!(o.status.code(), Some(1), "{}", text(&o));
    assert!(text(&o).contains("FAIL  fails"), "{}", text(&o));
    assert_eq!(leftovers(pid), Vec::<String>::new());
}

#[test]
fn a_scenario_timeout_in_a_container_leaves_nothing() {
    if !docker_ready("mqtt-hil/mosquitto") {
        return;
    }
    let (o, pid) = run(&[
        "run",
        "harness/tests/fixtures/cli/slow.toml",
        "--broker",
        "container:mosquitto",
    ]);
    assert_eq!(o.status.code(), Some(1), "{}", text(&o));
    // On a busy machine the 1.5 s can run out while the container is still
    // starting ("setting up did not finish within the scenario's timeout")
    // rather than during the steps; either way nothing may be left.
    assert!(text(&o).contains("did not finish within"), "{}", text(&o));
    assert_eq!(leftovers(pid), Vec::<String>::new());
}

#[test]
fn ctrl_c_removes_the_container_and_its_network() {
    if !docker_ready("mqtt-hil/mosquitto") {
        return;
    }
    let out = tempfile::tempdir().unwrap();
    // A scenario still running when the signal comes, however long the
    // container took to start (slow.toml's 1.5 s bound the set-up too, and
    // on a loaded machine the run had ended, status 1, before the SIGINT).
    let mut child = bin()
        .args([
            "run",
            "harness/tests/fixtures/cli/until_interrupted.toml",
            "--broker",
            "container:mosquitto",
            "--out",
        ])
        .arg(out.path())
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let pid = child.id();
    // Interrupt once the container runs, so there is something to remove.
    let deadline = Instant::now() + Duration::from_secs(60);
    while !leftovers(pid).iter().any(|n| !n.ends_with("-net")) {
        assert!(Instant::now() < deadline, "the container never appeared");
        std::thread::sleep(Duration::from_millis(100));
    }
    std::thread::sleep(Duration::from_millis(500));
    // SAFETY: signalling our own child.
    unsafe {
        libc::kill(pid as i32, libc::SIGINT);
    }
    let status = child.wait().unwrap();
    assert_eq!(status.code(), Some(130));
    assert_eq!(leftovers(pid), Vec::<String>::new());
}

#[test]
fn a_missing_image_says_how_to_build_it() {
    if !docker_ready("mqtt-hil/mosquitto") {
        return;
    }
    let (o, pid) = run(&[
        "run",
        "scenarios/qos0_delivery.toml",
        "--broker",
        "container:mqtt-hil/mosquitto:no-such-tag",
    ]);
    assert_eq!(o.status.code(), Some(2), "{}", text(&o));
    assert!(
        text(&o).contains("build it with `make images`"),
        "{}",
        text(&o)
    );
    assert_eq!(leftovers(pid), Vec::<String>::new());
}

/// A broker that exits at start is reported with its own last words, at
/// once rather than after the whole readiness wait.
#[test]
fn a_broker_that_dies_at_start_is_reported_with_its_output() {
    if !docker_ready("mqtt-hil/mosquitto") {
        return;
    }
    // mosquitto pointed at a configuration that does not exist, tagged as
    // an image the harness does not know (so it runs with no extra config).
    let tag = format!("mqtt-hil/broken-test:{}", std::process::id());
    let ctx = tempfile::tempdir().unwrap();
    std::fs::write(
        ctx.path().join("Dockerfile"),
        "FROM mqtt-hil/mosquitto:latest\nENTRYPOINT [\"/usr/sbin/mosquitto\", \"-c\", \"/nonexistent.conf\"]\n",
    )
    .unwrap();
    let built = Command::new("docker")
        .args(["build", "-q", "-t", &tag])
        .arg(ctx.path())
        .output()
        .unwrap();
    assert!(built.status.success(), "{}", text(&built));
    let started = Instant::now();
    let (o, pid) = run(&[
        "run",
        "scenarios/qos0_delivery.toml",
        "--broker",
        &format!("container:{tag}"),
    ]);
    let _ = Command::new("docker").args(["rmi", "-f", &tag]).output();
    let t = text(&o);
    assert_eq!(o.status.code(), Some(2), "{t}");
    assert!(t.contains("the container exited"), "{t}");
    assert!(
        t.contains("/nonexistent.conf"),
        "mosquitto's own message is missing: {t}"
    );
    assert!(
        started.elapsed() < Duration::from_secs(40),
        "took {:?}",
        started.elapsed()
    );
    assert_eq!(leftovers(pid), Vec::<String>::new());
}

/// The container-level faults as scenario files use them: pause/unpause,
/// disconnect/reconnect from the network, and kill with a broker that
/// promises persistence across it (NATS JetStream).
#[test]
fn container_faults_from_scenario_files() {
    if !docker_ready("mqtt-hil/nats") {
        return;
    }
    let (o, pid) = run(&[
        "run",
        "scenarios/containers",
        "scenarios/broker_pause.toml",
        "--broker",
        "container:nats",
    ]);
    let t = text(&o);
    assert_eq!(o.status.code(), Some(0), "{t}");
    for id in [
        "broker_network_cut",
        "broker_kill_persistent_session",
        "broker_pause",
    ] {
        assert!(t.contains(&format!("PASS  {id}")), "{id}: {t}");
    }
    assert_eq!(leftovers(pid), Vec::<String>::new());
}

/// The same files on a broker that cannot take those faults are skipped
/// with the reason, not failed and not passed.
#[test]
fn container_faults_are_skipped_where_the_broker_cannot_take_them() {
    let (o, _) = run(&["run", "scenarios/containers", "--broker", "embedded"]);
    let t = text(&o);
    assert_eq!(o.status.code(), Some(0), "{t}");
    assert!(t.contains("SKIP  broker_network_cut"), "{t}");
    assert!(
        t.contains("needs `broker_network`, which broker embedded does not offer"),
        "{t}"
    );
    assert!(t.contains("0 passed, 0 failed, 2 skipped"), "{t}");
}

/// No Docker engine: a clear error naming the package and the
/// alternatives, exit 2, nothing judged.
#[test]
fn a_missing_docker_engine_is_explained() {
    let out = tempfile::tempdir().unwrap();
    let o = bin()
        .args([
            "run",
            "scenarios/qos0_delivery.toml",
            "--broker",
            "container:mosquitto",
            "--out",
        ])
        .arg(out.path())
        .env("DOCKER_HOST", "unix:///nonexistent/docker.sock")
        .output()
        .unwrap();
    let t = text(&o);
    assert_eq!(o.status.code(), Some(2), "{t}");
    assert!(t.contains("Docker engine"), "{t}");
    assert!(t.contains("docker.io"), "{t}");
    assert!(t.contains("--broker embedded"), "{t}");
}

/// A matrix starts the next cell's container while a cell runs (so a slow
/// broker's start is off the critical path), and Ctrl-C then removes both
/// the running cell's container and the one started ahead.
#[test]
fn a_matrix_starts_the_next_broker_ahead_and_ctrl_c_removes_both() {
    if !docker_ready("mqtt-hil/mosquitto") {
        return;
    }
    let out = tempfile::tempdir().unwrap();
    let mut child = bin()
        .args([
            "matrix",
            "harness/tests/fixtures/signals",
            "--brokers",
            "container:mosquitto",
            "--out",
        ])
        .arg(out.path())
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let pid = child.id();
    // The first cell waits 15 s: meanwhile the second cell's broker starts.
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        let containers = leftovers(pid)
            .into_iter()
            .filter(|n| !n.ends_with("-net"))
            .count();
        if containers >= 2 {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "no second container was started ahead while the first cell ran"
        );
        std::thread::sleep(Duration::from_millis(100));
    }
    // SAFETY: signalling our own child.
    unsafe {
        libc::kill(pid as i32, libc::SIGINT);
    }
    let status = child.wait().unwrap();
    assert_eq!(status.code(), Some(130));
    assert_eq!(leftovers(pid), Vec::<String>::new());
}

/// A whole matrix whose cells take the containers started ahead: every
/// cell runs on its own container, and nothing is left once it ends.
#[test]
fn a_matrix_with_brokers_started_ahead_leaves_nothing() {
    if !docker_ready("mqtt-hil/mosquitto") {
        return;
    }
    let (o, pid) = run(&[
        "matrix",
        "scenarios/qos0_delivery.toml",
        "scenarios/qos1_delivery.toml",
        "scenarios/retained_set_and_clear.toml",
        "--brokers",
        "container:mosquitto",
    ]);
    assert_eq!(o.status.code(), Some(0), "{}", text(&o));
    assert_eq!(leftovers(pid), Vec::<String>::new());
}

/// MQTT 3.1.1 by hand, for [`a_fresh_container_holds_no_session_of_the_last`]:
/// the packets it needs and a reader of one whole packet.
mod wire {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    use tokio::net::TcpStream;

    fn packet(first: u8, body: &[u8]) -> Vec<u8> {
        let mut p = vec![first];
        let mut n = body.len();
        loop {
            let b = (n % 128) as u8;
            n /= 128;
            p.push(if n > 0 { b | 0x80 } else { b });
            if n == 0 {
                break;
            }
        }
        p.extend_from_slice(body);
        p
    }

    fn string(s: &str) -> Vec<u8> {
        let mut v = (s.len() as u16).to_be_bytes().to_vec();
        v.extend_from_slice(s.as_bytes());
        v
    }

    /// One whole packet: its first byte and its body.
    pub async fn read(s: &mut TcpStream) -> (u8, Vec<u8>) {
        let first = s.read_u8().await.expect("a packet");
        let (mut len, mut shift) = (0usize, 0);
        loop {
            let b = s.read_u8().await.expect("remaining length");
            len |= ((b & 0x7f) as usize) << shift;
            shift += 7;
            if b & 0x80 == 0 {
                break;
            }
        }
        let mut body = vec![0; len];
        s.read_exact(&mut body).await.expect("packet body");
        (first, body)
    }

    /// Connects with clean session off (the session outlives the
    /// connection); returns the stream and CONNACK's session present flag.
    pub async fn connect(addr: std::net::SocketAddr, id: &str) -> (TcpStream, bool) {
        let mut s = TcpStream::connect(addr).await.expect("TCP connect");
        let mut body = string("MQTT");
        body.extend_from_slice(&[0x04, 0x00, 0x00, 0x3c]);
        body.extend(string(id));
        s.write_all(&packet(0x10, &body)).await.unwrap();
        let (first, ack) = read(&mut s).await;
        assert_eq!(
            (first, ack.len(), ack[1]),
            (0x20, 2, 0),
            "CONNACK accepting {id}"
        );
        (s, ack[0] & 1 == 1)
    }

    pub async fn subscribe_qos1(s: &mut TcpStream, topic: &str) {
        let mut body = vec![0x00, 0x01];
        body.extend(string(topic));
        body.push(1);
        s.write_all(&packet(0x82, &body)).await.unwrap();
        let (first, ack) = read(s).await;
        assert_eq!(
            (first, ack),
            (0x90, vec![0x00, 0x01, 0x01]),
            "SUBACK granting QoS 1"
        );
    }

    /// QoS 1, waits for its PUBACK (skipping anything delivered meanwhile).
    pub async fn publish_qos1(s: &mut TcpStream, topic: &str, payload: &[u8]) {
        let mut body = string(topic);
        body.extend_from_slice(&[0x00, 0x07]);
        body.extend_from_slice(payload);
        s.write_all(&packet(0x32, &body)).await.unwrap();
        while read(s).await != (0x40, vec![0x00, 0x07]) {}
    }

    pub async fn disconnect(mut s: TcpStream) {
        s.write_all(&[0xe0, 0x00]).await.unwrap();
        let _ = s.shutdown().await;
    }

    /// QoS 0 with RETAIN set.
    pub async fn publish_retained(s: &mut TcpStream, topic: &str, payload: &[u8]) {
        let mut body = string(topic);
        body.extend_from_slice(payload);
        s.write_all(&packet(0x31, &body)).await.unwrap();
    }

    /// Subscribes to `filter` at QoS 0 and returns every packet but the
    /// SUBACK until `quiet` passes without one: the retained messages, and
    /// what a resumed session had queued.
    pub async fn retained(
        s: &mut TcpStream,
        filter: &str,
        quiet: std::time::Duration,
    ) -> Vec<(u8, Vec<u8>)> {
        let mut body = vec![0x00, 0x02];
        body.extend(string(filter));
        body.push(0);
        s.write_all(&packet(0x82, &body)).await.unwrap();
        // Messages queued for a resumed session may come before the SUBACK.
        let mut got = Vec::new();
        let mut acked = false;
        while let Ok(p) = tokio::time::timeout(quiet, read(s)).await {
            if p == (0x90, vec![0x00, 0x02, 0x00]) {
                acked = true;
            } else {
                got.push(p);
            }
        }
        assert!(acked, "no SUBACK for {filter}");
        got
    }
}

/// Each cell's container starts from its image, never from another
/// container's state. It matters more now that some images carry a state
/// made at build time (ci/images/build.sh's bake: RabbitMQ's node database,
/// amqtt's bytecode). In a first container a client leaves a session with a
/// subscription and a message queued for it (RabbitMQ: a durable queue); the same
/// container, asked again, says the session is present (the control: the
/// check sees a session when there is one); a second container from the
/// same image says it is not.
#[test]
fn a_fresh_container_holds_no_session_of_the_last() {
    use mqtt_hil::broker::container::Container;
    for image in ["mqtt-hil/rabbitmq:3.10", "mqtt-hil/amqtt:0.12.1"] {
        on_image(image, |image| async move {
            let id = format!("iso-{}", std::process::id());
            let first = Container::start(&image).await.expect("first container");
            let (mut s, present) = wire::connect(first.addr(), &id).await;
            assert!(!present, "{image}: a session in a new container");
            wire::subscribe_qos1(&mut s, "iso/t").await;
            wire::disconnect(s).await;
            let (mut other, _) = wire::connect(first.addr(), &format!("{id}-pub")).await;
            wire::publish_qos1(&mut other, "iso/t", b"queued").await;
            wire::disconnect(other).await;
            let (s, present) = wire::connect(first.addr(), &id).await;
            assert!(present, "{image}: the session left in this container");
            wire::disconnect(s).await;
            first.shutdown().await;

            let second = Container::start(&image).await.expect("second container");
            let (s, present) = wire::connect(second.addr(), &id).await;
            wire::disconnect(s).await;
            second.shutdown().await;
            assert!(
                !present,
                "{image}: a new container has the last one's session"
            );
        });
    }
}

/// Scenarios that run as tenants of one RabbitMQ container
/// (broker/tenancy.rs) see nothing of each other. A first tenant leaves a
/// session with a queued message and a retained message on its vhost; it
/// sees both itself (the control: the checks see what is there); the next
/// tenant of the same container, on the next vhost, sees neither. And 3.10's
/// tenants take turns: while one runs, another gets a different container
/// (3.10 would close a connection of the same client id on another vhost).
#[test]
fn tenants_of_one_container_share_nothing() {
    use mqtt_hil::broker::tenancy::Tenancy;
    use std::time::Duration;
    on_image("mqtt-hil/rabbitmq:3.10", |image| async move {
        let id = format!("ten-{}", std::process::id());
        let pool = Tenancy::new(vec![(image.clone(), 3)]);
        let first = pool
            .lease(&image)
            .await
            .expect("a tenant image")
            .expect("first tenant");
        // Taking turns: a tenant arriving now gets another container.
        let beside = pool
            .lease(&image)
            .await
            .expect("a tenant image")
            .expect("second tenant");
        assert_ne!(
            first.addr().ip(),
            beside.addr().ip(),
            "{image}: two tenants at once on one node"
        );
        beside.shutdown().await;

        let (mut s, present) = wire::connect(first.addr(), &id).await;
        assert!(!present, "{image}: a session on a new tenant's vhost");
        wire::subscribe_qos1(&mut s, "iso/t").await;
        wire::disconnect(s).await;
        let (mut other, _) = wire::connect(first.addr(), &format!("{id}-pub")).await;
        wire::publish_qos1(&mut other, "iso/t", b"queued").await;
        wire::publish_retained(&mut other, "iso/r", b"kept").await;
        wire::disconnect(other).await;
        let (mut s, present) = wire::connect(first.addr(), &id).await;
        assert!(present, "{image}: the session left on this vhost");
        let kept = wire::retained(&mut s, "iso/r", Duration::from_secs(2)).await;
        assert!(
            kept.iter().any(|(_, b)| b.ends_with(b"kept")),
            "{image}: the retained message on its own vhost: {kept:?}"
        );
        wire::disconnect(s).await;
        let host = first.describe();
        first.shutdown().await;

        let next = pool
            .lease(&image)
            .await
            .expect("a tenant image")
            .expect("third tenant");
        let container = |d: &str| d.split_whitespace().nth(3).map(str::to_string);
        assert_eq!(
            container(&next.describe()),
            container(&host),
            "the next tenant takes the free container: {}",
            next.describe()
        );
        let (mut s, present) = wire::connect(next.addr(), &id).await;
        let leaked = wire::retained(&mut s, "iso/#", Duration::from_secs(2)).await;
        wire::disconnect(s).await;
        next.shutdown().await;
        pool.shutdown().await;
        assert!(
            !present,
            "{image}: the next tenant has the last one's session"
        );
        assert!(
            leaked.is_empty(),
            "{image}: the next tenant sees the last one's messages: {leaked:?}"
        );
    });
    assert_eq!(leftovers(std::process::id()), Vec::<String>::new());
}

/// Why RabbitMQ 3.10's tenants take turns (`AtOnce::One` in KNOWN): a
/// CONNECT on one vhost closes the connection of the same client id on
/// another. The control: two different ids on two vhosts both stay open.
#[test]
fn rabbitmq_3_10_takes_client_ids_over_across_vhosts() {
    use mqtt_hil::broker::container::Container;
    use std::time::Duration;
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    on_image("mqtt-hil/rabbitmq:3.10", |image| async move {
        let host = Container::start_host(&image).await.expect("a host");
        let (a, b) = (host.tenant_addr(0).unwrap(), host.tenant_addr(1).unwrap());
        // Open after a PINGREQ: it answers PINGRESP (0xd0 0x00).
        async fn open(s: &mut tokio::net::TcpStream) -> bool {
            if s.write_all(&[0xc0, 0x00]).await.is_err() {
                return false;
            }
            let mut r = [0u8; 2];
            matches!(
                tokio::time::timeout(Duration::from_secs(3), s.read_exact(&mut r)).await,
                Ok(Ok(_)) if r == [0xd0, 0x00]
            )
        }
        let (mut x, _) = wire::connect(a, "same-id").await;
        let (mut y, _) = wire::connect(b, "other-id").await;
        tokio::time::sleep(Duration::from_millis(500)).await;
        let control = (open(&mut x).await, open(&mut y).await);
        let (mut z, _) = wire::connect(b, "same-id").await;
        tokio::time::sleep(Duration::from_millis(500)).await;
        let taken = (open(&mut x).await, open(&mut z).await);
        host.shutdown().await;
        assert_eq!(control, (true, true), "two ids on two vhosts");
        assert_eq!(
            taken,
            (false, true),
            "{image}: the same id on another vhost took the first connection over"
        );
    });
}
