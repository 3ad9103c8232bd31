//! The `confab` command line (api.md §1): help, account administration on a
//! stopped server's data directory (on a running one: tests/admin_socket.rs), the data-directory lock, config file
//! errors, `gen-secret` and `healthcheck`.

mod common;

use std::fs;
use std::process::Output;

use common::{assert_success, describe_output, run_confab, temp_dir, Cli, TestServer};

fn stdout(output: &Output) -> String {
    String::from_utf8_lossy(&output.stdout).into_owned()
}

fn stderr(output: &Output) -> String {
    String::from_utf8_lossy(&output.stderr).into_owned()
}

/// Asserts a non-zero exit with exactly one non-empty line on stderr; returns it.
fn assert_one_line_failure(output: &Output, what: &str) -> String {
    assert!(
        !output.status.success() && output.status.code().is_some(),
        "{what} should exit non-zero: {}",
        describe_output(output)
    );
    let text = stderr(output);
    let lines: Vec<&str> = text.lines().filter(|l| !l.trim().is_empty()).collect();
    assert_eq!(
        lines.len(),
        1,
        "{what}: expected one line on stderr: {}",
        describe_output(output)
    );
    lines[0].to_string()
}

/// Runs `args` with `cli` and asserts a one-line failure; returns the line.
#[track_caller]
fn failure_line(cli: &Cli, args: &[&str], stdin: Option<&str>, what: &str) -> String {
    assert_one_line_failure(&cli.run(args, stdin), what)
}

/// The password from a `password: X` line.
fn printed_password(output: &Output) -> String {
    stdout(output)
        .lines()
        .find_map(|l| l.strip_prefix("password: "))
        .unwrap_or_else(|| panic!("no password line: {}", describe_output(output)))
        .trim()
        .to_string()
}

#[test]
fn help_lists_the_commands() {
    let cwd = temp_dir();
    let output = run_confab(cwd.path(), &["--help"], None);
    assert_success(&output, "confab --help");
    let text = stdout(&output);
    for command in ["serve", "user", "gen-secret", "healthcheck"] {
        assert!(
            text.lines()
                .any(|l| l.split_whitespace().next() == Some(command)),
            "--help does not list {command}:\n{text}"
        );
    }
    let output = run_confab(cwd.path(), &["user", "--help"], None);
    assert_success(&output, "confab user --help");
    let text = stdout(&output);
    for command in ["add", "passwd", "list", "disable", "enable"] {
        assert!(
            text.lines()
                .any(|l| l.split_whitespace().next() == Some(command)),
            "user --help does not list {command}:\n{text}"
        );
    }
    let output = run_confab(cwd.path(), &["no-such-command"], None);
    assert!(
        !output.status.success(),
        "an unknown command must fail: {}",
        describe_output(&output)
    );
}

#[test]
fn user_add_prints_a_password_that_logs_in() {
    let cli = Cli::fresh();
    let output = cli.run(
        &[
            "user",
            "add",
            "alice",
            "--display-name",
            "Alice A.",
            "--email",
            "alice@example.com",
        ],
        None,
    );
    assert_success(&output, "user add alice");
    let password = printed_password(&output);
    assert!(
        password.len() >= 16,
        "generated password too short: {password:?}"
    );
    assert!(
        stdout(&output).contains("alice"),
        "{}",
        describe_output(&output)
    );

    let output = cli.run(&["user", "add", "bob"], None);
    assert_success(&output, "user add bob");
    let bob_password = printed_password(&output);
    assert_ne!(password, bob_password, "generated passwords differ");

    let output = cli.run(&["user", "list"], None);
    assert_success(&output, "user list");
    let list = stdout(&output);
    assert!(
        list.contains("alice") && list.contains("bob"),
        "user list:\n{list}"
    );

    // Invalid input is one line, non-zero, and creates nothing.
    let line = failure_line(
        &cli,
        &["user", "add", "Bad Name"],
        None,
        "user add with a bad name",
    );
    assert!(line.contains("username"), "{line}");
    let line = failure_line(
        &cli,
        &["user", "add", "alice"],
        None,
        "user add with a taken name",
    );
    assert!(line.contains("username"), "{line}");

    let server = TestServer::start_with(&[], Some(cli.data().to_path_buf()));
    let (_, alice) = server.login("alice", &password);
    assert_eq!(alice["admin"], true, "the first user is admin: {alice}");
    assert_eq!(alice["display_name"], "Alice A.");
    assert_eq!(alice["email"], "alice@example.com");
    let (_, bob) = server.login("bob", &bob_password);
    assert_eq!(bob["admin"], false, "the second user is not admin: {bob}");
    server.try_login("alice", &bob_password).assert_error(
        401,
        "invalid_credentials",
        "alice with bob's password",
    );
}

