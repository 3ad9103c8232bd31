//! Shared harness for confab's integration tests.
//!
//! - [`TestServer`] runs the real `confab` binary on `127.0.0.1:0` with a
//!   private data directory, waits for its `confab listening on http://ADDR`
//!   line, keeps draining its output (so the pipes never fill) and offers
//!   stop / restart / log inspection.
//! - [`request`] and friends are a tiny blocking HTTP/1.1 client over
//!   `std::net::TcpStream` (no extra crates), one connection per request.
//! - [`confab_command`] / [`run_confab`] run other CLI subcommands with the
//!   same clean environment.
//!
//! Every child gets a clean environment: inherited `CONFAB_*` and `RUST_LOG`
//! variables are removed, argon2 is made cheap (`CONFAB_ARGON2_MEMORY_KIB=8192`,
//! `CONFAB_ARGON2_ITERATIONS=1`), logging defaults to `CONFAB_LOG=warn`, and
//! the working directory is a private temporary directory so the repository's
//! `./config.toml` is never picked up.
//!
//! With `CONFAB_TEST_BACKEND=postgres` every server and offline command of
//! the harness keeps its data in PostgreSQL instead of the embedded store:
//! a private server per test binary with a fresh database per data
//! directory (see [`postgres::database_url_for`]), passed as
//! `CONFAB_DATABASE_URL` unless the test sets a database itself. Every
//! test runs on both; a test that looks at the embedded store's files checks
//! [`on_postgres`] and looks at the database instead.
//!
//! Nothing here sleeps to synchronise: waits are on events (a line of output,
//! a process exit polled with `try_wait`), each with a deadline that fails the
//! test with the output collected so far.

#![allow(dead_code)] // each test binary uses a different subset

pub mod cluster;
pub mod nats;
pub mod phx;
pub mod postgres;
pub mod receiver;
pub mod reliability;
pub mod smtp;
pub mod ws_frames;

use std::io::{BufRead, BufReader, Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitStatus, Output, Stdio};
use std::sync::mpsc;
use std::sync::{Arc, Mutex};
use std::thread;
use std::time::{Duration, Instant};

use serde_json::{json, Value};
use tempfile::TempDir;

/// The binary under test.
pub const BIN: &str = env!("CARGO_BIN_EXE_confab");

/// How long a server may take to print its listening line.
pub const START_TIMEOUT: Duration = Duration::from_secs(20);

/// How long a stopping server, or a CLI command, may take before the test fails.
pub const EXIT_TIMEOUT: Duration = Duration::from_secs(20);

/// Socket read/write timeout of the HTTP client.
const HTTP_TIMEOUT: Duration = Duration::from_secs(30);

/// The prefix of the line `confab serve` prints on stdout once bound.
const LISTENING: &str = "confab listening on http://";

/// Environment every child process gets (before the caller's own).
const BASE_ENV: &[(&str, &str)] = &[
    ("CONFAB_ARGON2_MEMORY_KIB", "8192"),
    ("CONFAB_ARGON2_ITERATIONS", "1"),
    ("CONFAB_LOG", "warn"),
];

// ---------------------------------------------------------------------------
// Storage backend
// ---------------------------------------------------------------------------

/// The variable that selects the backend the harness runs confab on:
/// `postgres`, or unset (or `redb`) for the embedded store.
pub const BACKEND_VAR: &str = "CONFAB_TEST_BACKEND";

/// Whether this run keeps confab's data in PostgreSQL
/// (`CONFAB_TEST_BACKEND=postgres`).
pub fn on_postgres() -> bool {
    match std::env::var(BACKEND_VAR) {
        Ok(value) if value == "postgres" => true,
        Ok(value) if value.is_empty() || value == "redb" => false,
        Ok(value) => panic!("{BACKEND_VAR}={value:?}: use `postgres` or `redb`"),
        Err(_) => false,
    }
}

/// The environment that points confab at the backend of this run for data
/// directory `data_dir`: on PostgreSQL `CONFAB_DATABASE_URL` of its
/// database, unless `env` already names a database; else nothing.
fn backend_env(data_dir: &Path, env: &[(String, String)]) -> Option<(String, String)> {
    let names_database = env
        .iter()
        .any(|(key, _)| key == "CONFAB_DATABASE_URL" || key == "CONFAB_DATABASE_URL_FILE");
    if !on_postgres() || names_database {
        return None;
    }
    Some((
        "CONFAB_DATABASE_URL".to_string(),
        postgres::database_url_for(data_dir),
    ))
}

// ---------------------------------------------------------------------------
// Processes
// ---------------------------------------------------------------------------

