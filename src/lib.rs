//! confab: a self-hosted team chat server in one executable.
//!
//! # Layout
//! - [`config`]: settings (defaults < `config.toml` < `CONFAB_*` env < flags).
//! - [`store`]: the storage interface; its embedded backend is one file
//!   written by one writer thread with group commit; [`store::postgres`]:
//!   the PostgreSQL pool and schema migrations.
//! - [`auth`]: password hashing, JWT tokens, login throttling, `authenticate`.
//! - [`accounts`]: account rules and flows shared by the API and the CLI;
//!   [`password_links`]: one-time links to choose a password (welcome, reset).
//! - [`mail`]: outgoing mail (SMTP) through a durable queue in the store.
//! - [`http`]: the routing table, REST handlers, static UI, probes.
//! - [`server`]: the accept loop and graceful drain.
//! - [`metrics`]: counters and histograms for `/metrics`.
//! - [`chat`]: topics and who may join them, message operations, notifications.
//! - [`hub`]: subscriptions, presence and fan-out of shared frames.
//! - [`socket`]: the Phoenix Channels protocol over WebSocket.
//! - [`search`]: the full-text index of messages (tantivy, in `data_dir/search`).
//! - [`cluster`]: several nodes on one PostgreSQL, joined by a NATS bus.
//! - [`commands`]: the CLI subcommands other than `serve`.
//! - [`admin`]: the local admin socket that runs them on a live server.
//! - [`state`], [`error`], [`clock`], [`random`], [`logging`], [`shutdown`]: shared plumbing.
//! - [`fault`]: faults tests inject into debug builds.
//! - [`thread_priority`]: a lower CPU priority for background threads.
//! - [`pool_sizes`]: the blocking pool and the hashing semaphore, sized together.

pub mod accounts;
#[cfg(unix)]
pub mod admin;
pub mod auth;
pub mod bots;
pub mod chat;
pub mod clock;
pub mod cluster;
pub mod commands;
pub mod config;
pub mod error;
pub mod fault;
pub mod http;
pub mod hub;
pub mod logging;
pub mod mail;
pub mod memory;
pub mod metrics;
pub mod password_links;
pub mod pool_sizes;
pub mod random;
pub mod search;
pub mod server;
pub mod shutdown;
pub mod socket;
pub mod state;
pub mod store;
pub mod thread_priority;

use std::sync::Arc;
use std::time::Duration;

use tokio_util::sync::CancellationToken;

use config::Config;
use state::AppState;
use store::Store;

/// How often expired token revocations and stale throttle entries are purged.
const PURGE_INTERVAL: Duration = Duration::from_secs(3600);
/// File descriptors kept free for the store, logs and HTTP requests.
const RESERVED_FILES: usize = 64;

