//! The admin socket (`<data_dir>/admin.sock`): every store command of the
//! CLI gives the same output and exit code against a running server as
//! against a stopped one, live changes take effect at once, the socket is
//! private to the server's user (mode 0600, peer uid checked) and is removed
//! on shutdown.

mod common;

use std::os::unix::fs::{FileTypeExt, MetadataExt, PermissionsExt};
use std::path::{Path, PathBuf};
use std::process::{Output, Stdio};

use common::{assert_success, confab_command, describe_output, temp_dir, Cli, TestServer, BIN};

/// One CLI step: arguments and stdin.
type Step = (&'static [&'static str], Option<&'static str>);

/// Every store command, with successes and failures of each kind
/// (validation on the server, unknown names, client-side checks).
const SCRIPT: &[Step] = &[
    (&["user", "add", "ada", "--admin"], None),
    (
        &[
            "user",
            "add",
            "bob",
            "--password-stdin",
            "--email",
            "bob@example.com",
            "--display-name",
            "Bob B",
        ],
        Some("bobsecret1\n"),
    ),
    (&["user", "add", "bob"], None),
    (
        &["user", "add", "shorty", "--password-stdin"],
        Some("short\n"),
    ),
    (&["user", "add", "Bad Name"], None),
    (&["user", "add", "carol", "--password-stdin"], Some("")),
    (
        &["user", "passwd", "bob", "--password-stdin"],
        Some("bobsecret2\n"),
    ),
    (&["user", "passwd", "ada"], None),
    (&["user", "passwd", "ghost"], None),
    (&["user", "disable", "ada"], None),
    (&["user", "enable", "ada"], None),
    (&["user", "disable", "ghost"], None),
    (&["user", "enable", "ghost"], None),
    (&["user", "list"], None),
    (&["room", "add", "general", "--description", "Talk"], None),
    (&["room", "add", "secret", "--private"], None),
    (&["room", "add", "general"], None),
    (&["room", "add", "Bad Name"], None),
    (&["room", "list"], None),
];

/// Exit code, stdout and stderr, with generated passwords replaced.
fn normalized(output: &Output) -> (Option<i32>, String, String) {
    let stdout = String::from_utf8_lossy(&output.stdout)
        .lines()
        .map(|l| match l.strip_prefix("password: ") {
            Some(_) => "password: <generated>".to_string(),
            None => l.to_string(),
        })
        .collect::<Vec<_>>()
        .join("\n");
    let stderr = String::from_utf8_lossy(&output.stderr).into_owned();
    (output.status.code(), stdout, stderr)
}

fn admin_socket(data: &Path) -> PathBuf {
    data.join("admin.sock")
}

/// The export without its header line (which holds the export time).
fn records(export: &str) -> Vec<&str> {
    let mut lines = export.lines();
    let header = lines.next().unwrap_or_default();
    assert!(header.contains("\"header\""), "no header line: {header}");
    lines.collect()
}

#[test]
fn every_command_answers_the_same_live_and_offline() {
    let mut server = TestServer::start();
    let live_cli = Cli::on(server.data_dir());
    assert!(
        admin_socket(server.data_dir()).exists(),
        "no admin socket: {}",
        server.logs()
    );
    let live: Vec<_> = SCRIPT
        .iter()
        .map(|(args, stdin)| live_cli.run(args, *stdin))
        .collect();

    // Live export, to stdout and to a file.
    let export_live = live_cli.run_ok(&["export"], None);
    let export_live = String::from_utf8(export_live.stdout).expect("UTF-8 export");
    let file = live_cli.cwd().join("live.jsonl");
    let to_file = live_cli.run_ok(&["export", "--out", file.to_str().unwrap()], None);
    assert_eq!(
        String::from_utf8_lossy(&to_file.stderr),
        format!("exported to {}\n", file.display())
    );
    let export_file = std::fs::read_to_string(&file).expect("export file");
    assert!(!file.with_extension("partial").exists());

    // The same store once stopped exports the same records.
    server.stop();
    let export_offline = live_cli.run_ok(&["export"], None);
    let export_offline = String::from_utf8(export_offline.stdout).expect("UTF-8 export");
    assert_eq!(records(&export_live), records(&export_offline));
    assert_eq!(records(&export_file), records(&export_offline));
    assert!(records(&export_live).len() > 5, "{export_live}");

    // The same script on a fresh, stopped data directory.
    let offline_cli = Cli::fresh();
    for ((args, stdin), live) in SCRIPT.iter().zip(&live) {
        let offline = offline_cli.run(args, *stdin);
        assert_eq!(
            normalized(live),
            normalized(&offline),
            "`confab {}` live vs offline:\nlive: {}\noffline: {}",
            args.join(" "),
            describe_output(live),
            describe_output(&offline)
        );
    }
    // The script has failures as well as successes.
    assert!(live.iter().any(|o| o.status.code() == Some(1)));
    assert!(live.iter().filter(|o| o.status.success()).count() > 8);
}

#[test]
fn live_changes_take_effect_at_once() {
    let server = TestServer::start();
    let cli = Cli::on(server.data_dir());
    cli.run_ok(
        &["user", "add", "dora", "--password-stdin"],
        Some("dorasecret\n"),
    );
    let (token, _) = server.login("dora", "dorasecret");

    cli.run_ok(&["room", "add", "fresh", "--description", "new"], None);
    let rooms = server.get("/api/rooms", Some(&token));
    rooms.assert_status(200, "rooms");
    assert!(
        rooms.body.contains("\"fresh\""),
        "the live room is not listed: {}",
        rooms.body
    );

    cli.run_ok(&["user", "disable", "dora"], None);
    let refused = server.try_login("dora", "dorasecret");
    assert!(
        refused.status == 401 || refused.status == 403,
        "a disabled user logged in: {} {}",
        refused.status,
        refused.body
    );
    let me = server.get("/api/me", Some(&token));
    assert!(
        me.status == 401 || me.status == 403,
        "old token: {}",
        me.status
    );

    cli.run_ok(&["user", "enable", "dora"], None);
    server.login("dora", "dorasecret");
}

