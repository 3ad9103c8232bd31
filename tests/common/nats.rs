//! Private NATS clusters for the cluster tests.
//!
//! [`NatsCluster::start`] runs `n` `nats-server` processes on free loopback
//! ports, joined into one NATS cluster (`confab-test`) through routes:
//! each server listens for clients, routes and monitoring on ports of its
//! own and solicits routes to every other server. It waits until every
//! server answers on its monitoring port and sees a route to each other
//! running server (`/routez`, counted by distinct remote server id, since
//! two servers that solicit each other briefly hold a duplicate route).
//!
//! [`NatsCluster::stop`] kills one server (SIGKILL: the fault the tests
//! inject; [`NatsCluster::freeze`] hangs it first, if wanted), [`NatsCluster::start_one`] brings it back on the same ports and
//! directories and waits until the routes are whole again;
//! [`NatsCluster::stop_all`] and [`NatsCluster::start_all`] do the same
//! for every server.
//!
//! Each server is started by the tests' launcher thread
//! ([`super::postgres::spawn_tied_to_process`]) with `PR_SET_PDEATHSIG` set
//! to SIGKILL, so no `nats-server` outlives the test binary however it
//! ends; dropping the cluster kills them too (also when a test fails).
//! Without `nats-server` installed the test fails saying how to install it.

