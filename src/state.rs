//! The shared application state, built once in `serve` and handed to every
//! connection behind an `Arc`.

use std::any::Any;
use std::collections::HashSet;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, OnceLock};
use std::time::{Duration, Instant};

use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;

use crate::auth::password::PasswordHashing;
use crate::auth::throttle::LoginThrottle;
use crate::auth::TokenKeys;
use crate::cluster::envelope::Control;
use crate::cluster::Cluster;
use crate::config::Config;
use crate::error::Result;
use crate::hub::{Hub, Out, Relay};
use crate::mail::Outbox;
use crate::metrics::Metrics;
use crate::search::SearchIndex;
use crate::store::Store;

/// Everything a request or socket needs.
pub struct AppState {
    pub cfg: Config,
    pub store: Store,
    pub keys: TokenKeys,
    pub passwords: PasswordHashing,
    pub login_throttle: LoginThrottle,
    /// Password-reset requests per address and per account.
    pub forgot_throttle: LoginThrottle,
    /// Wakes the mail sender when a mail is queued.
    pub outbox: Outbox,
    pub hub: Arc<Hub>,
    /// Runs post-commit work (broadcasts, acks) off the writer thread, in commit order.
    pub relay: Arc<Relay>,
    pub metrics: Arc<Metrics>,
    /// Bots: who receives outgoing webhooks, the delivery queue and log.
    pub bots: Arc<crate::bots::Bots>,
    /// The full-text index of messages, when enabled.
    pub search: Option<Arc<SearchIndex>>,
    /// Live LongPoll sessions, kept by `socket::longpoll` (which alone
    /// knows their type).
    pub longpoll: Slot,
    /// This node's part in a cluster (`nats_url` set).
    pub cluster: Option<Arc<Cluster>>,
    /// Cancelled when the server begins shutting down.
    pub shutdown: CancellationToken,
    /// Socket sessions, awaited on shutdown.
    pub sessions: TaskTracker,
    /// Most sockets the process may hold (open-files limit less a reserve).
    pub socket_capacity: AtomicUsize,
    next_conn_id: AtomicU64,
    pub started: Instant,
}

/// Cheap, cloneable handle to the state.
pub type State = Arc<AppState>;

/// Something a layer above the state keeps in it, made on first use, whose
/// type the state does not know (so the state imports nothing of that
/// layer). One slot has one owner and one type.
#[derive(Default)]
pub struct Slot(OnceLock<Box<dyn Any + Send + Sync>>);

impl Slot {
    /// The value, made with `T::default()` on first use.
    ///
    /// # Panics
    /// If the slot already holds a value of another type: a slot is read
    /// by its owner only.
    pub fn get<T: Any + Send + Sync + Default>(&self) -> &T {
        self.0
            .get_or_init(|| Box::new(T::default()))
            .downcast_ref()
            .expect("a state slot is read as one type only")
    }
}

impl AppState {
    /// Builds the state over an open store: resolves the JWT secret
    /// (configured, or generated once and kept in the store).
    pub async fn new(
        cfg: Config,
        store: Store,
        shutdown: CancellationToken,
        metrics: Arc<Metrics>,
    ) -> Result<AppState> {
        let secret = if cfg.jwt_secret.is_empty() {
            store.jwt_secret().await?
        } else {
            cfg.jwt_secret.as_bytes().to_vec()
        };
        let keys = TokenKeys::new(&secret, cfg.token_ttl_secs);
        let passwords = PasswordHashing::new(
            cfg.argon2_memory_kib,
            cfg.argon2_iterations,
            cfg.argon2_parallelism,
        )?;
        let login_throttle = LoginThrottle::new(
            cfg.login_max_failures,
            Duration::from_secs(cfg.login_window_secs),
        );
        let forgot_throttle = LoginThrottle::new(
            cfg.login_max_failures,
            Duration::from_secs(cfg.login_window_secs),
        );
        Ok(AppState {
            cfg,
            store,
            keys,
            passwords,
            login_throttle,
            forgot_throttle,
            outbox: Outbox::default(),
            hub: Arc::new(Hub::default()),
            relay: Arc::new(Relay::start()),
            metrics,
            bots: Arc::default(),
            search: None,
            longpoll: Slot::default(),
            cluster: None,
            shutdown,
            sessions: TaskTracker::new(),
            socket_capacity: AtomicUsize::new(usize::MAX),
            next_conn_id: AtomicU64::new(1),
            started: Instant::now(),
        })
    }

    /// The state with `search` as its full-text index.
    pub fn with_search(mut self, search: Option<Arc<SearchIndex>>) -> AppState {
        self.search = search;
        self
    }

    /// The state as one node of `cluster`.
    pub fn with_cluster(mut self, cluster: Option<Arc<Cluster>>) -> AppState {
        self.cluster = cluster;
        self
    }

    /// A fresh connection id.
    pub fn next_conn_id(&self) -> u64 {
        self.next_conn_id.fetch_add(1, Ordering::Relaxed)
    }

    /// A user's credentials changed (password, disabled, logout): their live
    /// sockets, on every node, re-check their tokens and close if now refused.
    pub fn sessions_changed(&self, user_id: u64) {
        self.apply(Control::Recheck { user_id });
    }

    /// A user's ignore list changed: their sockets on every node filter by it.
    pub fn ignores_changed(&self, user_id: u64, ignored: &HashSet<u64>) {
        self.apply(Control::Ignores {
            user_id,
            ignored: ignored.iter().copied().collect(),
        });
    }

    /// A user left a private room: their sockets on every node leave it.
    pub fn eject(&self, topic: &str, user_id: u64) {
        self.apply(Control::Eject {
            topic: topic.to_owned(),
            user_id,
        });
    }

    /// Bots or their settings changed: read them again here and on every
    /// other node.
    pub async fn bots_changed(&self) -> Result<()> {
        self.bots.reload(&self.store).await?;
        if let Some(cluster) = &self.cluster {
            cluster.announce(Control::BotsChanged);
        }
        Ok(())
    }

    /// Applies `control` here and announces it to the other nodes.
    fn apply(&self, control: Control) {
        if let Some(cluster) = &self.cluster {
            cluster.announce(control.clone());
        }
        self.apply_here(control);
    }

    /// Applies a [`Control`] to this node's sockets (one made here, or one
    /// announced by another node).
    pub fn apply_here(&self, control: Control) {
        match control {
            Control::Recheck { user_id } => {
                for conn in self.hub.connections_of(user_id) {
                    conn.send(Out::Recheck);
                }
            }
            Control::Ignores { user_id, ignored } => {
                let set: Arc<HashSet<u64>> = Arc::new(ignored.into_iter().collect());
                for conn in self.hub.connections_of(user_id) {
                    conn.send(Out::Ignores(set.clone()));
                }
            }
            Control::Eject { topic, user_id } => self.hub.eject(&topic, user_id),
            // Read by the caller (it is async); see `lib::on_control`.
            Control::BotsChanged => {}
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_slot_makes_its_value_once() {
        let slot = Slot::default();
        slot.get::<AtomicU64>().fetch_add(2, Ordering::Relaxed);
        assert_eq!(slot.get::<AtomicU64>().load(Ordering::Relaxed), 2);
    }
}
