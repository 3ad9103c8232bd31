//! Bots and webhooks: bot API keys ([`keys`]), the registry of bots that
//! receive outgoing webhooks (read by the post path to decide which events
//! to queue), the delivery log, and the dispatcher ([`outgoing`]) that sends
//! queued events with [`client`] under the address rules of [`safety`].

pub mod cli;
pub mod client;
pub mod keys;
pub mod manage;
pub mod outgoing;
pub mod safety;

use std::collections::{HashMap, VecDeque};
use std::sync::{Arc, Mutex, RwLock};

use serde::Serialize;
use tokio::sync::{mpsc, Semaphore};

use crate::chat::views::UserBrief;
use crate::error::Result;
use crate::socket::limits::TokenBucket;
use crate::store::records::{BotRecord, DeliveryRecord};
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

/// One delivery attempt, as the log shows it.
#[derive(Clone, Debug, Serialize)]
pub struct Attempt {
    pub event_id: u64,
    pub at: String,
    /// The HTTP status, when there was an answer.
    pub status: Option<u16>,
    pub latency_ms: u64,
    pub error: Option<String>,
    /// `delivered`, `retrying` or `gave_up`.
    pub outcome: &'static str,
}

/// Bot state shared by the post path, the API and the dispatcher.
pub struct Bots {
    registry: RwLock<Registry>,
    log: Mutex<HashMap<u64, VecDeque<Attempt>>>,
    queue: mpsc::UnboundedSender<DeliveryRecord>,
    receiver: Mutex<Option<mpsc::UnboundedReceiver<DeliveryRecord>>>,
    limits: Mutex<HashMap<u64, Arc<Semaphore>>>,
    /// Incoming webhook rate limits, by hook id.
    hook_buckets: Mutex<HashMap<u64, TokenBucket>>,
}

impl Default for Bots {
    fn default() -> Self {
        let (queue, receiver) = mpsc::unbounded_channel();
        Bots {
            registry: RwLock::new(Arc::new(HashMap::new())),
            log: Mutex::new(HashMap::new()),
            queue,
            receiver: Mutex::new(Some(receiver)),
            limits: Mutex::new(HashMap::new()),
            hook_buckets: Mutex::new(HashMap::new()),
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
        if let Ok(mut registry) = self.registry.write() {
            *registry = Arc::new(map);
        }
        Ok(())
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

    /// Adds an attempt to a bot's log, dropping the oldest past [`LOG_LEN`].
    pub fn record(&self, bot_id: u64, attempt: Attempt) {
        if let Ok(mut log) = self.log.lock() {
            let entries = log.entry(bot_id).or_default();
            if entries.len() == LOG_LEN {
                entries.pop_front();
            }
            entries.push_back(attempt);
        }
    }

    /// A bot's last attempts, newest first.
    pub fn attempts(&self, bot_id: u64) -> Vec<Attempt> {
        match self.log.lock() {
            Ok(log) => log
                .get(&bot_id)
                .map(|entries| entries.iter().rev().cloned().collect())
                .unwrap_or_default(),
            Err(_) => Vec::new(),
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

    /// Forgets a deleted bot's log.
    pub fn forget(&self, bot_id: u64) {
        if let Ok(mut log) = self.log.lock() {
            log.remove(&bot_id);
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

/// The JSON view of a bot (never its key or secret).
pub fn view(user: &crate::store::records::UserRecord, bot: &BotRecord) -> serde_json::Value {
    serde_json::json!({
        "id": user.id,
        "username": user.username,
        "display_name": user.display_name,
        "bot": true,
        "disabled": user.disabled,
        "webhook_url": bot.webhook_url,
        "all_messages": bot.all_messages,
        "created_at": crate::clock::rfc3339_ms(bot.created_at),
    })
}