use std::io::{Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::thread;
use std::time::{Duration, Instant};

use serde_json::Value;
use tempfile::TempDir;

use super::postgres::spawn_tied_to_process;

/// The cluster name every test server joins.
pub const CLUSTER_NAME: &str = "confab-test";

/// How long a server may take to answer and to route to the others.
const READY_TIMEOUT: Duration = Duration::from_secs(30);

/// Timeout of one request to a monitoring port.
const MONITOR_TIMEOUT: Duration = Duration::from_secs(2);

/// One server of the cluster: its ports and files, and its process while
/// it runs.
struct Server {
    client: u16,
    route: u16,
    monitor: u16,
    store: PathBuf,
    log: PathBuf,
    child: Option<Child>,
}

/// A running NATS cluster of private servers (see the module docs).
pub struct NatsCluster {
    servers: Vec<Server>,
    bin: PathBuf,
    /// Holds the servers' stores and logs.
    dir: TempDir,
}

/// The `nats-server` binary, or a panic saying how to install it.
pub fn bin() -> PathBuf {
    let mut candidates: Vec<PathBuf> = std::env::var_os("PATH")
        .map(|path| {
            std::env::split_paths(&path)
                .map(|dir| dir.join("nats-server"))
                .collect()
        })
        .unwrap_or_default();
    candidates.push(PathBuf::from("/usr/sbin/nats-server"));
    candidates.push(PathBuf::from("/usr/bin/nats-server"));
    candidates
        .into_iter()
        .find(|path| path.is_file())
        .unwrap_or_else(|| {
            panic!(
                "nats-server is not installed (not on PATH nor in /usr/sbin): install \
                 Debian's `nats-server` package (apt-get install nats-server), as .ci/run does"
            )
        })
}

/// `count` distinct TCP ports on 127.0.0.1 that were free a moment ago.
fn free_ports(count: usize) -> Vec<u16> {
    let listeners: Vec<std::net::TcpListener> = (0..count)
        .map(|_| std::net::TcpListener::bind("127.0.0.1:0").expect("bind 127.0.0.1:0"))
        .collect();
    listeners
        .iter()
        .map(|l| l.local_addr().expect("local address").port())
        .collect()
}

/// `GET path` on a monitoring port, parsed as JSON; `None` if the server
/// does not answer (yet).
fn monitor_get(port: u16, path: &str) -> Option<Value> {
    let addr = SocketAddr::from(([127, 0, 0, 1], port));
    let mut stream = TcpStream::connect_timeout(&addr, MONITOR_TIMEOUT).ok()?;
    stream.set_read_timeout(Some(MONITOR_TIMEOUT)).ok()?;
    stream.set_write_timeout(Some(MONITOR_TIMEOUT)).ok()?;
    let request = format!("GET {path} HTTP/1.1\r\nHost: {addr}\r\nConnection: close\r\n\r\n");
    stream.write_all(request.as_bytes()).ok()?;
    let mut bytes = Vec::new();
    stream.read_to_end(&mut bytes).ok()?;
    let text = String::from_utf8_lossy(&bytes);
    let (head, body) = text.split_once("\r\n\r\n")?;
    if !head.starts_with("HTTP/1.1 200") {
        return None;
    }
    serde_json::from_str(body).ok()
}

/// The last lines of a log file, for failure messages.
fn log_tail(path: &Path) -> String {
    let text = std::fs::read_to_string(path).unwrap_or_default();
    let lines: Vec<&str> = text.lines().collect();
    lines[lines.len().saturating_sub(40)..].join("\n")
}

impl NatsCluster {
    /// Starts `n` clustered servers and waits until each routes to every
    /// other. Panics with their logs if they do not come up.
    pub fn start(n: usize) -> NatsCluster {
        assert!(n >= 1, "a NATS cluster of at least one server");
        let dir = TempDir::new().expect("temporary directory for NATS");
        let servers = (0..n)
            .map(|i| Server {
                client: 0,
                route: 0,
                monitor: 0,
                store: dir.path().join(format!("store{i}")),
                log: dir.path().join(format!("nats{i}.log")),
                child: None,
            })
            .collect();
        let mut cluster = NatsCluster {
            servers,
            bin: bin(),
            dir,
        };
        // A port found free may be taken before a server binds it: retry
        // with fresh ports.
        let mut last_failure = String::new();
        for _ in 0..3 {
            let ports = free_ports(3 * n);
            for (i, server) in cluster.servers.iter_mut().enumerate() {
                server.client = ports[3 * i];
                server.route = ports[3 * i + 1];
                server.monitor = ports[3 * i + 2];
            }
            match cluster.try_start_all() {
                Ok(()) => return cluster,
                Err(failure) => {
                    last_failure = failure;
                    cluster.kill_all();
                    for server in &cluster.servers {
                        let _ = std::fs::remove_file(&server.log);
                    }
                }
            }
        }
        panic!("the NATS cluster did not start:\n{last_failure}");
    }

    /// How many servers the cluster has (running or not).
    pub fn len(&self) -> usize {
        self.servers.len()
    }

    /// `nats://127.0.0.1:PORT` of server `i`'s client port.
    pub fn url(&self, i: usize) -> String {
        format!("nats://127.0.0.1:{}", self.servers[i].client)
    }

    /// Every server's client URL, comma-joined (as `CONFAB_NATS_URL` takes
    /// them).
    pub fn urls(&self) -> String {
        (0..self.servers.len())
            .map(|i| self.url(i))
            .collect::<Vec<_>>()
            .join(",")
    }

    /// Whether server `i` runs.
    pub fn is_running(&mut self, i: usize) -> bool {
        match self.servers[i].child.as_mut() {
            Some(child) => matches!(child.try_wait(), Ok(None)),
            None => false,
        }
    }

    /// Server `i`'s log so far.
    pub fn log(&self, i: usize) -> String {
        std::fs::read_to_string(&self.servers[i].log).unwrap_or_default()
    }

    /// Kills server `i` (SIGKILL) and reaps it; a no-op when stopped.
    pub fn stop(&mut self, i: usize) {
        if let Some(mut child) = self.servers[i].child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }

    /// Freezes server `i` (SIGSTOP): its connections stay open but it
    /// reads and answers nothing, as a hung server or a dead link does.
    /// [`NatsCluster::stop`] kills it from there.
    pub fn freeze(&mut self, i: usize) {
        let child = self.servers[i].child.as_ref().expect("NATS server runs");
        let pid = libc::pid_t::try_from(child.id()).expect("pid fits pid_t");
        // SAFETY: kill(2) on our own child, which has not been reaped.
        let rc = unsafe { libc::kill(pid, libc::SIGSTOP) };
        assert_eq!(rc, 0, "SIGSTOP to NATS server {i} failed");
    }

    /// Starts the stopped server `i` again on its ports and directory, and
    /// waits until the running servers route to each other again.
    pub fn start_one(&mut self, i: usize) {
        assert!(
            self.servers[i].child.is_none(),
            "NATS server {i} is already running"
        );
        // The port was ours a moment ago; retry briefly if it is still busy.
        let mut failure = String::new();
        for _ in 0..20 {
            match self.launch(i).and_then(|()| self.wait_ready(&[i])) {
                Ok(()) => {
                    if let Err(e) = self.wait_routes() {
                        panic!("NATS server {i} came back but the routes did not: {e}");
                    }
                    return;
                }
                Err(e) => {
                    failure = e;
                    self.stop(i);
                    thread::sleep(Duration::from_millis(100));
                }
            }
        }
        panic!("NATS server {i} did not come back:\n{failure}");
    }

    /// Kills every server.
    pub fn stop_all(&mut self) {
        self.kill_all();
    }

    /// Starts every stopped server again and waits until they all route to
    /// each other.
    pub fn start_all(&mut self) {
        if let Err(e) = self.try_start_all() {
            panic!("the NATS cluster did not come back:\n{e}");
        }
    }

    fn kill_all(&mut self) {
        for i in 0..self.servers.len() {
            self.stop(i);
        }
    }

    /// Launches every stopped server, then waits for all of them.
    fn try_start_all(&mut self) -> Result<(), String> {
        let stopped: Vec<usize> = (0..self.servers.len())
            .filter(|&i| self.servers[i].child.is_none())
            .collect();
        for &i in &stopped {
            self.launch(i)?;
        }
        self.wait_ready(&stopped)?;
        self.wait_routes()
    }

    /// Spawns server `i` (not waiting for anything).
    fn launch(&mut self, i: usize) -> Result<(), String> {
        let routes: Vec<String> = self
            .servers
            .iter()
            .enumerate()
            .filter(|(j, _)| *j != i)
            .map(|(_, s)| format!("nats://127.0.0.1:{}", s.route))
            .collect();
        let server = &self.servers[i];
        let mut command = Command::new(&self.bin);
        command
            .args(["-a", "127.0.0.1", "-p", &server.client.to_string()])
            .args(["-m", &server.monitor.to_string()])
            .args(["-n", &format!("nats{i}")])
            .args(["--cluster", &format!("nats://127.0.0.1:{}", server.route)])
            .args(["--cluster_name", CLUSTER_NAME])
            .arg("-sd")
            .arg(&server.store)
            .arg("-l")
            .arg(&server.log)
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null());
        if !routes.is_empty() {
            command.args(["--routes", &routes.join(",")]);
        }
        let child = spawn_tied_to_process(command, libc::SIGKILL)
            .map_err(|e| format!("cannot run {}: {e}", self.bin.display()))?;
        self.servers[i].child = Some(child);
        Ok(())
    }

    /// Waits until each of `which` answers on its monitoring port; `Err`
    /// with its log if one exits or stays silent.
    fn wait_ready(&mut self, which: &[usize]) -> Result<(), String> {
        let deadline = Instant::now() + READY_TIMEOUT;
        for &i in which {
            loop {
                if !self.is_running(i) {
                    return Err(format!(
                        "NATS server {i} exited; its log:\n{}",
                        log_tail(&self.servers[i].log)
                    ));
                }
                if monitor_get(self.servers[i].monitor, "/varz").is_some() {
                    break;
                }
                if Instant::now() >= deadline {
                    return Err(format!(
                        "NATS server {i} did not answer within {READY_TIMEOUT:?}; its log:\n{}",
                        log_tail(&self.servers[i].log)
                    ));
                }
                thread::sleep(Duration::from_millis(20));
            }
        }
        Ok(())
    }

    /// Waits until every running server has a route to each other running
    /// server (by distinct remote server id).
    fn wait_routes(&mut self) -> Result<(), String> {
        let deadline = Instant::now() + READY_TIMEOUT;
        loop {
            let running: Vec<usize> = (0..self.servers.len())
                .filter(|&i| self.is_running(i))
                .collect();
            let want = running.len().saturating_sub(1);
            let counts: Vec<(usize, Option<usize>)> = running
                .iter()
                .map(|&i| (i, self.distinct_routes(i)))
                .collect();
            if counts.iter().all(|(_, n)| *n == Some(want)) {
                return Ok(());
            }
            if Instant::now() >= deadline {
                let logs: Vec<String> = running
                    .iter()
                    .map(|&i| format!("--- nats{i}:\n{}", log_tail(&self.servers[i].log)))
                    .collect();
                return Err(format!(
                    "routes not whole within {READY_TIMEOUT:?} (server, distinct routes; \
                     want {want}): {counts:?}\n{}",
                    logs.join("\n")
                ));
            }
            thread::sleep(Duration::from_millis(50));
        }
    }

    /// How many other servers server `i` routes to, by `/routez`.
    fn distinct_routes(&self, i: usize) -> Option<usize> {
        let routez = monitor_get(self.servers[i].monitor, "/routez")?;
        let mut ids: Vec<&str> = routez["routes"]
            .as_array()?
            .iter()
            .filter_map(|r| r["remote_id"].as_str())
            .collect();
        ids.sort_unstable();
        ids.dedup();
        Some(ids.len())
    }
}

impl Drop for NatsCluster {
    fn drop(&mut self) {
        self.kill_all();
    }
}
