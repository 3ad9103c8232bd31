//! A private PostgreSQL server for one test: [`PgServer::start`] finds the
//! server binaries (`pg_config --bindir`, else `/usr/lib/postgresql/*/bin`),
//! runs `initdb` into a temporary directory, starts `postgres` on 127.0.0.1
//! at a free port (its unix socket inside the same directory) with
//! `fsync=on`, waits for its "ready to accept connections" line, creates a
//! database and offers its URL. Dropping it stops the server (a fast
//! shutdown, as `pg_ctl stop -m fast` sends, then a kill if it lingers),
//! also when the test fails.
//!
//! PostgreSQL refuses to run as root, and tests and CI run as root: then
//! the directory is given to uid/gid 65534 (nobody) and `initdb` and
//! `postgres` run as that user. Without PostgreSQL installed the test fails
//! saying so.

use std::io::{BufRead, BufReader};
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};
use std::sync::mpsc;
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

/// A running private PostgreSQL server.
pub struct PgServer {
    child: Child,
    port: u16,
    bin: PathBuf,
    dir: TempDir,
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

impl PgServer {
    /// Initialises and starts a server with database [`DATABASE`].
    pub fn start() -> PgServer {
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
            match Self::launch(&bin, dir.path(), &data, port) {
                Ok((child, log, seen)) => {
                    let server = PgServer {
                        child,
                        port,
                        bin,
                        dir,
                        log,
                        seen,
                    };
                    server.create_database();
                    return server;
                }
                Err(log) => last_log = log,
            }
        }
        panic!("PostgreSQL did not start:\n{}", last_log.join("\n"));
    }

    /// Starts the postmaster and waits for its ready line; `Err` holds its
    /// log when it exits or stays silent.
    fn launch(
        bin: &Path,
        dir: &Path,
        data: &Path,
        port: u16,
    ) -> Result<(Child, mpsc::Receiver<String>, Vec<String>), Vec<String>> {
        let mut child = server_command(bin, "postgres")
            .arg("-D")
            .arg(data)
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
                "max_connections=100",
            ])
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .spawn()
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

    fn create_database(&self) {
        let mut createdb = Command::new(self.bin.join("createdb"));
        createdb
            .args(["-h", "127.0.0.1", "-p", &self.port.to_string()])
            .args(["-U", SUPERUSER, DATABASE])
            .env_remove("PGPASSWORD");
        run(createdb, "createdb");
    }

    /// The TCP port the server listens on (127.0.0.1).
    pub fn port(&self) -> u16 {
        self.port
    }

    /// `postgres://postgres@127.0.0.1:PORT/confab_test`.
    pub fn url(&self) -> String {
        format!("postgres://{SUPERUSER}@127.0.0.1:{}/{DATABASE}", self.port)
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
}

impl Drop for PgServer {
    fn drop(&mut self) {
        // SIGINT is PostgreSQL's fast shutdown (what `pg_ctl stop -m fast`
        // sends): sessions are ended, then the server exits cleanly.
        if let Ok(pid) = i32::try_from(self.child.id()) {
            // SAFETY: kill has no memory preconditions; the pid is our child,
            // not yet reaped, so it cannot have been reused.
            unsafe { libc::kill(pid, libc::SIGINT) };
        }
        let deadline = Instant::now() + READY_TIMEOUT;
        loop {
            match self.child.try_wait() {
                Ok(Some(_)) => return,
                Ok(None) if Instant::now() < deadline => thread::sleep(Duration::from_millis(20)),
                _ => break,
            }
        }
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// A TCP port on 127.0.0.1 that was free a moment ago.
fn free_port() -> u16 {
    let listener = std::net::TcpListener::bind("127.0.0.1:0").expect("bind 127.0.0.1:0");
    listener.local_addr().expect("local address").port()
}