/// Runs the server until SIGINT/SIGTERM: opens the store, binds, serves,
/// drains, closes the store. Errors are one line for the operator.
pub async fn run(cfg: Config) -> Result<(), String> {
    let metrics = Arc::new(metrics::Metrics::default());
    let store = Store::open_configured(&cfg, Some(metrics.clone())).await?;
    let listener = server::bind(cfg.listen_addr())
        .map_err(|e| format!("cannot listen on {}: {e}", cfg.listen))?;
    let shutdown = CancellationToken::new();
    shutdown::cancel_on_signal(shutdown.clone());
    let files = server::raise_open_files_limit();
    let addr = listener
        .local_addr()
        .map_err(|e| format!("cannot read the bound address: {e}"))?;
    let search = if cfg.search_index {
        Some(search::SearchIndex::open(&cfg.data_dir, store.clone())?)
    } else {
        None
    };
    let state = AppState::new(cfg, store.clone(), shutdown.clone(), metrics)
        .await
        .map_err(|e| format!("cannot start: {e}"))?
        .with_search(search.clone());
    let cluster = if state.cfg.clustered() {
        Some(cluster::Cluster::connect(&state.cfg, state.hub.clone(), store.clone()).await?)
    } else {
        None
    };
    let state = Arc::new(state.with_cluster(cluster.clone()));
    let cluster_task = match &cluster {
        Some(cluster) => Some(
            cluster
                .start(ClusterHooks(state.clone()), shutdown.clone())
                .await?,
        ),
        None => None,
    };
    socket::longpoll_route::serve(&state).await?;
    tracing::info!(
        version = env!("CARGO_PKG_VERSION"),
        data = %state.cfg.data_dir.display(),
        store = %store.location(),
        open_files = files,
        "confab started; sockets are limited by the open-files limit"
    );
    // A stable line on stdout for people and scripts: where to connect.
    let capacity = (files as usize).saturating_sub(RESERVED_FILES);
    state
        .socket_capacity
        .store(capacity, std::sync::atomic::Ordering::Relaxed);
    tracing::info!(
        sockets = capacity,
        "socket capacity from the open-files limit"
    );
    #[cfg(unix)]
    let admin_socket = spawn_admin_socket(&state);
    println!("confab listening on http://{addr}");
    spawn_purger(state.clone());
    if let Err(e) = state.bots.reload(&state.store).await {
        return Err(format!("cannot read the bots: {e}"));
    }
    bots::outgoing::start(state.clone());
    match mail::transport::Mailer::from_config(&state.cfg)? {
        Some(mailer) => mail::sender::spawn(state.clone(), mailer),
        None => tracing::info!("smtp_url is empty: no mail is sent"),
    }
    tokio::spawn(state.hub.clone().run_presence(shutdown.clone()));
    server::serve(state.clone(), listener).await;
    if let Some(task) = cluster_task {
        // The goodbye to the other nodes, so this node's presences leave at once.
        let _ = tokio::time::timeout(Duration::from_secs(3), task).await;
    }
    #[cfg(unix)]
    drop(admin_socket);
    drop(state);
    if let Some(search) = search {
        search.close();
    }
    // Every request handler holding the state has finished or been dropped
    // by the drain; give stragglers a moment, then close the file.
    store.close();
    tracing::info!("confab stopped");
    Ok(())
}

/// Serves the admin socket in the data directory (the store lock is held, so
/// no other server uses it). Without it the server still runs; store
/// commands then need the server stopped.
#[cfg(unix)]
fn spawn_admin_socket(state: &state::State) -> Option<admin::listener::SocketFile> {
    match admin::listener::bind(&state.cfg.data_dir) {
        Ok((listener, file)) => {
            tracing::info!(path = %file.path().display(), "admin socket ready");
            tokio::spawn(admin::listener::serve(state.clone(), listener));
            Some(file)
        }
        Err(e) => {
            tracing::warn!(
                path = %admin::socket_path(&state.cfg.data_dir).display(),
                error = %e,
                "cannot open the admin socket; user, room and export commands need the server stopped"
            );
            None
        }
    }
}

/// Applies what other nodes of the cluster announce to this node.
struct ClusterHooks(state::State);

impl cluster::Hooks for ClusterHooks {
    fn control(&self, control: cluster::envelope::Control) {
        let state = &self.0;
        match control {
            cluster::envelope::Control::BotsChanged => {
                let state = state.clone();
                tokio::spawn(async move {
                    if let Err(e) = state.bots.reload(&state.store).await {
                        tracing::warn!(error = %e, "cannot read the bots again");
                    }
                });
            }
            control => state.apply_here(control),
        }
    }

    fn message(&self, topic_id: u64, event: &str, payload: &str) {
        if let Some(search) = &self.0.search {
            search.remote_change(topic_id, event, payload);
        }
    }

    fn unread(&self, topic: &str, last_seq: u64, counts: &[(u64, u64)]) {
        chat::notify::unread_here(&self.0.hub, topic, last_seq, counts);
    }
}

fn spawn_purger(state: state::State) {
    tokio::spawn(async move {
        let mut tick = tokio::time::interval(PURGE_INTERVAL);
        loop {
            tokio::select! {
                _ = tick.tick() => {}
                () = state.shutdown.cancelled() => return,
            }
            state.login_throttle.sweep();
            state.forgot_throttle.sweep();
            match state
                .store
                .purge_expired_password_links(clock::now_ms())
                .await
            {
                Ok(n) if n > 0 => tracing::info!(removed = n, "purged expired password links"),
                Ok(_) => {}
                Err(e) => tracing::warn!(error = %e, "purging password links failed"),
            }
            match state
                .store
                .purge_expired_revocations(clock::now_secs())
                .await
            {
                Ok(n) if n > 0 => tracing::info!(removed = n, "purged expired token revocations"),
                Ok(_) => {}
                Err(e) => tracing::warn!(error = %e, "purging token revocations failed"),
            }
        }
    });
}
