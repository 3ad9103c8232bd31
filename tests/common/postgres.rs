//! Private PostgreSQL servers for the tests.
//!
//! [`PgServer::start`] finds the server binaries (`pg_config --bindir`,
//! else `/usr/lib/postgresql/*/bin`), runs `initdb` into a temporary
//! directory, starts `postgres` on 127.0.0.1 at a free port (its unix
//! socket inside the same directory) with `fsync=on`, waits for its "ready
//! to accept connections" line, creates a database and offers its URL.
//! [`PgServer::stop`] and [`PgServer::resume`] take it down (fast shutdown)
//! and bring it back on the same port and data directory, for fault tests.
//! Dropping it stops the server (a fast shutdown, as `pg_ctl stop -m fast`
//! sends, then a kill if it lingers), also when the test fails.
//!
//! [`database_url_for`] is the harness's PostgreSQL backend
//! (`CONFAB_TEST_BACKEND=postgres`): one server per test binary, started on
//! first use, with a fresh database per confab data directory. It is
//! stopped and its directory removed when the test binary exits (an
//! `atexit` hook, which also runs when tests failed).
//!
//! Every postmaster is started by one launcher thread that lives as long as
//! the test binary, with `PR_SET_PDEATHSIG`: when the binary dies in any way
//! (a kill, a crash) the kernel stops the postmaster too, so no server
//! outlives `cargo test`. (The death signal follows the parent *thread*,
//! hence the long-lived launcher rather than the test's own thread.)
//!
//! PostgreSQL refuses to run as root, and tests and CI run as root: then
//! the directory is given to uid/gid 65534 (nobody) and `initdb` and
//! `postgres` run as that user. Without PostgreSQL installed the test fails
//! saying so.

use std::collections::HashMap;
use std::io::{BufRead, BufReader};
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{mpsc, Mutex, MutexGuard, OnceLock};
use std::thread;
use std::time::{Duration, Instant};

use tempfile::TempDir;

/// The unprivileged user (and group) PostgreSQL runs as when tests run as root.
const UNPRIVILEGED: u32 = 65534;

/// The database [`PgServer::url`] names.
pub const DATABASE: &str = "confab_test";

/// The superuser `initdb` creates (trust authentication, loopback only).
pub const SUPERUSER: &str = "postgres";

/// How long the server may take to become ready, or to stop.
const READY_TIMEOUT: Duration = Duration::from_secs(60);

/// The line the postmaster logs once it accepts connections.
const READY_LINE: &str = "database system is ready to accept connections";

/// A running (or stopped, see [`PgServer::stop`]) private PostgreSQL server.
pub struct PgServer {
    child: Option<Child>,
    port: u16,
    bin: PathBuf,
    dir: TempDir,
    max_connections: u32,
    log: mpsc::Receiver<String>,
    /// Log lines read so far (for failure messages).
    seen: Vec<String>,
}

/// The directory holding `initdb` and `postgres`, or a panic saying how to
/// install them.
pub fn bin_dir() -> PathBuf {
    let from_pg_config = Command::new("pg_config")
        .arg("--bindir")
        .output()
        .ok()
        .filter(|out| out.status.success())
        .map(|out| PathBuf::from(String::from_utf8_lossy(&out.stdout).trim()));
    let mut candidates: Vec<PathBuf> = from_pg_config.into_iter().collect();
    if let Ok(entries) = std::fs::read_dir("/usr/lib/postgresql") {
        let mut versions: Vec<PathBuf> = entries
            .filter_map(|entry| entry.ok().map(|e| e.path().join("bin")))
            .collect();
        // Newest major version first.
        versions.sort_by_key(|path| {
            let major = path
                .parent()
                .and_then(|p| p.file_name())
                .and_then(|n| n.to_str())
                .and_then(|n| n.parse::<u32>().ok());
            std::cmp::Reverse(major)
        });
        candidates.extend(versions);
    }
    candidates
        .into_iter()
        .find(|dir| dir.join("initdb").is_file() && dir.join("postgres").is_file())
        .unwrap_or_else(|| {
            panic!(
                "PostgreSQL is not installed (no initdb and postgres via `pg_config --bindir` \
                 or in /usr/lib/postgresql/*/bin): install Debian's `postgresql` package \
                 (apt-get install postgresql), as .ci/run does"
            )
        })
}

