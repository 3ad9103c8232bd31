//! Bots and webhooks: bot API keys ([`keys`]), the registry of bots that
//! receive outgoing webhooks (read by the post path to decide which events
//! to queue), bots' message rate limits (their own from the store, else the
//! one of people) and their buckets, the view of the delivery log (kept in
//! the store), and the dispatcher ([`outgoing`]) that sends queued events
//! with [`client`] under the address rules of [`safety`].

pub mod cli;
pub mod client;
pub mod keys;
pub mod manage;
pub mod outgoing;
pub mod safety;

use std::collections::HashMap;
use std::sync::{Arc, Mutex, OnceLock, RwLock};

use tokio::sync::{mpsc, Semaphore};

use crate::chat::views::UserBrief;
use crate::config::Config;
use crate::error::Result;
use crate::socket::limits::TokenBucket;
use crate::store::records::{BotRecord, DeliveryAttemptRecord, DeliveryRecord, RateLimit};
use crate::store::Store;

/// Attempts kept per bot in the delivery log.
pub const LOG_LEN: usize = 50;

/// What the post path needs to know of a bot.
#[derive(Clone, Copy, Debug)]
pub struct Entry {
    pub all_messages: bool,
}

/// Bots with a webhook URL, by user id. Replaced whole on every change, so
/// the post path reads a snapshot without a lock held.
pub type Registry = Arc<HashMap<u64, Entry>>;

/// Bot state shared by the post path, the API and the dispatcher.
pub struct Bots {
    registry: RwLock<Registry>,
    /// The bots' own rate limits, by user id (the others use the default).
    rate_limits: RwLock<Arc<HashMap<u64, RateLimit>>>,
    /// Each bot's message bucket, shared by its REST posts and its sockets,
    /// with the limit it was made for.
    post_buckets: Mutex<HashMap<u64, (RateLimit, TokenBucket)>>,
    queue: mpsc::UnboundedSender<DeliveryRecord>,
    receiver: Mutex<Option<mpsc::UnboundedReceiver<DeliveryRecord>>>,
    limits: Mutex<HashMap<u64, Arc<Semaphore>>>,
    /// Incoming webhook rate limits, by hook id.
    hook_buckets: Mutex<HashMap<u64, TokenBucket>>,
    /// The TLS settings of `https://` webhooks, made on first use.
    tls: OnceLock<client::Tls>,
}

impl Default for Bots {
    fn default() -> Self {
        let (queue, receiver) = mpsc::unbounded_channel();
        Bots {
            registry: RwLock::new(Arc::new(HashMap::new())),
            rate_limits: RwLock::new(Arc::new(HashMap::new())),
            post_buckets: Mutex::new(HashMap::new()),
            queue,
            receiver: Mutex::new(Some(receiver)),
            limits: Mutex::new(HashMap::new()),
            hook_buckets: Mutex::new(HashMap::new()),
            tls: OnceLock::new(),
        }
    }
}

impl Bots {
    /// Rebuilds the registry from the store (after any bot change).
    pub async fn reload(&self, store: &Store) -> Result<()> {
        let mut map = HashMap::new();
        for (user, bot) in store.bots().await? {
            if bot.webhook_url.is_some() && !user.disabled {
                map.insert(
                    user.id,
                    Entry {
                        all_messages: bot.all_messages,
                    },
                );
            }
        }
        let limits: HashMap<u64, RateLimit> = store.bot_rate_limits().await?.into_iter().collect();
        if let Ok(mut registry) = self.registry.write() {
            *registry = Arc::new(map);
        }
        if let Ok(mut rate_limits) = self.rate_limits.write() {
            *rate_limits = Arc::new(limits);
        }
        Ok(())
    }

    /// A bot's own rate limit, if it has one.
    pub fn rate_limit(&self, bot_id: u64) -> Option<RateLimit> {
        self.rate_limits
            .read()
            .ok()
            .and_then(|limits| limits.get(&bot_id).copied())
    }

    /// Takes a token from a bot's message bucket: its own limit, else
    /// `default` (the one of people). A changed limit starts a full bucket.
    pub fn take_post_token(&self, bot_id: u64, default: RateLimit) -> bool {
        let limit = self.rate_limit(bot_id).unwrap_or(default);
        let Ok(mut buckets) = self.post_buckets.lock() else {
            return true;
        };
        let entry = buckets
            .entry(bot_id)
            .or_insert_with(|| (limit, TokenBucket::new(limit.burst, limit.refill_per_sec)));
        if entry.0 != limit {
            *entry = (limit, TokenBucket::new(limit.burst, limit.refill_per_sec));
        }
        entry.1.take()
    }

