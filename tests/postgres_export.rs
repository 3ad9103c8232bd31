//! Moving a store between the embedded backend and PostgreSQL with
//! `confab export` and `confab import`, against the real binary and a
//! private PostgreSQL per test: a store holding every kind of record
//! (accounts, rooms, members, conversations, edited and deleted messages,
//! reactions, read positions, ignores, attachments, revoked tokens, unread
//! mentions, bots, hooks, a pending webhook event, a password link and its
//! queued mail) exports, imports into the other backend and exports again
//! to the same lines, both ways; an import refuses a database that holds
//! data and leaves nothing behind when the file is bad; a server on the
//! imported database serves the same views, delivers what was queued, and
//! hands out new seqs and ids after the restored ones.

mod common;

use std::path::{Path, PathBuf};
use std::process::Output;
use std::time::Duration;

use common::phx::PhxClient;
use common::postgres::PgServer;
use common::receiver::{Action, Receiver};
use common::smtp::{self, SmtpSink};
use common::{
    assert_success, closed_port, describe_output, request_raw, request_raw_bytes, run_confab_with,
    temp_dir, Cli, TestServer,
};
use serde_json::{json, Value};
use tempfile::TempDir;

const PASSWORD: &str = "correct horse battery";
const PNG: &[u8] = b"\x89PNG\r\n\x1a\n\0\0\0\rIHDR";
const PUBLIC_URL: &str = "https://chat.example.test";

/// Every kind of line the populated store exports.
const KINDS: &[&str] = &[
    "header",
    "counter",
    "user",
    "topic",
    "room",
    "member",
    "conversation",
    "message",
    "reactions",
    "read",
    "ignore",
    "attachment",
    "revoked",
    "mention",
    "bot",
    "hook",
    "delivery",
    "password_link",
    "mail",
];

// ---------------------------------------------------------------------------
// Commands on a database or a data directory
// ---------------------------------------------------------------------------

/// `confab` subcommands on one PostgreSQL database (`CONFAB_DATABASE_URL`),
/// with a data directory of their own.
struct PgCli {
    url: String,
    cwd: TempDir,
    data: TempDir,
}

impl PgCli {
    fn on(url: &str) -> PgCli {
        PgCli {
            url: url.to_string(),
            cwd: temp_dir(),
            data: temp_dir(),
        }
    }

    fn run(&self, args: &[&str]) -> Output {
        let data = self.data.path().to_str().expect("UTF-8 path");
        let mut all = args.to_vec();
        all.extend(["--data", data]);
        run_confab_with(
            self.cwd.path(),
            &[("CONFAB_DATABASE_URL", &self.url)],
            &all,
            None,
        )
    }

    #[track_caller]
    fn run_ok(&self, args: &[&str]) -> Output {
        let output = self.run(args);
        assert_success(&output, &args.join(" "));
        output
    }

    /// `confab export --out FILE`; the file's text.
    #[track_caller]
    fn export(&self, file: &Path) -> String {
        self.run_ok(&["export", "--out", file.to_str().expect("UTF-8 path")]);
        std::fs::read_to_string(file).expect("export file")
    }

    fn import(&self, file: &Path) -> Output {
        self.run(&["import", file.to_str().expect("UTF-8 path")])
    }
}

/// The header without its time, and the other lines.
fn split(export: &str) -> (Value, Vec<&str>) {
    let mut lines = export.lines();
    let mut header: Value =
        serde_json::from_str(lines.next().expect("a header line")).expect("header JSON");
    assert!(header["exported_at"].is_string(), "{header}");
    header
        .as_object_mut()
        .expect("header object")
        .remove("exported_at");
    (header, lines.collect())
}

/// Asserts two exports hold the same lines (the headers equal but for the
/// time they were taken).
#[track_caller]
fn assert_same_export(expected: &str, actual: &str, what: &str) {
    let (expected_header, expected_lines) = split(expected);
    let (actual_header, actual_lines) = split(actual);
    assert_eq!(expected_header, actual_header, "{what}: headers");
    assert_eq!(
        expected_header,
        json!({"type": "header", "confab_export": 2, "schema_version": 1})
    );
    if expected_lines != actual_lines {
        let first = expected_lines
            .iter()
            .zip(&actual_lines)
            .position(|(a, b)| a != b)
            .unwrap_or(expected_lines.len().min(actual_lines.len()));
        panic!(
            "{what}: the exports differ from line {} on ({} and {} lines)\nexpected: {:?}\nactual:   {:?}",
            first + 2,
            expected_lines.len() + 1,
            actual_lines.len() + 1,
            expected_lines.get(first),
            actual_lines.get(first)
        );
    }
}

