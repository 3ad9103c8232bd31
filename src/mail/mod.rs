//! Outgoing mail: the settings ([`settings`]), the SMTP transport
//! ([`transport`]), the texts of the mails confab sends ([`texts`]) and the
//! background sender that works through the durable queue in the store
//! ([`sender`]). Requests only enqueue; a slow or absent mail server never
//! holds one up.

pub mod sender;
pub mod settings;
pub mod texts;
pub mod transport;

use std::sync::Arc;

use tokio::sync::Notify;

/// Wakes the sender when a request has queued a mail.
#[derive(Clone, Default)]
pub struct Outbox {
    wake: Arc<Notify>,
}

impl Outbox {
    /// A mail was queued: the sender should look now.
    pub fn queued(&self) {
        self.wake.notify_one();
    }

    /// Resolves at the next [`Outbox::queued`] (or at once if one is pending).
    pub async fn wait(&self) {
        self.wake.notified().await;
    }
}