#[test]
fn password_stdin_and_passwd() {
    let cli = Cli::fresh();
    let output = cli.run(
        &["user", "add", "alice", "--password-stdin"],
        Some("first-password\n"),
    );
    assert_success(&output, "user add --password-stdin");
    assert!(
        !stdout(&output).contains("password:") && !stdout(&output).contains("first-password"),
        "a password from stdin is not printed: {}",
        describe_output(&output)
    );

    let mut server = TestServer::start_with(&[], Some(cli.data().to_path_buf()));
    let (old_token, _) = server.login("alice", "first-password");
    server.terminate();

    let output = cli.run(
        &["user", "passwd", "alice", "--password-stdin"],
        Some("second-password\n"),
    );
    assert_success(&output, "user passwd --password-stdin");

    server.restart();
    server.try_login("alice", "first-password").assert_error(
        401,
        "invalid_credentials",
        "the old password",
    );
    server.login("alice", "second-password");
    server.get("/api/me", Some(&old_token)).assert_error(
        401,
        "unauthorized",
        "a token from before passwd",
    );
    server.terminate();

    // Without --password-stdin a new password is generated and printed.
    let output = cli.run(&["user", "passwd", "alice"], None);
    assert_success(&output, "user passwd");
    let generated = printed_password(&output);
    // Bad input: a short password, an unknown user.
    let line = failure_line(
        &cli,
        &["user", "passwd", "alice", "--password-stdin"],
        Some("short\n"),
        "passwd with a short password",
    );
    assert!(line.contains("password"), "{line}");
    let line = failure_line(
        &cli,
        &["user", "passwd", "nobody", "--password-stdin"],
        Some("long-enough-password\n"),
        "passwd for an unknown user",
    );
    assert!(line.contains("nobody"), "{line}");

    server.restart();
    server.try_login("alice", "second-password").assert_error(
        401,
        "invalid_credentials",
        "the replaced password",
    );
    server.login("alice", &generated);
}

#[test]
fn a_running_server_locks_the_data_directory() {
    let server = TestServer::start();
    let data = server.data_dir().to_path_buf();

    let failure = match TestServer::try_start_with(&[], Some(data.clone())) {
        Ok(second) => panic!(
            "a second server started on the same data directory at {}",
            second.addr()
        ),
        Err(failure) => failure,
    };
    let status = failure
        .status
        .unwrap_or_else(|| panic!("the second server did not exit: {}", failure.output));
    assert!(!status.success(), "second server exit status {status:?}");
    assert!(
        failure
            .output
            .lines()
            .any(|l| l.contains("in use by a running server")),
        "no 'in use' line:\n{}",
        failure.output
    );

    // Store commands go through the server's admin socket (tests/admin_socket.rs);
    // without it, they say the directory is in use, in one line.
    std::fs::remove_file(data.join("admin.sock")).expect("the server's admin socket");
    let cli = Cli::on(&data);
    for args in [
        &["user", "add", "carol"][..],
        &["user", "list"],
        &["user", "disable", "carol"],
    ] {
        let line = failure_line(&cli, args, None, &args.join(" "));
        assert!(line.contains("in use by a running server"), "{line}");
    }

    // The first server is unharmed.
    server
        .get("/healthz", None)
        .assert_status(200, "first server");
}