/// A `confab` command with a clean environment, run in `cwd`.
///
/// Inherited `CONFAB_*` and `RUST_LOG` variables are removed, then
/// [`BASE_ENV`] and `env` are set (later entries win). Pass a directory
/// without a `config.toml` as `cwd` unless a default config file is wanted.
pub fn confab_command(cwd: &Path, env: &[(&str, &str)]) -> Command {
    let mut command = Command::new(BIN);
    for (name, _) in std::env::vars_os() {
        if let Some(text) = name.to_str() {
            if text.starts_with("CONFAB_") || text == "RUST_LOG" {
                command.env_remove(&name);
            }
        }
    }
    for (key, value) in BASE_ENV.iter().chain(env) {
        command.env(key, value);
    }
    command.current_dir(cwd);
    command
}

/// Runs `confab ARGS` in `cwd` to completion (at most [`EXIT_TIMEOUT`]),
/// feeding `stdin` if given. Panics on timeout with whatever output there was.
pub fn run_confab(cwd: &Path, args: &[&str], stdin: Option<&str>) -> Output {
    run_confab_with(cwd, &[], args, stdin)
}

/// [`run_confab`] with extra environment variables.
pub fn run_confab_with(
    cwd: &Path,
    env: &[(&str, &str)],
    args: &[&str],
    stdin: Option<&str>,
) -> Output {
    let mut child = confab_command(cwd, env)
        .args(args)
        .stdin(if stdin.is_some() {
            Stdio::piped()
        } else {
            Stdio::null()
        })
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap_or_else(|e| panic!("cannot run {BIN}: {e}"));
    if let Some(text) = stdin {
        let mut pipe = child.stdin.take().expect("stdin is piped");
        // The command may exit before reading; a broken pipe is its problem.
        let _ = pipe.write_all(text.as_bytes());
    }
    let stdout = collect(child.stdout.take().expect("stdout is piped"));
    let stderr = collect(child.stderr.take().expect("stderr is piped"));
    let status = wait_with_deadline(&mut child, EXIT_TIMEOUT);
    let stdout = stdout.join().expect("stdout reader");
    let stderr = stderr.join().expect("stderr reader");
    match status {
        Some(status) => Output {
            status,
            stdout,
            stderr,
        },
        None => {
            let _ = child.kill();
            let _ = child.wait();
            panic!(
                "`confab {}` did not exit within {EXIT_TIMEOUT:?}\nstdout:\n{}\nstderr:\n{}",
                args.join(" "),
                String::from_utf8_lossy(&stdout),
                String::from_utf8_lossy(&stderr)
            );
        }
    }
}

/// Reads a pipe to its end on a thread.
fn collect(mut pipe: impl Read + Send + 'static) -> thread::JoinHandle<Vec<u8>> {
    thread::spawn(move || {
        let mut buf = Vec::new();
        let _ = pipe.read_to_end(&mut buf);
        buf
    })
}

/// Polls `try_wait` until the child exits or `timeout` passes (`None`).
pub fn wait_with_deadline(child: &mut Child, timeout: Duration) -> Option<ExitStatus> {
    let deadline = Instant::now() + timeout;
    loop {
        match child.try_wait() {
            Ok(Some(status)) => return Some(status),
            Ok(None) if Instant::now() >= deadline => return None,
            Ok(None) => thread::sleep(Duration::from_millis(10)),
            Err(e) => panic!("cannot wait for the child: {e}"),
        }
    }
}

/// A one-line summary of a finished command for assertion messages.
pub fn describe_output(output: &Output) -> String {
    format!(
        "status {:?}\nstdout:\n{}\nstderr:\n{}",
        output.status,
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr)
    )
}

/// Why a server did not come up: its exit status (if it exited) and output.
#[derive(Debug)]
pub struct StartFailure {
    pub status: Option<ExitStatus>,
    pub output: String,
}

/// How to start a [`TestServer`]: build with [`TestServer::options`], then
/// [`ServerOptions::start`] or [`ServerOptions::try_start`].
///
/// The command line is always `confab ARGS --listen 127.0.0.1:0 --data DIR`
/// with `ARGS` = `serve` unless [`ServerOptions::args`] says otherwise.
#[derive(Clone, Debug)]
pub struct ServerOptions {
    env: Vec<(String, String)>,
    data_dir: Option<PathBuf>,
    cwd: Option<PathBuf>,
    args: Vec<String>,
}

impl ServerOptions {
    /// Adds an environment variable (after the harness defaults, so e.g.
    /// `CONFAB_LOG` can be overridden).
    pub fn env(mut self, key: &str, value: &str) -> Self {
        self.env.push((key.to_string(), value.to_string()));
        self
    }

    /// Adds several environment variables.
    pub fn envs(mut self, vars: &[(&str, &str)]) -> Self {
        for (key, value) in vars {
            self = self.env(key, value);
        }
        self
    }

    /// Uses `dir` as the data directory instead of a fresh temporary one.
    pub fn data_dir(mut self, dir: impl Into<PathBuf>) -> Self {
        self.data_dir = Some(dir.into());
        self
    }