fn running_as_root() -> bool {
    // SAFETY: geteuid has no preconditions and cannot fail.
    unsafe { libc::geteuid() == 0 }
}

/// A command for a server binary, as the unprivileged user when root.
fn server_command(bin: &Path, program: &str) -> Command {
    let mut command = Command::new(bin.join(program));
    if running_as_root() {
        command.uid(UNPRIVILEGED).gid(UNPRIVILEGED);
    }
    command.env("LC_ALL", "C").env_remove("PGDATA");
    command
}

fn run(mut command: Command, what: &str) -> Output {
    let output = command
        .stdin(Stdio::null())
        .output()
        .unwrap_or_else(|e| panic!("cannot run {what}: {e}"));
    assert!(
        output.status.success(),
        "{what} failed: {:?}\nstdout:\n{}\nstderr:\n{}",
        output.status,
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr)
    );
    output
}

/// A request to the launcher thread: a command to spawn, and where to
/// send the child.
type Launch = (Command, mpsc::Sender<std::io::Result<Child>>);

/// Spawns `command` on the launcher thread, with `PR_SET_PDEATHSIG` set to
/// `signal` so the child dies with the test binary (PostgreSQL gets SIGQUIT,
/// its immediate shutdown; other servers of the tests, e.g. `nats-server`,
/// may use the same launcher with SIGKILL).
pub fn spawn_tied_to_process(mut command: Command, signal: libc::c_int) -> std::io::Result<Child> {
    static LAUNCHER: OnceLock<Mutex<mpsc::Sender<Launch>>> = OnceLock::new();
    let parent = std::process::id();
    // SAFETY: the closure runs in the child between fork and exec and only
    // makes async-signal-safe calls (prctl, getppid); it runs after the
    // uid change, which would otherwise clear the death signal.
    unsafe {
        command.pre_exec(move || {
            if libc::prctl(libc::PR_SET_PDEATHSIG, signal as libc::c_ulong) != 0 {
                return Err(std::io::Error::last_os_error());
            }
            // The test binary died before the death signal was armed.
            if libc::getppid() as u32 != parent {
                return Err(std::io::Error::other("the test binary exited"));
            }
            Ok(())
        });
    }
    let launcher = LAUNCHER.get_or_init(|| {
        let (tx, rx) = mpsc::channel::<Launch>();
        thread::Builder::new()
            .name("server-launcher".into())
            .spawn(move || {
                // Lives as long as the process: LAUNCHER keeps the sender.
                for (mut command, reply) in rx {
                    let _ = reply.send(command.spawn());
                }
            })
            .expect("spawn the launcher thread");
        Mutex::new(tx)
    });
    let (reply, child) = mpsc::channel();
    lock(launcher)
        .send((command, reply))
        .expect("the launcher thread runs");
    child.recv().expect("the launcher thread answers")
}

fn lock<T>(mutex: &Mutex<T>) -> MutexGuard<'_, T> {
    mutex.lock().unwrap_or_else(|p| p.into_inner())
}

impl PgServer {
    /// Initialises and starts a server with database [`DATABASE`].
    pub fn start() -> PgServer {
        let server = PgServer::start_bare(100);
        server.create_database(DATABASE);
        server
    }

    /// Initialises and starts a server with no database of confab's.
    fn start_bare(max_connections: u32) -> PgServer {
        let bin = bin_dir();
        let dir = TempDir::new().expect("temporary directory for PostgreSQL");
        if running_as_root() {
            let path = std::ffi::CString::new(dir.path().as_os_str().as_encoded_bytes())
                .expect("temp dir path has no NUL");
            // SAFETY: `path` is a valid NUL-terminated string.
            let rc = unsafe { libc::chown(path.as_ptr(), UNPRIVILEGED, UNPRIVILEGED) };
            assert_eq!(rc, 0, "cannot chown {}", dir.path().display());
        }
        let data = dir.path().join("data");
        let mut initdb = server_command(&bin, "initdb");
        initdb
            .arg("-D")
            .arg(&data)
            .args(["-U", SUPERUSER, "--auth=trust", "-E", "UTF8", "--locale=C"])
            .arg("--no-sync");
        run(initdb, "initdb");
        // A port found free may be taken before the server binds it: retry.
        let mut last_log = Vec::new();
        for _ in 0..3 {
            let port = free_port();
            match Self::launch(&bin, dir.path(), port, max_connections) {
                Ok((child, log, seen)) => {
                    return PgServer {
                        child: Some(child),
                        port,
                        bin,
                        dir,
                        max_connections,
                        log,
                        seen,
                    };
                }
                Err(log) => last_log = log,
            }
        }
        panic!("PostgreSQL did not start:\n{}", last_log.join("\n"));
    }

