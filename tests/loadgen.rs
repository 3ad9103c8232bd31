//! The load generator (`confab-load`) against the real server, over real
//! sockets: a short fan-out, a small reconnect storm, held sockets with
//! heartbeats, and a refused token. Each run is judged by the final JSON
//! line the generator prints, so these tests also pin down that report.

mod common;

use std::process::Command;

use common::{describe_output, TestServer};
use serde_json::Value;

/// A server that lets the generator publish and open sockets freely.
fn server() -> TestServer {
    TestServer::start_with(
        &[
            ("CONFAB_PUSH_BURST", "100000"),
            ("CONFAB_PUSH_REFILL_PER_SEC", "100000"),
            ("CONFAB_MAX_SOCKETS_PER_USER", "1000"),
        ],
        None,
    )
}

/// Runs `confab-load` with the whitespace-separated `args` against
/// `server` and returns its final JSON line.
fn loadgen(server: &TestServer, args: &str) -> Value {
    let url = format!("ws://{}/socket/websocket", server.addr());
    let pid = server.pid().expect("server pid").to_string();
    let output = Command::new(env!("CARGO_BIN_EXE_confab-load"))
        .args(args.split_whitespace())
        .args(["--url", &url, "--server-pid", &pid, "--op-timeout", "20s"])
        .output()
        .expect("run confab-load");
    let stdout = String::from_utf8_lossy(&output.stdout);
    let last = stdout.lines().last().unwrap_or_default();
    serde_json::from_str(last).unwrap_or_else(|e| {
        panic!(
            "no JSON report ({e}); {}\nserver log:\n{}",
            describe_output(&output),
            server.logs()
        )
    })
}

#[test]
fn fanout_delivers_every_message_to_every_subscriber_once() {
    let server = server();
    let report = loadgen(
        &server,
        "fanout --subscribers 20 --publishers 2 --rate 50 --topic room:lg-fanout \
         --duration 2s --warmup 1s --register-prefix lgfan --users 2 --create-rooms",
    );
    let r = &report["results"];
    assert_eq!(report["ok"], true, "{report}");
    assert_eq!(r["subscribers_joined"], 20, "{report}");
    assert_eq!(r["lost"], 0, "{report}");
    assert_eq!(r["duplicates"], 0, "{report}");
    assert_eq!(r["foreign_messages"], 0, "{report}");
    // `lost` counts acknowledged messages some subscriber never got: it
    // means something only if messages were acknowledged.
    assert!(r["published"].as_u64().unwrap_or(0) >= 50, "{report}");
    assert!(
        r["ack_latency"]["count"].as_u64().unwrap_or(0) > 0,
        "{report}"
    );
    assert!(
        r["delivered_in_window"].as_u64().unwrap_or(0) > 0,
        "{report}"
    );
    assert!(r["latency"]["count"].as_u64().unwrap_or(0) > 0, "{report}");
    assert!(
        report["server"]["rss_kib_peak"].as_u64().unwrap_or(0) > 0,
        "{report}"
    );
    // The server's write calls are counted (it also writes its log, so
    // only their presence is certain) and the machine's CPU split covers
    // all of its time.
    assert!(
        report["server"]["write_syscalls"].as_u64().unwrap_or(0) > 0,
        "{report}"
    );
    let per_write = report["server"]["frames_received_per_write"]
        .as_f64()
        .unwrap_or(0.0);
    assert!(per_write > 0.0 && per_write <= 64.0, "{report}");
    let machine = &report["machine_cpu"];
    if machine.is_null() {
        return; // a kernel that does not advance /proc/stat
    }
    let total: f64 = ["user_pct", "system_pct", "idle_pct", "steal_pct"]
        .iter()
        .map(|k| machine[k].as_f64().unwrap_or(0.0))
        .sum();
    assert!((99.0..=101.0).contains(&total), "{report}");
}

#[test]
fn sockets_spread_round_robin_over_several_urls() {
    let server = server();
    // Two spellings of the one server: the generator counts each URL's
    // connections apart. Publishers go to --publisher-url only.
    let a = format!("ws://{}/socket/websocket?spread=a", server.addr());
    let report = loadgen(
        &server,
        &format!(
            "fanout --subscribers 10 --publishers 2 --rate 20 --topic room:lg-spread \
             --duration 1s --warmup 0s --register-prefix lgspread --users 2 --create-rooms \
             --url {a} --publisher-url {a}"
        ),
    );
    let r = &report["results"];
    assert_eq!(report["ok"], true, "{report}");
    assert_eq!(r["subscribers_joined"], 10, "{report}");
    assert_eq!(r["lost"], 0, "{report}");
    let spread = r["sockets_per_url"].as_array().expect("sockets_per_url");
    assert_eq!(spread.len(), 2, "{report}");
    assert_eq!(spread[0]["url"], a.as_str(), "{report}");
    // Subscribers 0, 2, 4, 6, 8 and both publishers on the first URL.
    assert_eq!(spread[0]["sockets"], 7, "{report}");
    assert_eq!(spread[1]["sockets"], 5, "{report}");
    assert_eq!(
        report["params"]["url"],
        format!("{a},ws://{}/socket/websocket", server.addr()),
        "{report}"
    );
}

#[test]
fn a_reconnect_storm_recovers_every_client_without_gaps() {
    let server = server();
    let report = loadgen(
        &server,
        "reconnect-storm --clients 60 --rate 30 --topic room:lg-storm \
         --duration 2s --warmup 1s --drain 5s \
         --register-prefix lgstorm --users 3 --create-rooms",
    );
    let r = &report["results"];
    assert_eq!(report["ok"], true, "{report}");
    assert_eq!(r["clients_joined"], 60, "{report}");
    assert_eq!(r["recovered"], 60, "{report}");
    assert_eq!(r["gaps"], 0, "{report}");
    assert_eq!(r["duplicates"], 0, "{report}");
    assert_eq!(r["out_of_order"], 0, "{report}");
    assert!(r["published"].as_u64().unwrap_or(0) > 0, "{report}");
}

#[test]
fn held_sockets_answer_heartbeats_and_a_bad_token_is_reported() {
    let server = server();
    let report = loadgen(
        &server,
        "connect --sockets 30 --rooms 3 --topic-pattern room:lg-conn-{i} \
         --heartbeat-interval 300ms --duration 2s --warmup 0s \
         --register-prefix lgconn --users 2 --create-rooms",
    );
    let r = &report["results"];
    assert_eq!(report["ok"], true, "{report}");
    assert_eq!(r["established"], 30, "{report}");
    assert_eq!(r["joins_ok"], 30, "{report}");
    assert_eq!(r["alive_at_end"], 30, "{report}");
    assert!(
        r["heartbeat_rtt"]["count"].as_u64().unwrap_or(0) >= 30,
        "{report}"
    );
    assert_eq!(r["heartbeats_unanswered"], 0, "{report}");

    let refused = loadgen(
        &server,
        "connect --sockets 3 --duration 1s --warmup 0s --token not-a-token",
    );
    assert_eq!(refused["ok"], false, "{refused}");
    assert_eq!(
        refused["results"]["failed_by_class"]["http_403"], 3,
        "{refused}"
    );
}