#[test]
fn bad_config_files_name_the_key_and_line() {
    let cli = Cli::fresh();
    let cases = [
        ("unknown key", "# comment\nlistn = \"x\"\n", "listn"),
        (
            "wrong type",
            "listen = \"127.0.0.1:0\"\nheartbeat_timeout_secs = \"abc\"\n",
            "heartbeat_timeout_secs",
        ),
        (
            "out of range",
            "\nshutdown_grace_secs = 0\n",
            "shutdown_grace_secs",
        ),
    ];
    for (what, text, key) in cases {
        let file = cli.cwd().join(format!("{}.toml", what.replace(' ', "-")));
        fs::write(&file, text).unwrap();
        let file_arg = file.to_str().unwrap();
        // --listen and --data keep a wrongly accepted config from touching
        // port 4000 or ./data.
        let output = cli.run(
            &["--config", file_arg, "serve", "--listen", "127.0.0.1:0"],
            None,
        );
        let line = assert_one_line_failure(&output, what);
        assert!(
            line.contains(key),
            "{what}: the key {key:?} is not named: {line}"
        );
        assert!(
            line.contains("line 2"),
            "{what}: 'line 2' is not named: {line}"
        );
        assert!(
            !stdout(&output).contains("listening"),
            "{what}: the server started: {}",
            describe_output(&output)
        );
    }
    // The unknown key gets a suggestion.
    let file = cli.cwd().join("unknown-key.toml");
    let line = failure_line(
        &cli,
        &["--config", file.to_str().unwrap(), "user", "list"],
        None,
        "unknown key for user list",
    );
    assert!(line.contains("listen"), "no suggestion: {line}");

    // A missing explicit config file is an error too.
    let missing = cli.cwd().join("missing.toml");
    let line = failure_line(
        &cli,
        &["--config", missing.to_str().unwrap(), "serve"],
        None,
        "missing config file",
    );
    assert!(line.contains("missing.toml"), "{line}");
}

#[test]
fn gen_secret_prints_a_fresh_url_safe_secret() {
    let cwd = temp_dir();
    let mut secrets = Vec::new();
    for _ in 0..2 {
        let output = run_confab(cwd.path(), &["gen-secret"], None);
        assert_success(&output, "gen-secret");
        let text = stdout(&output);
        let secret = text.trim().to_string();
        assert_eq!(text.lines().count(), 1, "one line: {text:?}");
        assert!(secret.len() >= 43, "secret too short: {secret:?}");
        assert!(
            secret
                .chars()
                .all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '_'),
            "not URL-safe: {secret:?}"
        );
        secrets.push(secret);
    }
    assert_ne!(secrets[0], secrets[1], "two secrets must differ");

    // A generated secret is accepted by the server.
    let server = TestServer::start_with(&[("CONFAB_JWT_SECRET", &secrets[0])], None);
    let (token, _) = server.register("alice", "alice-password");
    server
        .get("/api/me", Some(&token))
        .assert_status(200, "token under a generated secret");
}

#[test]
fn healthcheck_probes_a_server() {
    let server = TestServer::start();
    let cwd = temp_dir();
    let url = server.url("");
    let output = run_confab(cwd.path(), &["healthcheck", "--url", &url], None);
    assert_success(&output, "healthcheck against a running server");
    // The listen address from the environment works as the default target.
    let listen = server.addr().to_string();
    let output = common::run_confab_with(
        cwd.path(),
        &[("CONFAB_LISTEN", &listen)],
        &["healthcheck"],
        None,
    );
    assert_success(&output, "healthcheck from CONFAB_LISTEN");

    let closed = format!("http://{}", common::closed_port());
    let output = run_confab(cwd.path(), &["healthcheck", "--url", &closed], None);
    assert_one_line_failure(&output, "healthcheck against a closed port");
    let output = run_confab(cwd.path(), &["healthcheck", "--url", "https://x"], None);
    assert_one_line_failure(&output, "healthcheck with an https URL");
}

