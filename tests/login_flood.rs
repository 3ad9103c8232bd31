//! A flood of logins does not starve store reads. Password hashing runs on
//! threads of its own at a lower CPU priority, so a history read neither
//! queues behind hashing jobs nor loses the cores to them: it waits for
//! fewer logins to finish than there are hashing threads. The server is
//! sized as for 64 cores (a debug-build setting): 16 hashing threads on
//! this machine's few cores, the worst case for the reads.

mod common;

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;

use common::TestServer;

const LOGIN_THREADS: usize = 80;
const LOGINS_PER_THREAD: usize = 3;
/// `PoolSizes::for_cores(64).hashing_threads`.
const HASHING_THREADS: usize = 16;

#[test]
fn history_reads_go_on_beside_a_login_flood() {
    let server = TestServer::start_with(&[("CONFAB_TEST_CORES", "64")], None);
    let (token, _) = server.register("flooder", "flood-password");
    for i in 0..20 {
        let response = server.post_json(
            "/api/rooms/lobby/messages",
            Some(&token),
            &serde_json::json!({"body": format!("message {i}")}),
        );
        response.assert_status(201, "post a message");
    }
    let server = Arc::new(server);
    let total = LOGIN_THREADS * LOGINS_PER_THREAD;
    let logins_done = Arc::new(AtomicUsize::new(0));
    let flood: Vec<_> = (0..LOGIN_THREADS)
        .map(|_| {
            let (server, done) = (server.clone(), logins_done.clone());
            std::thread::spawn(move || {
                for _ in 0..LOGINS_PER_THREAD {
                    server.login("flooder", "flood-password");
                    done.fetch_add(1, Ordering::SeqCst);
                }
            })
        })
        .collect();

    // For each read made while the flood runs: how many logins finished
    // while it was in flight.
    let mut waited_for = Vec::new();
    while logins_done.load(Ordering::SeqCst) < total - HASHING_THREADS {
        let before = logins_done.load(Ordering::SeqCst);
        let page = server.get("/api/rooms/lobby/messages?limit=50", Some(&token));
        page.assert_status(200, "history during the flood");
        assert_eq!(page.json()["messages"].as_array().map(Vec::len), Some(20));
        waited_for.push(logins_done.load(Ordering::SeqCst) - before);
    }
    for thread in flood {
        thread.join().expect("a login thread");
    }
    assert!(
        waited_for.len() >= 5,
        "only {} reads completed during {total} logins: {waited_for:?}",
        waited_for.len()
    );
    waited_for.sort_unstable();
    eprintln!("logins finished during each read: {waited_for:?}");
    let median = waited_for[waited_for.len() / 2];
    assert!(
        median < HASHING_THREADS,
        "a history read waited for {median} logins (median of {} reads; {waited_for:?}): \
         hashing held it up",
        waited_for.len()
    );
}