/// The `next` of counter `name` in `export`.
fn counter(export: &str, name: &str) -> u64 {
    export
        .lines()
        .filter_map(|line| serde_json::from_str::<Value>(line).ok())
        .find(|line| line["type"] == "counter" && line["name"] == name)
        .and_then(|line| line["next"].as_u64())
        .unwrap_or_else(|| panic!("no counter {name} in the export"))
}

/// Asserts `export` holds every kind of line.
#[track_caller]
fn assert_every_kind(export: &str) {
    for kind in KINDS {
        let tag = format!("{{\"type\":\"{kind}\"");
        assert!(
            export.lines().any(|line| line.starts_with(&tag)),
            "no {kind} line in the export:\n{export}"
        );
    }
}

// ---------------------------------------------------------------------------
// The data
// ---------------------------------------------------------------------------

/// Where the populated store sends its webhook events and mail: ports on
/// which nothing listens while it is populated.
struct Outside {
    webhook_port: u16,
    smtp_port: u16,
}

impl Outside {
    fn new() -> Outside {
        Outside {
            webhook_port: closed_port().port(),
            smtp_port: smtp::reserve_port(),
        }
    }

    fn env(&self) -> Vec<(String, String)> {
        vec![
            ("CONFAB_WEBHOOK_ALLOWED_HOSTS".into(), "127.0.0.1".into()),
            ("CONFAB_SMTP_URL".into(), smtp::url_for(self.smtp_port)),
            (
                "CONFAB_MAIL_FROM".into(),
                "Confab <chat@example.test>".into(),
            ),
            ("CONFAB_PUBLIC_URL".into(), PUBLIC_URL.into()),
        ]
    }

    /// A server on the embedded store (`database_url` unset) or on `url`.
    fn server(&self, database_url: Option<&str>, data_dir: Option<&Path>) -> TestServer {
        let env = self.env();
        let mut vars: Vec<(&str, &str)> =
            env.iter().map(|(k, v)| (k.as_str(), v.as_str())).collect();
        if let Some(url) = database_url {
            vars.push(("CONFAB_DATABASE_URL", url));
        }
        let mut options = TestServer::options().envs(&vars);
        if let Some(dir) = data_dir {
            options = options.data_dir(dir);
        }
        options.start()
    }
}

/// What the populated store holds beyond its views.
struct Fixture {
    bot_key: String,
    hook_path: String,
    hook_message_id: Value,
    conversation: u64,
    attachment: u64,
}

/// Sessions of the three people, on one server.
struct People {
    ada: String,
    bob: String,
    carol: String,
}

impl People {
    fn login(server: &TestServer) -> People {
        People {
            ada: server.login("ada", PASSWORD).0,
            bob: server.login("bob", PASSWORD).0,
            carol: server.login("carol", PASSWORD).0,
        }
    }
}

#[track_caller]
fn get_json(server: &TestServer, path: &str, token: &str) -> Value {
    let response = server.get(path, Some(token));
    response.assert_status(200, &format!("GET {path}"));
    response.json()
}

/// Everything the people see of the store through the API.
fn views(server: &TestServer, people: &People, fixture: &Fixture) -> Value {
    let dm = format!("/api/conversations/{}/messages", fixture.conversation);
    json!({
        "lobby": get_json(server, "/api/rooms/lobby/messages?limit=200", &people.bob),
        "ops": get_json(server, "/api/rooms/ops/messages", &people.ada),
        "dm": get_json(server, &dm, &people.bob),
        "bob_rooms": get_json(server, "/api/rooms", &people.bob),
        "carol_rooms": get_json(server, "/api/rooms", &people.carol),
        "bob_conversations": get_json(server, "/api/conversations", &people.bob),
        "bob_ignores": get_json(server, "/api/me/ignores", &people.bob),
        "users": get_json(server, "/api/users", &people.ada),
        "bots": get_json(server, "/api/bots", &people.ada),
        "hooks": get_json(server, "/api/rooms/lobby/hooks", &people.ada),
    })
}

