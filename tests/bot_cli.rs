//! `confab bot|hook|reindex` on the command line: the same output and exit
//! codes against a running server (admin socket) as against a stopped one
//! (with the secrets masked), the printed secrets work over HTTP at once,
//! and a rate limit set on a running server holds at once.

mod common;

use std::process::Output;

use common::{describe_output, Cli, TestServer};
use serde_json::json;

/// One CLI step.
type Step = &'static [&'static str];

/// Every bot and hook command, with successes and failures of each kind.
const SCRIPT: &[Step] = &[
    &["bot", "add", "helper", "--webhook", "http://example.com/x"],
    &["bot", "add", "helper"],
    &["bot", "add", "Bad Name"],
    &["bot", "add", "pager", "--webhook", "ftp://example.com/"],
    &[
        "bot",
        "add",
        "watcher",
        "--display-name",
        "Watcher",
        "--all-messages",
    ],
    &["bot", "list"],
    &["bot", "key", "helper"],
    &["bot", "key", "ghost"],
    &["bot", "limit", "helper"],
    &["bot", "limit", "helper", "5"],
    &["bot", "limit", "helper", "7", "--burst", "20"],
    &["bot", "limit", "helper"],
    &["bot", "limit", "helper", "0"],
    &["bot", "limit", "helper", "lots"],
    &["bot", "limit", "helper", "3", "--burst", "0"],
    &["bot", "limit", "helper", "default", "--burst", "3"],
    &["bot", "limit", "helper", "--burst", "3"],
    &["bot", "limit", "ghost", "5"],
    &["bot", "limit", "watcher", "2"],
    &["bot", "list"],
    &["bot", "limit", "watcher", "default"],
    &["room", "add", "general"],
    &["hook", "add", "general"],
    &["hook", "add", "general", "--as", "helper"],
    &["hook", "add", "nowhere", "--as", "helper"],
    &["hook", "add", "general", "--as", "ghost"],
    &["hook", "list", "general"],
    &["hook", "list", "nowhere"],
    &["hook", "delete", "general", "1"],
    &["hook", "delete", "general", "1"],
    &["hook", "delete", "general", "x"],
    &["bot", "delete", "helper"],
    &["bot", "delete", "helper"],
    &["bot", "list"],
];

/// Exit code, stdout with secrets masked, stderr.
fn normalized(output: &Output) -> (Option<i32>, String, String) {
    let stdout = String::from_utf8_lossy(&output.stdout)
        .lines()
        .map(|l| {
            for prefix in ["key: ", "signing secret: ", "url: "] {
                if l.starts_with(prefix) {
                    return format!("{prefix}<secret>");
                }
            }
            l.to_string()
        })
        .collect::<Vec<_>>()
        .join("\n");
    let stderr = String::from_utf8_lossy(&output.stderr).into_owned();
    (output.status.code(), stdout, stderr)
}

/// The value of the stdout line starting with `prefix`.
fn printed(output: &Output, prefix: &str) -> String {
    String::from_utf8_lossy(&output.stdout)
        .lines()
        .find_map(|l| l.strip_prefix(prefix))
        .unwrap_or_else(|| panic!("no {prefix:?} line: {}", describe_output(output)))
        .to_string()
}

#[test]
fn bot_and_hook_commands_answer_the_same_live_and_offline() {
    let mut server = TestServer::start();
    let live_cli = Cli::on(server.data_dir());
    let live: Vec<_> = SCRIPT.iter().map(|args| live_cli.run(args, None)).collect();
    server.stop();
    let offline_cli = Cli::fresh();
    for (args, live) in SCRIPT.iter().zip(&live) {
        let offline = offline_cli.run(args, None);
        assert_eq!(
            normalized(live),
            normalized(&offline),
            "`confab {}` live vs offline:\nlive: {}\noffline: {}",
            args.join(" "),
            describe_output(live),
            describe_output(&offline)
        );
    }
    assert!(live.iter().filter(|o| o.status.code() == Some(1)).count() >= 10);
    assert!(live.iter().filter(|o| o.status.success()).count() >= 9);
    // Failures are one line.
    for output in live.iter().filter(|o| !o.status.success()) {
        let stderr = String::from_utf8_lossy(&output.stderr);
        assert_eq!(stderr.lines().count(), 1, "{}", describe_output(output));
        assert!(
            stderr.starts_with("confab: "),
            "{}",
            describe_output(output)
        );
    }
}