    /// Starts the postmaster on the cluster in `dir`/data and waits for its
    /// ready line; `Err` holds its log when it exits or stays silent.
    fn launch(
        bin: &Path,
        dir: &Path,
        port: u16,
        max_connections: u32,
    ) -> Result<(Child, mpsc::Receiver<String>, Vec<String>), Vec<String>> {
        let mut command = server_command(bin, "postgres");
        command
            .arg("-D")
            .arg(dir.join("data"))
            .args(["-p", &port.to_string()])
            .arg("-k")
            .arg(dir)
            .args([
                "-c",
                "listen_addresses=127.0.0.1",
                "-c",
                "fsync=on",
                "-c",
                "shared_buffers=16MB",
                "-c",
                &format!("max_connections={max_connections}"),
            ])
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::piped());
        let mut child = spawn_tied_to_process(command, libc::SIGQUIT)
            .unwrap_or_else(|e| panic!("cannot run postgres: {e}"));
        let stderr = child.stderr.take().expect("stderr is piped");
        let (tx, log) = mpsc::channel();
        thread::spawn(move || {
            for line in BufReader::new(stderr).lines() {
                let Ok(line) = line else { return };
                if tx.send(line).is_err() {
                    return;
                }
            }
        });
        let deadline = Instant::now() + READY_TIMEOUT;
        let mut seen = Vec::new();
        loop {
            let left = deadline.saturating_duration_since(Instant::now());
            match log.recv_timeout(left) {
                Ok(line) => {
                    let ready = line.contains(READY_LINE);
                    seen.push(line);
                    if ready {
                        return Ok((child, log, seen));
                    }
                }
                // The pipe closed (the server exited) or the time is up.
                Err(_) => {
                    let _ = child.kill();
                    let _ = child.wait();
                    return Err(seen);
                }
            }
        }
    }

    /// Creates database `name` (as `createdb` does).
    pub fn create_database(&self, name: &str) {
        let mut createdb = Command::new(self.bin.join("createdb"));
        createdb
            .args(["-h", "127.0.0.1", "-p", &self.port.to_string()])
            .args(["-U", SUPERUSER, name])
            .env_remove("PGPASSWORD")
            .env_remove("PGDATABASE");
        run(createdb, "createdb");
    }

    /// The TCP port the server listens on (127.0.0.1), the same after
    /// [`PgServer::resume`].
    pub fn port(&self) -> u16 {
        self.port
    }

    /// `postgres://postgres@127.0.0.1:PORT/confab_test`.
    pub fn url(&self) -> String {
        self.url_of(DATABASE)
    }

    /// `postgres://postgres@127.0.0.1:PORT/DATABASE`.
    pub fn url_of(&self, database: &str) -> String {
        format!("postgres://{SUPERUSER}@127.0.0.1:{}/{database}", self.port)
    }

    /// The server's log so far.
    pub fn logs(&mut self) -> String {
        while let Ok(line) = self.log.try_recv() {
            self.seen.push(line);
        }
        self.seen.join("\n")
    }

    /// Runs `f` with a client connected to [`PgServer::url`], on a
    /// runtime of its own.
    pub fn with_client<T>(&self, f: impl AsyncFnOnce(&mut tokio_postgres::Client) -> T) -> T {
        let runtime = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .expect("tokio runtime");
        runtime.block_on(async {
            let (mut client, connection) =
                tokio_postgres::connect(&self.url(), tokio_postgres::NoTls)
                    .await
                    .unwrap_or_else(|e| panic!("cannot connect to the test PostgreSQL: {e}"));
            let driver = tokio::spawn(connection);
            let result = f(&mut client).await;
            drop(client);
            let _ = driver.await;
            result
        })
    }

    /// The temporary directory holding the cluster and the socket.
    pub fn dir(&self) -> &Path {
        self.dir.path()
    }

    /// Whether the postmaster runs.
    pub fn is_running(&mut self) -> bool {
        match self.child.as_mut() {
            Some(child) => matches!(child.try_wait(), Ok(None)),
            None => false,
        }
    }

    /// Stops the server with a fast shutdown (SIGINT, what `pg_ctl stop -m
    /// fast` sends: sessions are ended, then the server exits cleanly) and
    /// waits for the exit; a kill if it lingers. The cluster stays for
    /// [`PgServer::resume`]. A no-op when stopped.
    pub fn stop(&mut self) {
        let Some(mut child) = self.child.take() else {
            return;
        };
        if let Ok(pid) = i32::try_from(child.id()) {
            // SAFETY: kill has no memory preconditions; the pid is our child,
            // not yet reaped, so it cannot have been reused.
            unsafe { libc::kill(pid, libc::SIGINT) };
        }
        let deadline = Instant::now() + READY_TIMEOUT;
        loop {
            match child.try_wait() {
                Ok(Some(_)) => return,
                Ok(None) if Instant::now() < deadline => thread::sleep(Duration::from_millis(20)),
                _ => break,
            }
        }
        let _ = child.kill();
        let _ = child.wait();
    }

    /// Starts the stopped server again on the same port and cluster (so
    /// clients reconnect to the same URL); waits until it accepts
    /// connections. Panics with its log if it does not come back.
    pub fn resume(&mut self) {
        assert!(self.child.is_none(), "PostgreSQL is already running");
        // The port was ours a moment ago; another process may grab it in
        // between, so retry briefly before giving up.
        let mut last_log = Vec::new();
        for _ in 0..20 {
            match Self::launch(&self.bin, self.dir.path(), self.port, self.max_connections) {
                Ok((child, log, seen)) => {
                    self.child = Some(child);
                    self.log = log;
                    self.seen.extend(seen);
                    return;
                }
                Err(log) => {
                    let busy = log.iter().any(|l| l.contains("could not bind"));
                    last_log = log;
                    if !busy {
                        break;
                    }
                    thread::sleep(Duration::from_millis(100));
                }
            }
        }
        panic!(
            "PostgreSQL did not come back on port {}:\n{}",
            self.port,
            last_log.join("\n")
        );
    }
}