#[test]
fn disabling_an_unknown_user_fails_in_one_line() {
    let cli = Cli::fresh();
    let line = failure_line(
        &cli,
        &["user", "disable", "nobody"],
        None,
        "user disable nobody",
    );
    assert!(line.contains("nobody"), "the user is not named: {line}");
    let line = failure_line(
        &cli,
        &["user", "enable", "nobody"],
        None,
        "user enable nobody",
    );
    assert!(line.contains("nobody"), "the user is not named: {line}");
}

#[test]
fn no_subcommand_means_serve() {
    let server = TestServer::options().args(&[]).start();
    server
        .get("/healthz", None)
        .assert_status(200, "confab without a subcommand serves");
}

#[test]
fn settings_precedence_file_env_flags() {
    // ./config.toml in the working directory is read when present.
    let cwd = temp_dir();
    fs::write(
        cwd.path().join("config.toml"),
        "registration = \"closed\"\ntoken_ttl_secs = 77\nlisten = \"127.0.0.1:1\"\n",
    )
    .unwrap();
    let server = TestServer::options()
        .cwd(cwd.path())
        .env("CONFAB_LISTN", "typo")
        .start();
    // --listen (given by the harness) beats the file's listen.
    assert_ne!(server.addr().port(), 1);
    server
        .post_json(
            "/api/register",
            None,
            &serde_json::json!({"username": "alice", "password": "alice-password"}),
        )
        .assert_error(403, "forbidden", "registration closed by ./config.toml");
    let logs = server.logs();
    assert!(
        logs.contains("CONFAB_LISTN"),
        "an unknown CONFAB_ variable is warned about:\n{logs}"
    );
    drop(server);

    // The environment beats the file, key by key.
    let server = TestServer::options()
        .cwd(cwd.path())
        .env("CONFAB_REGISTRATION", "open")
        // --data (given by the harness) beats the environment.
        .env("CONFAB_DATA_DIR", "/nonexistent/confab-test-data")
        .start();
    let (token, _) = server.register("alice", "alice-password");
    let payload = token.split('.').nth(1).unwrap();
    use base64::Engine;
    let claims: serde_json::Value = serde_json::from_slice(
        &base64::engine::general_purpose::URL_SAFE_NO_PAD
            .decode(payload)
            .unwrap(),
    )
    .unwrap();
    assert_eq!(
        claims["exp"].as_u64().unwrap() - claims["iat"].as_u64().unwrap(),
        77,
        "token_ttl_secs from the file still applies: {claims}"
    );
    // The embedded store, or the search index beside a database.
    let kept = if common::on_postgres() {
        "search"
    } else {
        "confab.redb"
    };
    assert!(server.data_dir().join(kept).exists());
    drop(server);

    // --config replaces ./config.toml entirely.
    let other = cwd.path().join("other.toml");
    fs::write(&other, "registration = \"open\"\n").unwrap();
    let server = TestServer::options()
        .cwd(cwd.path())
        .args(&["--config", other.to_str().unwrap(), "serve"])
        .start();
    server.register("alice", "alice-password");
}

#[test]
fn serve_fails_in_one_line_when_it_cannot_start() {
    let cli = Cli::fresh();
    // The address is taken.
    let server = TestServer::start();
    let taken = server.addr().to_string();
    let line = failure_line(
        &cli,
        &["serve", "--listen", &taken],
        None,
        "serve on a taken address",
    );
    assert!(line.contains(&taken), "the address is not named: {line}");

    // The data directory cannot be created (a file is in the way).
    let file = cli.cwd().join("not-a-dir");
    fs::write(&file, "x").unwrap();
    let impossible = Cli::on(&file.join("data"));
    let line = failure_line(
        &impossible,
        &["serve", "--listen", "127.0.0.1:0"],
        None,
        "serve with an impossible data directory",
    );
    assert!(
        line.contains("not-a-dir"),
        "the directory is not named: {line}"
    );

    // A bad listen address from a flag.
    let line = failure_line(
        &cli,
        &["serve", "--listen", "localhost:99999"],
        None,
        "serve with a bad --listen",
    );
    assert!(line.contains("--listen"), "the flag is not named: {line}");
}