#[test]
fn printed_keys_and_hooks_work_at_once() {
    let server = TestServer::start();
    let cli = Cli::on(server.data_dir());
    let added = cli.run_ok(&["bot", "add", "helper"], None);
    let key = printed(&added, "key: ");
    assert!(printed(&added, "signing secret: ").starts_with("whsec_"));
    let me = server.get("/api/me", Some(&key));
    me.assert_status(200, "the printed key");
    assert!(me.body.contains("\"helper\""), "{}", me.body);

    let rotated = cli.run_ok(&["bot", "key", "helper"], None);
    let new_key = printed(&rotated, "key: ");
    assert_ne!(new_key, key);
    let old = server.get("/api/me", Some(&key));
    assert_eq!(old.status, 401, "the old key still works: {}", old.body);
    server
        .get("/api/me", Some(&new_key))
        .assert_status(200, "the rotated key");

    cli.run_ok(&["room", "add", "general"], None);
    let hook = cli.run_ok(&["hook", "add", "general", "--as", "helper"], None);
    let path = printed(&hook, "url: ");
    assert!(path.starts_with("/hooks/"), "{path}");
    server
        .post_json(&path, None, &json!({"text": "from the hook"}))
        .assert_status(201, "a post through the hook");
    let (token, _) = server.register("reader", "readersecret");
    let messages = server.room_messages_after("general", &token, 0);
    assert!(
        messages
            .iter()
            .any(|m| m["body"] == "from the hook" && m["user"]["username"] == "helper"),
        "{messages:?}"
    );

    cli.run_ok(&["hook", "delete", "general", "1"], None);
    let refused = server.post_json(&path, None, &json!({"text": "again"}));
    assert_eq!(
        refused.status, 404,
        "a deleted hook posts: {}",
        refused.body
    );
}

#[test]
fn a_rate_limit_set_on_the_command_line_holds_at_once() {
    let server = TestServer::start_with(
        &[
            ("CONFAB_PUSH_BURST", "40"),
            ("CONFAB_PUSH_REFILL_PER_SEC", "1"),
        ],
        None,
    );
    let (admin, _) = server.register("root", "rootsecret");
    let cli = Cli::on(server.data_dir());
    let key = printed(&cli.run_ok(&["bot", "add", "helper"], None), "key: ");
    let shown = cli.run_ok(&["bot", "limit", "helper"], None);
    assert_eq!(
        String::from_utf8_lossy(&shown.stdout),
        "bot helper: the default for people (1 message a second, bursts of 40)\n"
    );
    let set = cli.run_ok(&["bot", "limit", "helper", "1", "--burst", "3"], None);
    assert_eq!(
        String::from_utf8_lossy(&set.stdout),
        "bot helper: now 1 message a second, bursts of 3\n"
    );
    // Bursts of 3 (the refill may add one while the posts are made), not 40.
    let post = |i: usize| {
        server
            .post_json(
                "/api/rooms/lobby/messages",
                Some(&key),
                &json!({ "body": format!("post {i}") }),
            )
            .status
    };
    let accepted = (0..10).take_while(|&i| post(i) == 201).count();
    assert!((3..5).contains(&accepted), "{accepted} accepted");
    let listed = server.get("/api/bots", Some(&admin)).json();
    assert_eq!(
        listed["bots"][0]["rate_limit"],
        json!({"burst": 3, "refill_per_sec": 1})
    );

    cli.run_ok(&["bot", "limit", "helper", "default"], None);
    let accepted = (0..50).take_while(|&i| post(i) == 201).count();
    assert!((40..43).contains(&accepted), "{accepted} accepted");
}

/// The reindex line without its duration.
fn reindex_line(output: &Output) -> String {
    let stdout = String::from_utf8_lossy(&output.stdout).into_owned();
    match stdout.rsplit_once(" in ") {
        Some((head, _)) => head.to_string(),
        None => stdout,
    }
}

#[test]
fn reindex_runs_on_a_running_server() {
    let mut server = TestServer::start();
    let (token, _) = server.register("writer", "writersecret");
    for i in 0..30 {
        server.post_message(
            "lobby",
            &token,
            &json!({"body": format!("reindexed note {i}")}),
        );
    }
    let cli = Cli::on(server.data_dir());
    let live = cli.run_ok(&["reindex"], None);
    let line = reindex_line(&live);
    assert!(line.starts_with("indexed 30 messages into "), "{line}");
    let found = server.get("/api/search?q=reindexed&limit=100", Some(&token));
    found.assert_status(200, "search after a live reindex");
    let results = found.json()["results"].as_array().expect("results").len();
    assert_eq!(results, 30, "{}", found.body);

    // A message posted after the reindex is found as well.
    server.post_message("lobby", &token, &json!({"body": "reindexed later"}));
    server.stop();
    let offline = cli.run_ok(&["reindex"], None);
    assert_eq!(
        reindex_line(&offline),
        line.replace("indexed 30", "indexed 31")
    );
}