/// Registers someone with an address.
#[track_caller]
fn register(server: &TestServer, username: &str, email: Option<&str>) -> String {
    let mut body = json!({"username": username, "password": PASSWORD});
    if let Some(email) = email {
        body["email"] = json!(email);
    }
    let response = server.post_json("/api/register", None, &body);
    response.assert_status(201, &format!("register {username}"));
    response.json()["token"]
        .as_str()
        .expect("token")
        .to_string()
}

/// Edits, deletes, reactions and a read mark, over the socket.
fn socket_work(server: &TestServer, people: &People) {
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("runtime");
    runtime.block_on(async {
        let push = async |socket: &mut PhxClient, event: &str, payload: Value| {
            let (status, reply) = socket.push("room:lobby", event, payload.clone()).await;
            assert_eq!(status, "ok", "{event} {payload}: {reply}");
        };
        let mut bob = PhxClient::joined(server.addr(), &people.bob, "room:lobby").await;
        push(
            &mut bob,
            "edit_msg",
            json!({"seq": 2, "body": "hello 1, edited"}),
        )
        .await;
        push(&mut bob, "delete_msg", json!({"seq": 3})).await;
        push(&mut bob, "react", json!({"seq": 1, "emoji": "👍"})).await;
        push(&mut bob, "react", json!({"seq": 1, "emoji": "🎉"})).await;
        push(&mut bob, "read", json!({"seq": 4})).await;
        let mut ada = PhxClient::joined(server.addr(), &people.ada, "room:lobby").await;
        push(&mut ada, "react", json!({"seq": 1, "emoji": "👍"})).await;
        push(&mut ada, "react", json!({"seq": 2, "emoji": "🎉"})).await;
        push(&mut ada, "react", json!({"seq": 2, "emoji": "❤️"})).await;
        // Toggled off again: the emoji after it keeps its place.
        push(&mut ada, "react", json!({"seq": 2, "emoji": "🎉"})).await;
    });
}