#[test]
fn the_socket_is_private_and_removed_on_shutdown() {
    let mut server = TestServer::start();
    let path = admin_socket(server.data_dir());
    let meta = std::fs::symlink_metadata(&path).expect("admin socket");
    assert!(meta.file_type().is_socket(), "{path:?} is not a socket");
    assert_eq!(meta.permissions().mode() & 0o777, 0o600, "socket mode");
    let me = std::fs::metadata("/proc/self").expect("/proc/self").uid();
    assert_eq!(meta.uid(), me, "the socket belongs to the server's user");
    // No staging directory is left beside it.
    let leftovers: Vec<_> = std::fs::read_dir(server.data_dir())
        .expect("data dir")
        .filter_map(|e| e.ok())
        .map(|e| e.file_name().to_string_lossy().into_owned())
        .filter(|n| n.starts_with(".admin"))
        .collect();
    assert!(leftovers.is_empty(), "{leftovers:?}");

    server.stop();
    assert!(!path.exists(), "the admin socket outlived the server");
}

#[test]
fn a_stale_socket_file_is_replaced() {
    let dir = temp_dir();
    let stale = std::os::unix::net::UnixListener::bind(admin_socket(dir.path())).expect("bind");
    drop(stale);
    let server = TestServer::start_with(&[], Some(dir.path().to_path_buf()));
    Cli::on(server.data_dir()).run_ok(&["user", "list"], None);
}

/// `confab ARGS --data DATA` as uid/gid 65534 (nobody), with a copy of the
/// binary nobody may execute.
fn run_as_nobody(data: &Path, args: &[&str]) -> Output {
    use std::os::unix::process::CommandExt;
    let bin_dir = temp_dir();
    std::fs::set_permissions(bin_dir.path(), std::fs::Permissions::from_mode(0o755)).unwrap();
    let bin = bin_dir.path().join("confab");
    std::fs::copy(BIN, &bin).expect("copy the binary");
    std::fs::set_permissions(&bin, std::fs::Permissions::from_mode(0o755)).unwrap();
    // The same clean environment as every other command, for another binary.
    let template = confab_command(Path::new("/"), &[]);
    let mut all = args.to_vec();
    all.extend(["--data", data.to_str().expect("UTF-8 path")]);
    let mut child = std::process::Command::new(&bin);
    child.env_clear();
    if let Some(path) = std::env::var_os("PATH") {
        child.env("PATH", path);
    }
    child
        .envs(template.get_envs().filter_map(|(k, v)| v.map(|v| (k, v))))
        .args(&all)
        .current_dir("/")
        .uid(65534)
        .gid(65534)
        .stdin(Stdio::null());
    child.output().expect("run as nobody")
}

#[test]
fn another_user_is_refused() {
    let me = std::fs::metadata("/proc/self").expect("/proc/self").uid();
    if me != 0 {
        eprintln!("skipped: running as uid {me}, cannot start a process as another user");
        return;
    }
    let server = TestServer::start();
    let data = server.data_dir();
    // Let nobody reach the directory: only the socket's own mode guards it.
    std::fs::set_permissions(data, std::fs::Permissions::from_mode(0o755)).unwrap();
    let before = Cli::on(data).run_ok(&["user", "list"], None);

    let output = run_as_nobody(data, &["user", "add", "mallory"]);
    assert_eq!(
        output.status.code(),
        Some(1),
        "{}",
        describe_output(&output)
    );
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(
        stderr.contains("admin socket") && stderr.contains("permission denied"),
        "{}",
        describe_output(&output)
    );
    assert!(output.stdout.is_empty(), "{}", describe_output(&output));

    // Even with the file opened up, the server checks the peer's uid.
    let path = admin_socket(data);
    std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o666)).unwrap();
    for args in [&["user", "add", "mallory"][..], &["export"]] {
        let output = run_as_nobody(data, args);
        assert_eq!(
            output.status.code(),
            Some(1),
            "{}",
            describe_output(&output)
        );
        let stderr = String::from_utf8_lossy(&output.stderr);
        assert!(
            stderr.contains("serves only uid 0") && stderr.contains("uid 65534"),
            "{}",
            describe_output(&output)
        );
        assert!(output.stdout.is_empty(), "{}", describe_output(&output));
    }
    let after = Cli::on(data).run_ok(&["user", "list"], None);
    assert_eq!(before.stdout, after.stdout, "nobody changed the users");
    assert_success(&after, "user list");
}

#[test]
fn a_large_export_streams_in_whole_records() {
    let mut server = TestServer::start();
    let (token, _) = server.register("writer", "writersecret");
    // Well over one 64 KiB chunk, with multi-byte characters to split.
    let text = "é".repeat(900);
    for i in 0..150 {
        server.post_message(
            "lobby",
            &token,
            &serde_json::json!({"body": format!("{i} {text}")}),
        );
    }
    let cli = Cli::on(server.data_dir());
    let live = cli.run_ok(&["export"], None);
    let live = String::from_utf8(live.stdout).expect("UTF-8 export");
    assert!(live.len() > 200 * 1024, "export of {} bytes", live.len());
    server.stop();
    let offline = cli.run_ok(&["export"], None);
    let offline = String::from_utf8(offline.stdout).expect("UTF-8 export");
    assert_eq!(records(&live), records(&offline));
}