    /// Runs the server in `dir` (e.g. to test `./config.toml` pickup)
    /// instead of a private empty temporary directory.
    pub fn cwd(mut self, dir: impl Into<PathBuf>) -> Self {
        self.cwd = Some(dir.into());
        self
    }

    /// The arguments before `--listen ... --data ...` (default `["serve"]`;
    /// `[]` runs `confab` without a subcommand).
    pub fn args(mut self, args: &[&str]) -> Self {
        self.args = args.iter().map(|a| a.to_string()).collect();
        self
    }

    /// Starts the server; panics with its output if it does not come up.
    pub fn start(self) -> TestServer {
        match self.try_start() {
            Ok(server) => server,
            Err(failure) => panic!(
                "confab did not start (exit status {:?}); output:\n{}",
                failure.status, failure.output
            ),
        }
    }

    /// Starts the server, or says how the start failed (for tests that
    /// expect the server to refuse to run).
    pub fn try_start(self) -> Result<TestServer, StartFailure> {
        let (data, data_dir) = given_or_temp(self.data_dir);
        let (cwd_dir, cwd) = given_or_temp(self.cwd);
        let mut env = self.env;
        if let Some(database) = backend_env(&data_dir, &env) {
            env.insert(0, database);
        }
        let mut server = TestServer {
            child: None,
            addr: SocketAddr::from(([127, 0, 0, 1], 0)),
            env,
            args: self.args,
            data_dir,
            cwd,
            _data: data,
            _cwd: cwd_dir,
            output: Arc::default(),
        };
        server.spawn()?;
        Ok(server)
    }
}

/// A running `confab serve` child process.
///
/// The data directory is either a [`TempDir`] owned by the server (kept
/// across [`TestServer::restart`]) or a directory given by the caller. The
/// child runs in a private temporary working directory unless told
/// otherwise. Dropping the server kills the child.
pub struct TestServer {
    child: Option<Child>,
    addr: SocketAddr,
    env: Vec<(String, String)>,
    args: Vec<String>,
    data_dir: PathBuf,
    cwd: PathBuf,
    /// Owned data directory, when the caller did not pass one.
    _data: Option<TempDir>,
    /// Owned working directory, when the caller did not pass one.
    _cwd: Option<TempDir>,
    /// Everything the current child wrote to stdout and stderr, line by line.
    output: Arc<Mutex<String>>,
}

impl TestServer {
    /// Options for a server: fresh data directory, default test environment.
    pub fn options() -> ServerOptions {
        ServerOptions {
            env: Vec::new(),
            data_dir: None,
            cwd: None,
            args: vec!["serve".to_string()],
        }
    }

    /// A server with a fresh data directory and the default test environment.
    pub fn start() -> TestServer {
        TestServer::options().start()
    }

    /// A server with extra `CONFAB_*` (or `CONFAB_LOG`) variables, on
    /// `data_dir` if given (for restart tests), else on a fresh temporary
    /// directory. Panics with the collected output if it does not start.
    pub fn start_with(env: &[(&str, &str)], data_dir: Option<PathBuf>) -> TestServer {
        TestServer::try_start_with(env, data_dir).unwrap_or_else(|failure| {
            panic!(
                "confab did not start (exit status {:?}); output:\n{}",
                failure.status, failure.output
            )
        })
    }

    /// Like [`TestServer::start_with`], but returns how the start failed
    /// instead of panicking (for tests that expect the server to refuse).
    pub fn try_start_with(
        env: &[(&str, &str)],
        data_dir: Option<PathBuf>,
    ) -> Result<TestServer, StartFailure> {
        let mut options = TestServer::options().envs(env);
        if let Some(dir) = data_dir {
            options = options.data_dir(dir);
        }
        options.try_start()
    }