    /// The TLS settings of `https://` webhooks (the public roots and
    /// `webhook_ca_file`), made once.
    pub fn tls(&self, cfg: &Config) -> &client::Tls {
        self.tls.get_or_init(|| {
            let tls = client::tls_config(&cfg.webhook_ca_file);
            if let Err(e) = &tls {
                tracing::error!(error = %e, "https webhooks cannot be delivered");
            }
            tls
        })
    }

    /// The current registry.
    pub fn registry(&self) -> Registry {
        match self.registry.read() {
            Ok(registry) => registry.clone(),
            Err(_) => Arc::new(HashMap::new()),
        }
    }

    /// Hands events that are durable to the dispatcher.
    pub fn dispatch(&self, records: Vec<DeliveryRecord>) {
        for record in records {
            let _ = self.queue.send(record);
        }
    }

    /// The dispatcher's queue, taken once when it starts.
    pub(crate) fn take_receiver(&self) -> Option<mpsc::UnboundedReceiver<DeliveryRecord>> {
        self.receiver.lock().ok().and_then(|mut r| r.take())
    }

    /// The in-flight limit of one bot.
    pub(crate) fn limit(&self, bot_id: u64, permits: usize) -> Arc<Semaphore> {
        match self.limits.lock() {
            Ok(mut limits) => limits
                .entry(bot_id)
                .or_insert_with(|| Arc::new(Semaphore::new(permits)))
                .clone(),
            Err(_) => Arc::new(Semaphore::new(permits)),
        }
    }

    /// Takes a token from an incoming webhook's bucket (as for socket pushes).
    pub fn take_hook_token(&self, hook_id: u64, burst: u32, refill_per_sec: u32) -> bool {
        match self.hook_buckets.lock() {
            Ok(mut buckets) => buckets
                .entry(hook_id)
                .or_insert_with(|| TokenBucket::new(burst, refill_per_sec))
                .take(),
            Err(_) => true,
        }
    }

    /// Forgets a deleted bot's message bucket.
    pub fn forget(&self, bot_id: u64) {
        if let Ok(mut buckets) = self.post_buckets.lock() {
            buckets.remove(&bot_id);
        }
    }
}

/// The request body of a `message` event:
/// `{id, type, message, topic, room | conversation, author}`.
pub fn event_body(
    event_id: u64,
    topic: &str,
    stored: &crate::store::records::Stored,
    author: &UserBrief,
    attachment: Option<&crate::store::records::AttachmentRecord>,
) -> String {
    let message = crate::chat::views::MessageView::new(topic, stored, author)
        .with_attachment(attachment)
        .to_value();
    let mut event = serde_json::json!({
        "id": event_id,
        "type": "message",
        "message": message,
        "topic": topic,
        "author": author,
    });
    if let Some(room) = topic.strip_prefix("room:") {
        event["room"] = serde_json::json!(room);
    } else if let Some(id) = topic
        .strip_prefix("dm:")
        .and_then(|id| id.parse::<u64>().ok())
    {
        event["conversation"] = serde_json::json!(id);
    }
    event.to_string()
}

/// The rate limit of people (`push_burst`, `push_refill_per_sec`), which
/// bots without one of their own have.
pub fn default_rate_limit(cfg: &Config) -> RateLimit {
    RateLimit {
        burst: cfg.push_burst,
        refill_per_sec: cfg.push_refill_per_sec,
    }
}

/// The JSON form of a rate limit: `{burst, refill_per_sec}`.
pub fn rate_limit_view(limit: &RateLimit) -> serde_json::Value {
    serde_json::json!({"burst": limit.burst, "refill_per_sec": limit.refill_per_sec})
}

/// The JSON view of one delivery attempt.
pub fn attempt_view(attempt: &DeliveryAttemptRecord) -> serde_json::Value {
    serde_json::json!({
        "event_id": attempt.event_id,
        "attempt": attempt.attempt,
        "at": crate::clock::rfc3339_ms(attempt.at),
        "status": attempt.status,
        "latency_ms": attempt.latency_ms,
        "error": attempt.error,
        "outcome": attempt.outcome.as_str(),
    })
}

/// The JSON view of a bot (never its key or secret), with its own rate
/// limit (`null`: the one of people).
pub fn view(
    user: &crate::store::records::UserRecord,
    bot: &BotRecord,
    rate_limit: Option<&RateLimit>,
) -> serde_json::Value {
    serde_json::json!({
        "id": user.id,
        "username": user.username,
        "display_name": user.display_name,
        "bot": true,
        "disabled": user.disabled,
        "webhook_url": bot.webhook_url,
        "all_messages": bot.all_messages,
        "rate_limit": rate_limit.map(rate_limit_view),
        "created_at": crate::clock::rfc3339_ms(bot.created_at),
    })
}