impl Drop for PgServer {
    fn drop(&mut self) {
        self.stop();
    }
}

/// A TCP port on 127.0.0.1 that was free a moment ago.
fn free_port() -> u16 {
    let listener = std::net::TcpListener::bind("127.0.0.1:0").expect("bind 127.0.0.1:0");
    listener.local_addr().expect("local address").port()
}

// ---------------------------------------------------------------------------
// The shared server of CONFAB_TEST_BACKEND=postgres
// ---------------------------------------------------------------------------

/// The server every confab of this test binary uses on the PostgreSQL
/// backend, and the database of each data directory.
struct Shared {
    server: PgServer,
    databases: HashMap<PathBuf, String>,
}

static SHARED: OnceLock<Mutex<Shared>> = OnceLock::new();

/// The shared server, started (and its exit hook registered) on first use.
fn shared() -> &'static Mutex<Shared> {
    SHARED.get_or_init(|| {
        // Room for a few servers per test running in parallel, each with
        // its pool.
        let server = PgServer::start_bare(300);
        // SAFETY: registering a plain `extern "C" fn` with no arguments.
        let rc = unsafe { libc::atexit(stop_shared) };
        assert_eq!(rc, 0, "atexit failed");
        Mutex::new(Shared {
            server,
            databases: HashMap::new(),
        })
    })
}

/// The exit hook: stops the shared server and removes its directory.
extern "C" fn stop_shared() {
    // Never unwind into the C runtime.
    let _ = std::panic::catch_unwind(|| {
        if let Some(shared) = SHARED.get() {
            let mut shared = lock(shared);
            shared.server.stop();
            let _ = std::fs::remove_dir_all(shared.server.dir());
        }
    });
}

/// The URL of the database of confab data directory `data_dir` on the
/// shared server: created empty on first use, the same for every later
/// server or command on that directory.
pub fn database_url_for(data_dir: &Path) -> String {
    static NEXT: AtomicU64 = AtomicU64::new(1);
    let mut shared = lock(shared());
    let name = match shared.databases.get(data_dir) {
        Some(name) => name.clone(),
        None => {
            let name = format!("confab_{}", NEXT.fetch_add(1, Ordering::Relaxed));
            shared.server.create_database(&name);
            shared
                .databases
                .insert(data_dir.to_path_buf(), name.clone());
            name
        }
    };
    shared.server.url_of(&name)
}