    /// Starts the child and waits for its listening line.
    fn spawn(&mut self) -> Result<(), StartFailure> {
        assert!(self.child.is_none(), "the server is already running");
        let output = Arc::new(Mutex::new(String::new()));
        self.output = output.clone();
        let env: Vec<(&str, &str)> = self
            .env
            .iter()
            .map(|(k, v)| (k.as_str(), v.as_str()))
            .collect();
        let data = self.data_dir.to_str().expect("UTF-8 data directory path");
        let mut child = confab_command(&self.cwd, &env)
            .args(&self.args)
            .args(["--listen", "127.0.0.1:0", "--data", data])
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap_or_else(|e| panic!("cannot run {BIN}: {e}"));

        // stdout: every line goes to the buffer and, while someone listens,
        // to the channel the listening line is awaited on.
        let (lines_tx, lines_rx) = mpsc::channel::<String>();
        let stdout = child.stdout.take().expect("stdout is piped");
        let stdout = drain(stdout, output.clone(), Some(lines_tx));
        let stderr = child.stderr.take().expect("stderr is piped");
        let stderr = drain(stderr, output.clone(), None);

        let deadline = Instant::now() + START_TIMEOUT;
        let addr = loop {
            let left = deadline.saturating_duration_since(Instant::now());
            match lines_rx.recv_timeout(left) {
                Ok(line) => {
                    if let Some(rest) = line.trim().strip_prefix(LISTENING) {
                        break rest
                            .parse::<SocketAddr>()
                            .unwrap_or_else(|e| panic!("unparsable listening line {line:?}: {e}"));
                    }
                }
                Err(mpsc::RecvTimeoutError::Timeout) => {
                    let _ = child.kill();
                    let status = child.wait().ok();
                    // The pipes are closed now; let the readers finish.
                    let _ = stdout.join();
                    let _ = stderr.join();
                    return Err(StartFailure {
                        status,
                        output: format!(
                            "(no listening line within {START_TIMEOUT:?})\n{}",
                            lock(&output)
                        ),
                    });
                }
                Err(mpsc::RecvTimeoutError::Disconnected) => {
                    // stdout closed: the process is exiting.
                    let status = wait_with_deadline(&mut child, EXIT_TIMEOUT);
                    if status.is_none() {
                        let _ = child.kill();
                        let _ = child.wait();
                    }
                    // Once the process is gone its stderr closes too.
                    let _ = stderr.join();
                    return Err(StartFailure {
                        status,
                        output: lock(&output).clone(),
                    });
                }
            }
        };
        self.addr = addr;
        self.child = Some(child);
        Ok(())
    }

    /// The address the server listens on.
    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    /// `http://ADDR` + `path`.
    pub fn url(&self, path: &str) -> String {
        format!("http://{}{}", self.addr, path)
    }

    /// The data directory (the same across restarts).
    pub fn data_dir(&self) -> &Path {
        &self.data_dir
    }

    /// Everything the current process wrote to stdout and stderr so far.
    pub fn logs(&self) -> String {
        lock(&self.output).clone()
    }

    /// The process id of the running child, if it runs.
    pub fn pid(&self) -> Option<u32> {
        self.child.as_ref().map(Child::id)
    }

    /// Every message of `room` with `seq > after`, oldest first, read with
    /// `GET /api/rooms/{room}/messages?after=A&limit=200` page by page until
    /// `has_more` is false. Asserts 200 on every page.
    pub fn room_messages_after(&self, room: &str, token: &str, after: u64) -> Vec<Value> {
        let mut all: Vec<Value> = Vec::new();
        let mut cursor = after;
        loop {
            let path = format!("/api/rooms/{room}/messages?after={cursor}&limit=200");
            let response = self.get(&path, Some(token));
            response.assert_status(200, &format!("GET {path}"));
            let body = response.json();
            let page = body["messages"]
                .as_array()
                .unwrap_or_else(|| panic!("GET {path}: no messages array: {}", response.body))
                .clone();
            let has_more = body["has_more"]
                .as_bool()
                .unwrap_or_else(|| panic!("GET {path}: no has_more: {}", response.body));
            let Some(last) = page.last() else {
                assert!(!has_more, "GET {path}: empty page with has_more");
                return all;
            };
            let last_seq = last["seq"]
                .as_u64()
                .unwrap_or_else(|| panic!("GET {path}: message without seq: {last}"));
            assert!(
                last_seq > cursor,
                "GET {path}: page does not advance: {}",
                response.body
            );
            cursor = last_seq;
            all.extend(page);
            if !has_more {
                return all;
            }
        }
    }

    /// Whether the child is still running.
    pub fn is_running(&mut self) -> bool {
        match self.child.as_mut() {
            Some(child) => matches!(child.try_wait(), Ok(None)),
            None => false,
        }
    }

    /// SIGKILL and reap; a no-op if it is not running.
    pub fn kill(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }

    /// Sends `signal` (e.g. `libc::SIGTERM`), then waits up to `timeout` for
    /// the exit; returns the status and how long the exit took. Panics (after
    /// SIGKILL) on timeout.
    pub fn signal_within(
        &mut self,
        signal: libc::c_int,
        timeout: Duration,
    ) -> (ExitStatus, Duration) {
        let mut child = self.child.take().expect("the server is not running");
        let pid = libc::pid_t::try_from(child.id()).expect("pid fits pid_t");
        let started = Instant::now();
        // SAFETY: plain kill(2) on our own child, which has not been reaped.
        let rc = unsafe { libc::kill(pid, signal) };
        assert_eq!(rc, 0, "kill({signal}) failed");
        match wait_with_deadline(&mut child, timeout) {
            Some(status) => (status, started.elapsed()),
            None => {
                let _ = child.kill();
                let _ = child.wait();
                panic!(
                    "confab did not exit within {timeout:?} of signal {signal}; output:\n{}",
                    self.logs()
                );
            }
        }
    }