/// Fills a fresh server's store with every kind of record.
fn populate(server: &TestServer, outside: &Outside) -> Fixture {
    let ada = register(server, "ada", None);
    let bob = register(server, "bob", Some("bob@example.test"));
    let carol = register(server, "carol", Some("carol@example.test"));
    let people = People { ada, bob, carol };
    server
        .post_json(
            "/api/rooms",
            Some(&people.ada),
            &json!({"name": "ops", "private": true, "description": "on call"}),
        )
        .assert_status(201, "private room");
    server
        .post_json(
            "/api/rooms/ops/members",
            Some(&people.ada),
            &json!({"username": "bob"}),
        )
        .assert_status(204, "member");
    for i in 0..5 {
        server.post_message(
            "lobby",
            &people.bob,
            &json!({"body": format!("hello {i}"), "client_id": format!("c{i}")}),
        );
    }
    server.post_message("lobby", &people.ada, &json!({"body": "@carol have a look"}));
    socket_work(server, &people);

    let opened = server.post_json(
        "/api/conversations",
        Some(&people.ada),
        &json!({"username": "bob"}),
    );
    opened.assert_status(201, "conversation");
    let conversation = opened.json()["conversation"]["id"]
        .as_u64()
        .expect("conversation id");
    server
        .post_json(
            &format!("/api/conversations/{conversation}/messages"),
            Some(&people.bob),
            &json!({"body": "psst"}),
        )
        .assert_status(201, "dm");

    let attachment = upload(server, &people.ada, "ops");
    server
        .post_json(
            "/api/rooms/ops/messages",
            Some(&people.ada),
            &json!({"body": "picture", "attachment_id": attachment}),
        )
        .assert_status(201, "message with attachment");

    server
        .request("PUT", "/api/me/ignores/carol", Some(&people.bob), None, &[])
        .assert_status(204, "ignore");
    let dave = register(server, "dave", None);
    server
        .request("POST", "/api/logout", Some(&dave), None, &[])
        .assert_status(204, "logout");

    let made = server.post_json(
        "/api/bots",
        Some(&people.ada),
        &json!({
            "username": "robot",
            "webhook_url": format!("http://127.0.0.1:{}/hook", outside.webhook_port),
        }),
    );
    made.assert_status(201, "bot");
    let bot_key = made.json()["key"].as_str().expect("key").to_string();
    server.post_message("lobby", &people.ada, &json!({"body": "@robot status?"}));

    let hook = server.post_json(
        "/api/rooms/lobby/hooks",
        Some(&people.ada),
        &json!({"as_bot": "robot"}),
    );
    hook.assert_status(201, "hook");
    let hook_path = hook.json()["path"].as_str().expect("path").to_string();
    let posted = server.request(
        "POST",
        &hook_path,
        None,
        Some(r#"{"text": "deployed"}"#),
        &[
            ("Content-Type", "application/json"),
            ("Idempotency-Key", "deploy-1"),
        ],
    );
    posted.assert_status(201, "hook post");

    // Last, so that the mail is due again soon once a mail server listens.
    server
        .post_json(
            "/api/password/forgot",
            None,
            &json!({"username_or_email": "carol"}),
        )
        .assert_status(202, "forgot");
    Fixture {
        bot_key,
        hook_path,
        hook_message_id: posted.json()["message"]["id"].clone(),
        conversation,
        attachment,
    }
}

/// Uploads [`PNG`] to `room`; its attachment id.
fn upload(server: &TestServer, token: &str, room: &str) -> u64 {
    let mut raw = format!(
        "POST /api/rooms/{room}/attachments HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer {token}\r\n\
         Content-Type: image/png\r\nContent-Length: {}\r\nConnection: close\r\n\r\n",
        PNG.len()
    )
    .into_bytes();
    raw.extend_from_slice(PNG);
    let response = request_raw(server.addr(), &raw, false);
    response.assert_status(201, "attachment upload");
    response.json()["attachment"]["id"]
        .as_u64()
        .expect("attachment id")
}

/// The bytes of attachment `id`.
fn attachment_bytes(server: &TestServer, token: &str, id: u64) -> Vec<u8> {
    let raw = format!(
        "GET /api/attachments/{id} HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer {token}\r\n\
         Connection: close\r\n\r\n"
    );
    let response = request_raw_bytes(server.addr(), raw.as_bytes(), false);
    assert_eq!(response.status, 200, "attachment {id}");
    response.body
}

/// Checks a server on a restored store: the same views, the queued event
/// and mail go out, old secrets work, and new seqs and ids follow the
/// restored ones.
fn check_restored(
    server: &TestServer,
    fixture: &Fixture,
    before: &Value,
    export: &str,
    receiver: &Receiver,
    sink: &SmtpSink,
) {
    let people = People::login(server);
    let after = views(server, &people, fixture);
    for (name, view) in before.as_object().expect("views") {
        assert_eq!(&after[name], view, "the {name} view after the restore");
    }
    assert_eq!(
        attachment_bytes(server, &people.ada, fixture.attachment),
        PNG
    );

    // New rows continue the restored counters: nothing collides.
    let last = before["lobby"]["messages"]
        .as_array()
        .and_then(|m| m.last())
        .and_then(|m| m["seq"].as_u64())
        .expect("lobby messages");
    let posted = server.post_message("lobby", &people.bob, &json!({"body": "after the move"}));
    assert_eq!(posted["seq"], last + 1, "{posted}");
    assert_eq!(posted["id"], counter(export, "next_message_id"), "{posted}");
    let erin = server.post_json(
        "/api/register",
        None,
        &json!({"username": "erin", "password": PASSWORD}),
    );
    erin.assert_status(201, "a new account");
    assert_eq!(erin.json()["user"]["id"], counter(export, "next_user_id"));
    assert_eq!(
        upload(server, &people.ada, "ops"),
        counter(export, "next_attachment_id")
    );
    server
        .get("/api/rooms/ops/messages", Some(&people.carol))
        .assert_status(403, "still private");

    // The bot's key, the hook's token and its idempotency key still work.
    server
        .get("/api/me", Some(&fixture.bot_key))
        .assert_status(200, "the bot's key");
    let replay = server.request(
        "POST",
        &fixture.hook_path,
        None,
        Some(r#"{"text": "deployed"}"#),
        &[
            ("Content-Type", "application/json"),
            ("Idempotency-Key", "deploy-1"),
        ],
    );
    replay.assert_status(200, "the hook post replayed");
    assert_eq!(replay.json()["message"]["id"], fixture.hook_message_id);

    // The event and the mail queued on the other backend go out here.
    let hit = receiver.next("the event queued before the move");
    assert_eq!(hit.json()["message"]["body"], "@robot status?");
    let mails = sink.wait_for(1, Duration::from_secs(60));
    assert_eq!(mails[0].to, vec!["carol@example.test"]);
    let link = mails[0].link().expect("a link in the mail");
    let token = link
        .strip_prefix(&format!("{PUBLIC_URL}/reset#token="))
        .unwrap_or_else(|| panic!("link {link}"));
    server
        .post_json(
            "/api/password/reset",
            None,
            &json!({"token": token, "password": "carols-new-password"}),
        )
        .assert_status(200, "the link issued before the move");
    server.login("carol", "carols-new-password");
}

/// A receiver on the populated store's webhook port and a mail sink on
/// its mail port, both up now.
fn listen(outside: &Outside) -> (Receiver, SmtpSink) {
    let listener = std::net::TcpListener::bind(("127.0.0.1", outside.webhook_port))
        .expect("bind the webhook port");
    (
        Receiver::on(listener, |_| Action::Answer(204, String::new())),
        SmtpSink::start_on(outside.smtp_port),
    )
}

fn path_in(dir: &TempDir, name: &str) -> PathBuf {
    dir.path().join(name)
}

// ---------------------------------------------------------------------------
// Tests
// ---------------------------------------------------------------------------

#[test]
fn an_embedded_store_moves_to_postgresql_and_keeps_serving() {
    let outside = Outside::new();
    let mut source = outside.server(None, None);
    let fixture = populate(&source, &outside);
    let before = views(&source, &People::login(&source), &fixture);
    source.stop();
    let files = temp_dir();
    let first_file = path_in(&files, "embedded.jsonl");
    let first = Cli::on(source.data_dir()).export(&first_file);
    assert_every_kind(&first);

    let pg = PgServer::start();
    let target = PgCli::on(&pg.url());

    // A bad file fails with its line and leaves the database empty.
    let lines: Vec<&str> = first.lines().collect();
    let cut = lines
        .iter()
        .position(|l| l.starts_with("{\"type\":\"attachment\""))
        .expect("an attachment line");
    let broken = format!("{}\nnot json\n", lines[..cut].join("\n"));
    let broken_file = path_in(&files, "broken.jsonl");
    std::fs::write(&broken_file, broken).expect("write");
    let refused = target.import(&broken_file);
    assert!(!refused.status.success(), "{}", describe_output(&refused));
    let stderr = String::from_utf8_lossy(&refused.stderr);
    assert!(
        stderr.contains(&format!("line {}: ", cut + 1)),
        "the bad line is named: {stderr}"
    );

    let imported = target.import(&first_file);
    assert_success(&imported, "import into PostgreSQL");
    let said = String::from_utf8_lossy(&imported.stdout);
    assert!(
        said.contains(&format!(
            "imported {} records into postgres://",
            lines.len()
        )),
        "{said}"
    );
    let second = target.export(&path_in(&files, "postgres.jsonl"));
    assert_same_export(&first, &second, "embedded → PostgreSQL");

    // A database with data in it is refused, and stays as it was.
    let again = target.import(&first_file);
    assert!(!again.status.success(), "{}", describe_output(&again));
    let stderr = String::from_utf8_lossy(&again.stderr);
    assert!(
        stderr.contains("already holds data") && stderr.contains("empty database"),
        "{stderr}"
    );
    let third = target.export(&path_in(&files, "postgres-again.jsonl"));
    assert_same_export(&first, &third, "after the refused import");

    // A format 1 file (from before unread mentions, bots, hooks and the
    // queues were exported) still imports, into a database of its own.
    let format_one = format_one(&first);
    let old_file = path_in(&files, "format-1.jsonl");
    std::fs::write(&old_file, &format_one).expect("write");
    pg.with_client(async |client| {
        client
            .batch_execute("CREATE DATABASE confab_old")
            .await
            .expect("create the second database");
    });
    let old = PgCli::on(&pg.url().replace("/confab_test", "/confab_old"));
    assert_success(&old.import(&old_file), "import a format 1 file");
    let upgraded = old.export(&path_in(&files, "format-1-again.jsonl"));
    assert_eq!(split(&format_one).1, split(&upgraded).1);

    let (receiver, sink) = listen(&outside);
    let server = outside.server(Some(&pg.url()), None);
    check_restored(&server, &fixture, &before, &first, &receiver, &sink);
}

/// `export` as format 1 wrote it: its header says 1, and it has no line
/// (nor counter) of what format 2 added.
fn format_one(export: &str) -> String {
    const ADDED: &[&str] = &[
        "mention",
        "bot",
        "hook",
        "delivery",
        "password_link",
        "mail",
    ];
    const ADDED_COUNTERS: &[&str] = &["next_hook_id", "next_event_id", "next_mail_id"];
    let mut out = String::new();
    for line in export.lines() {
        let mut value: Value = serde_json::from_str(line).expect("JSON line");
        let kind = value["type"].as_str().unwrap_or_default().to_string();
        if ADDED.contains(&kind.as_str())
            || (kind == "counter"
                && ADDED_COUNTERS.contains(&value["name"].as_str().unwrap_or_default()))
        {
            continue;
        }
        if kind == "header" {
            value["confab_export"] = json!(1);
            out.push_str(&value.to_string());
        } else {
            out.push_str(line);
        }
        out.push('\n');
    }
    out
}

#[test]
fn a_postgresql_store_moves_to_the_embedded_store_and_back() {
    let outside = Outside::new();
    let pg = PgServer::start();
    let mut source = outside.server(Some(&pg.url()), None);
    let fixture = populate(&source, &outside);
    let people = People::login(&source);
    let before = views(&source, &people, &fixture);

    // The online export and one taken beside the running server agree
    // (but for the queued mail, whose attempts move on meanwhile).
    let online = source.get("/api/admin/export", Some(&people.ada));
    online.assert_status(200, "online export");
    let files = temp_dir();
    let database = PgCli::on(&pg.url());
    let beside = database.export(&path_in(&files, "beside.jsonl"));
    let not_mail = |export: &str| -> Vec<String> {
        split(export)
            .1
            .into_iter()
            .filter(|l| !l.starts_with("{\"type\":\"mail\""))
            .map(str::to_owned)
            .collect()
    };
    assert_eq!(not_mail(&online.body), not_mail(&beside));
    // `confab export` on the server's data directory goes through its
    // admin socket: the server's own snapshot again.
    let socket_file = path_in(&files, "socket.jsonl");
    let through_socket = run_confab_with(
        files.path(),
        &[("CONFAB_DATABASE_URL", &pg.url())],
        &[
            "export",
            "--out",
            socket_file.to_str().expect("UTF-8"),
            "--data",
            source.data_dir().to_str().expect("UTF-8"),
        ],
        None,
    );
    assert_success(&through_socket, "export through the admin socket");
    let through_socket = std::fs::read_to_string(&socket_file).expect("export file");
    assert_eq!(not_mail(&through_socket), not_mail(&beside));
    source.stop();

    let first_file = path_in(&files, "postgres.jsonl");
    let first = database.export(&first_file);
    assert_every_kind(&first);

    // PostgreSQL → embedded: the same lines.
    let embedded = Cli::fresh();
    embedded.run_ok(&["import", first_file.to_str().expect("UTF-8")], None);
    let second_file = path_in(&files, "embedded.jsonl");
    let second = embedded.export(&second_file);
    assert_same_export(&first, &second, "PostgreSQL → embedded");

    // ... and back into a new database: the same lines again.
    pg.with_client(async |client| {
        client
            .batch_execute("CREATE DATABASE confab_copy")
            .await
            .expect("create the second database");
    });
    let copy_url = pg.url().replace("/confab_test", "/confab_copy");
    let copy = PgCli::on(&copy_url);
    assert_success(&copy.import(&second_file), "import into the new database");
    let third = copy.export(&path_in(&files, "copy.jsonl"));
    assert_same_export(&first, &third, "embedded → PostgreSQL");

    // The embedded copy serves it all.
    let (receiver, sink) = listen(&outside);
    let server = outside.server(None, Some(embedded.data()));
    check_restored(&server, &fixture, &before, &first, &receiver, &sink);
}