    /// SIGTERM, then waits up to `timeout`; see [`TestServer::signal_within`].
    pub fn terminate_within(&mut self, timeout: Duration) -> (ExitStatus, Duration) {
        self.signal_within(libc::SIGTERM, timeout)
    }

    /// SIGTERM and wait (at most [`EXIT_TIMEOUT`]); returns the exit status.
    pub fn terminate(&mut self) -> ExitStatus {
        self.terminate_within(EXIT_TIMEOUT).0
    }

    /// Stops the server if it runs (SIGTERM, asserting a clean exit) and
    /// starts it again on the same data directory with the same environment.
    /// The address changes.
    pub fn restart(&mut self) {
        if self.child.is_some() {
            let status = self.terminate();
            assert!(
                status.success(),
                "confab exited with {status:?} on SIGTERM; output:\n{}",
                self.logs()
            );
        }
        if let Err(failure) = self.spawn() {
            panic!(
                "confab did not restart (exit status {:?}); output:\n{}",
                failure.status, failure.output
            );
        }
    }

    // --- HTTP shortcuts against this server ---

    /// See [`request`].
    pub fn request(
        &self,
        method: &str,
        path: &str,
        bearer: Option<&str>,
        body: Option<&str>,
        headers: &[(&str, &str)],
    ) -> Response {
        request(
            self.addr,
            method,
            path,
            bearer,
            body.map(str::as_bytes),
            headers,
        )
    }

    /// `GET path` with an optional bearer token.
    pub fn get(&self, path: &str, bearer: Option<&str>) -> Response {
        self.request("GET", path, bearer, None, &[])
    }

    /// `method path` with a JSON body and an optional bearer token.
    pub fn send_json(
        &self,
        method: &str,
        path: &str,
        bearer: Option<&str>,
        body: &Value,
    ) -> Response {
        self.request(
            method,
            path,
            bearer,
            Some(&body.to_string()),
            &[("Content-Type", "application/json")],
        )
    }

    /// `POST path` with a JSON body.
    pub fn post_json(&self, path: &str, bearer: Option<&str>, body: &Value) -> Response {
        self.send_json("POST", path, bearer, body)
    }

    /// Registers `username` (asserting 201); returns `(token, user)`.
    #[track_caller]
    pub fn register(&self, username: &str, password: &str) -> (String, Value) {
        let response = self.post_json(
            "/api/register",
            None,
            &json!({"username": username, "password": password}),
        );
        response.assert_status(201, &format!("register {username}"));
        session_parts(&response)
    }

    /// Logs in (asserting 200); returns `(token, user)`.
    #[track_caller]
    pub fn login(&self, username: &str, password: &str) -> (String, Value) {
        let response = self.try_login(username, password);
        response.assert_status(200, &format!("login {username}"));
        session_parts(&response)
    }

    /// `POST /api/login` without asserting anything.
    pub fn try_login(&self, username: &str, password: &str) -> Response {
        self.post_json(
            "/api/login",
            None,
            &json!({"username": username, "password": password}),
        )
    }

    /// Registers every name in `usernames` with `password`; returns their
    /// tokens in the same order.
    #[track_caller]
    pub fn register_all<const N: usize>(
        &self,
        usernames: [&str; N],
        password: &str,
    ) -> [String; N] {
        usernames.map(|name| self.register(name, password).0)
    }

    /// Posts `body` to `room` over REST (asserting 201); returns the stored
    /// message.
    #[track_caller]
    pub fn post_message(&self, room: &str, token: &str, body: &Value) -> Value {
        let response = self.post_json(&format!("/api/rooms/{room}/messages"), Some(token), body);
        response.assert_status(201, &format!("message to {room}"));
        response.json()["message"].clone()
    }

    /// Stops the server with SIGTERM, asserting a clean exit (the store is
    /// then free for offline commands; [`TestServer::restart`] brings it back).
    #[track_caller]
    pub fn stop(&mut self) {
        let status = self.terminate();
        assert!(
            status.success(),
            "SIGTERM exit: {status:?}; output:\n{}",
            self.logs()
        );
    }
}

// ---------------------------------------------------------------------------
// Offline commands on a data directory
// ---------------------------------------------------------------------------

/// A private working directory and a data directory for `confab`
/// subcommands that work on a stopped server's store (`user`, `export`,
/// `import`, `serve` with a config file).
pub struct Cli {
    cwd: TempDir,
    data: PathBuf,
    _owned: Option<TempDir>,
}

impl Cli {
    /// A fresh, empty data directory.
    pub fn fresh() -> Cli {
        let owned = temp_dir();
        Cli {
            cwd: temp_dir(),
            data: owned.path().to_path_buf(),
            _owned: Some(owned),
        }
    }

    /// An existing data directory (e.g. a stopped [`TestServer`]'s).
    pub fn on(data: &Path) -> Cli {
        Cli {
            cwd: temp_dir(),
            data: data.to_path_buf(),
            _owned: None,
        }
    }

    /// The working directory the commands run in.
    pub fn cwd(&self) -> &Path {
        self.cwd.path()
    }

    /// The data directory passed as `--data`.
    pub fn data(&self) -> &Path {
        &self.data
    }

    /// Runs `confab ARGS --data DIR`, feeding `stdin` if given (on the
    /// PostgreSQL backend with the data directory's database).
    pub fn run(&self, args: &[&str], stdin: Option<&str>) -> Output {
        let data = self.data.to_str().expect("UTF-8 data directory");
        let mut all = args.to_vec();
        all.extend(["--data", data]);
        let database = backend_env(&self.data, &[]);
        let env: Vec<(&str, &str)> = database
            .iter()
            .map(|(k, v)| (k.as_str(), v.as_str()))
            .collect();
        run_confab_with(self.cwd(), &env, &all, stdin)
    }

    /// [`Cli::run`], asserting exit 0.
    #[track_caller]
    pub fn run_ok(&self, args: &[&str], stdin: Option<&str>) -> Output {
        let output = self.run(args, stdin);
        assert_success(&output, &args.join(" "));
        output
    }

    /// `confab export --out FILE` of the data directory (asserting exit 0);
    /// returns the file's text.
    #[track_caller]
    pub fn export(&self, file: &Path) -> String {
        self.run_ok(
            &["export", "--out", file.to_str().expect("UTF-8 path")],
            None,
        );
        std::fs::read_to_string(file).expect("export file")
    }
}

/// Asserts `output` is a successful exit, showing it otherwise.
#[track_caller]
pub fn assert_success(output: &Output, what: &str) {
    assert!(
        output.status.success(),
        "{what} failed: {}",
        describe_output(output)
    );
}

impl Drop for TestServer {
    fn drop(&mut self) {
        self.kill();
    }
}

/// `(token, user)` of a `{user, token, expires_at}` reply.
#[track_caller]
fn session_parts(response: &Response) -> (String, Value) {
    let body = response.json();
    let token = body["token"]
        .as_str()
        .unwrap_or_else(|| panic!("no token in {}", response.body))
        .to_string();
    assert!(
        body["user"].is_object(),
        "no user object in {}",
        response.body
    );
    (token, body["user"].clone())
}

/// Copies a pipe into `output` line by line (and to `lines` while it is
/// listened to) on a thread that ends when the pipe closes.
fn drain(
    pipe: impl Read + Send + 'static,
    output: Arc<Mutex<String>>,
    lines: Option<mpsc::Sender<String>>,
) -> thread::JoinHandle<()> {
    thread::spawn(move || {
        let mut reader = BufReader::new(pipe);
        let mut buf = Vec::new();
        loop {
            buf.clear();
            match reader.read_until(b'\n', &mut buf) {
                Ok(0) | Err(_) => break,
                Ok(_) => {
                    let line = String::from_utf8_lossy(&buf).into_owned();
                    lock(&output).push_str(&line);
                    if let Some(lines) = &lines {
                        // The receiver goes away once the server is up.
                        let _ = lines.send(line);
                    }
                }
            }
        }
    })
}

fn lock(output: &Mutex<String>) -> std::sync::MutexGuard<'_, String> {
    output.lock().unwrap_or_else(|p| p.into_inner())
}

// ---------------------------------------------------------------------------
// HTTP client
// ---------------------------------------------------------------------------

/// An HTTP response.
#[derive(Clone, Debug)]
pub struct Response {
    pub status: u16,
    /// Header names in lower case, in the order received.
    pub headers: Vec<(String, String)>,
    /// The body (chunked encoding removed), as text.
    pub body: String,
}

impl Response {
    /// The body parsed as JSON; panics with the body if it is not JSON.
    #[track_caller]
    pub fn json(&self) -> Value {
        serde_json::from_str(&self.body).unwrap_or_else(|e| {
            panic!(
                "response ({}) is not JSON: {e}\nbody: {}",
                self.status, self.body
            )
        })
    }

    /// The first value of header `name` (case-insensitive).
    pub fn header(&self, name: &str) -> Option<&str> {
        let name = name.to_ascii_lowercase();
        self.headers
            .iter()
            .find(|(n, _)| *n == name)
            .map(|(_, v)| v.as_str())
    }

    /// Panics unless the status is `status`, showing `what` and the body.
    #[track_caller]
    pub fn assert_status(&self, status: u16, what: &str) -> &Self {
        assert_eq!(
            self.status, status,
            "{what}: expected HTTP {status}, got {}; body: {}",
            self.status, self.body
        );
        self
    }

    /// Asserts the api.md error shape: `status`, `{"error": code, "message": ...}`
    /// with a non-empty message and a JSON content type. Returns the body.
    #[track_caller]
    pub fn assert_error(&self, status: u16, code: &str, what: &str) -> Value {
        self.assert_status(status, what);
        let content_type = self.header("content-type").unwrap_or("");
        assert!(
            content_type.starts_with("application/json"),
            "{what}: error content-type is {content_type:?}; body: {}",
            self.body
        );
        let body = self.json();
        assert_eq!(
            body["error"], code,
            "{what}: wrong error code; body: {}",
            self.body
        );
        assert!(
            body["message"].as_str().is_some_and(|m| !m.is_empty()),
            "{what}: error without a message; body: {}",
            self.body
        );
        body
    }
}

/// Sends one request on a fresh connection (`Connection: close`) and reads
/// the whole response. `body`, if given, is sent with its `Content-Length`;
/// `headers` are added as given (so a test can also send its own framing,
/// e.g. `Transfer-Encoding`, with `body: None` and [`request_raw`]).
pub fn request(
    addr: SocketAddr,
    method: &str,
    path: &str,
    bearer: Option<&str>,
    body: Option<&[u8]>,
    headers: &[(&str, &str)],
) -> Response {
    let mut head = format!("{method} {path} HTTP/1.1\r\nHost: {addr}\r\nConnection: close\r\n");
    if let Some(token) = bearer {
        head.push_str(&format!("Authorization: Bearer {token}\r\n"));
    }
    for (name, value) in headers {
        head.push_str(&format!("{name}: {value}\r\n"));
    }
    if let Some(body) = body {
        head.push_str(&format!("Content-Length: {}\r\n", body.len()));
    }
    head.push_str("\r\n");
    let mut raw = head.into_bytes();
    raw.extend_from_slice(body.unwrap_or_default());
    request_raw(addr, &raw, method == "HEAD")
}

/// Writes `raw` bytes as the request and parses the response. A write error
/// is tolerated (the server may answer early, e.g. 413, and close), as is a
/// reset after the response arrived.
pub fn request_raw(addr: SocketAddr, raw: &[u8], head_request: bool) -> Response {
    let bytes = exchange(addr, raw);
    parse_response(&bytes, head_request).unwrap_or_else(|e| {
        panic!(
            "bad HTTP response ({e}): {:?}",
            String::from_utf8_lossy(&bytes)
        )
    })
}

/// A response whose body is kept as bytes (e.g. an image).
#[derive(Clone, Debug)]
pub struct RawResponse {
    pub status: u16,
    /// Header names in lower case, in the order received.
    pub headers: Vec<(String, String)>,
    pub body: Vec<u8>,
}

/// [`request_raw`] for responses whose body need not be text.
pub fn request_raw_bytes(addr: SocketAddr, raw: &[u8], head_request: bool) -> RawResponse {
    let bytes = exchange(addr, raw);
    let (status, headers, body) = parse_response_parts(&bytes, head_request).unwrap_or_else(|e| {
        panic!(
            "bad HTTP response ({e}): {:?}",
            String::from_utf8_lossy(&bytes)
        )
    });
    RawResponse {
        status,
        headers,
        body,
    }
}

/// Writes `raw` on a fresh connection and reads until the server closes it.
fn exchange(addr: SocketAddr, raw: &[u8]) -> Vec<u8> {
    let mut stream =
        TcpStream::connect(addr).unwrap_or_else(|e| panic!("cannot connect to {addr}: {e}"));
    stream.set_read_timeout(Some(HTTP_TIMEOUT)).unwrap();
    stream.set_write_timeout(Some(HTTP_TIMEOUT)).unwrap();
    let write_error = stream.write_all(raw).err();
    let mut bytes = Vec::new();
    let mut chunk = [0u8; 16 * 1024];
    loop {
        match stream.read(&mut chunk) {
            Ok(0) => break,
            Ok(n) => bytes.extend_from_slice(&chunk[..n]),
            Err(e) if e.kind() == std::io::ErrorKind::Interrupted => {}
            Err(e) if !bytes.is_empty() && e.kind() == std::io::ErrorKind::ConnectionReset => break,
            Err(e) => panic!(
                "reading the response from {addr} failed: {e} (write error: {write_error:?}; \
                 read so far: {:?})",
                String::from_utf8_lossy(&bytes)
            ),
        }
    }
    bytes
}

/// Parses a complete HTTP/1.1 response (status line, headers, body framed by
/// `Transfer-Encoding: chunked`, `Content-Length`, or the connection's end).
fn parse_response(bytes: &[u8], head_request: bool) -> Result<Response, String> {
    let (status, headers, body) = parse_response_parts(bytes, head_request)?;
    Ok(Response {
        status,
        headers,
        body: String::from_utf8(body).map_err(|e| format!("body not UTF-8: {e}"))?,
    })
}

/// A response's status, headers and body bytes.
type Parts = (u16, Vec<(String, String)>, Vec<u8>);

/// [`parse_response`] without requiring a text body.
fn parse_response_parts(bytes: &[u8], head_request: bool) -> Result<Parts, String> {
    let end = find(bytes, b"\r\n\r\n").ok_or("no end of headers")?;
    let head = std::str::from_utf8(&bytes[..end]).map_err(|e| format!("head not UTF-8: {e}"))?;
    let mut lines = head.split("\r\n");
    let status_line = lines.next().ok_or("empty response")?;
    let mut parts = status_line.splitn(3, ' ');
    let version = parts.next().unwrap_or("");
    if !version.starts_with("HTTP/1.") {
        return Err(format!("bad status line {status_line:?}"));
    }
    let status: u16 = parts
        .next()
        .and_then(|s| s.parse().ok())
        .ok_or_else(|| format!("bad status line {status_line:?}"))?;
    let mut headers = Vec::new();
    for line in lines {
        let (name, value) = line
            .split_once(':')
            .ok_or_else(|| format!("bad header line {line:?}"))?;
        headers.push((name.trim().to_ascii_lowercase(), value.trim().to_string()));
    }
    let rest = &bytes[end + 4..];
    let header = |name: &str| {
        headers
            .iter()
            .find(|(n, _)| n == name)
            .map(|(_, v)| v.as_str())
    };
    let body: Vec<u8> = if head_request || status == 204 || status == 304 {
        Vec::new()
    } else if header("transfer-encoding").is_some_and(|v| v.eq_ignore_ascii_case("chunked")) {
        dechunk(rest)?
    } else if let Some(length) = header("content-length") {
        let length: usize = length
            .parse()
            .map_err(|_| format!("bad content-length {length:?}"))?;
        if rest.len() < length {
            return Err(format!(
                "body shorter ({}) than content-length {length}",
                rest.len()
            ));
        }
        rest[..length].to_vec()
    } else {
        rest.to_vec()
    };
    Ok((status, headers, body))
}

/// Removes chunked transfer coding.
fn dechunk(mut data: &[u8]) -> Result<Vec<u8>, String> {
    let mut out = Vec::new();
    loop {
        let line_end = find(data, b"\r\n").ok_or("truncated chunk size")?;
        let size_text = std::str::from_utf8(&data[..line_end]).map_err(|e| e.to_string())?;
        let size_text = size_text.split(';').next().unwrap_or("").trim();
        let size = usize::from_str_radix(size_text, 16)
            .map_err(|_| format!("bad chunk size {size_text:?}"))?;
        data = &data[line_end + 2..];
        if size == 0 {
            return Ok(out);
        }
        if data.len() < size + 2 {
            return Err("truncated chunk".into());
        }
        out.extend_from_slice(&data[..size]);
        data = &data[size + 2..];
    }
}

fn find(haystack: &[u8], needle: &[u8]) -> Option<usize> {
    haystack.windows(needle.len()).position(|w| w == needle)
}

// ---------------------------------------------------------------------------
// Small helpers
// ---------------------------------------------------------------------------

/// `dir` if given, else a fresh temporary directory (returned too, so that
/// it lives as long as its user).
fn given_or_temp(dir: Option<PathBuf>) -> (Option<TempDir>, PathBuf) {
    match dir {
        Some(dir) => (None, dir),
        None => {
            let temp = temp_dir();
            let path = temp.path().to_path_buf();
            (Some(temp), path)
        }
    }
}

/// A fresh temporary directory (for CLI tests' data and working dirs).
pub fn temp_dir() -> TempDir {
    TempDir::new().expect("temporary directory")
}

/// An address on which nothing listens (bound, then released).
pub fn closed_port() -> SocketAddr {
    let listener = std::net::TcpListener::bind("127.0.0.1:0").expect("bind 127.0.0.1:0");
    let addr = listener.local_addr().expect("local address");
    drop(listener);
    addr
}

/// Polls `probe` every 50 ms until it returns `Some`, or panics with
/// `what` after `timeout`. For waiting on events that have no notification
/// (e.g. a token's expiry), never as a substitute for one.
#[track_caller]
pub fn wait_for<T>(timeout: Duration, what: &str, mut probe: impl FnMut() -> Option<T>) -> T {
    let deadline = Instant::now() + timeout;
    loop {
        if let Some(value) = probe() {
            return value;
        }
        assert!(
            Instant::now() < deadline,
            "timed out after {timeout:?} waiting for {what}"
        );
        thread::sleep(Duration::from_millis(50));
    }
}

/// A `kB` field (e.g. `VmRSS`, `VmHWM`) of `/proc/<pid>/status`, in KiB.
pub fn proc_status_kib(pid: u32, field: &str) -> Option<u64> {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).ok()?;
    status.lines().find_map(|line| {
        let rest = line.strip_prefix(field)?.strip_prefix(':')?;
        rest.trim().trim_end_matches("kB").trim().parse().ok()
    })
}
