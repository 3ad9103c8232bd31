//! Message operations shared by socket events and REST: post (durable,
//! idempotent on `client_id`, broadcast after commit), edit, delete, read
//! positions, history pages (also centred on one message) and the recovery snapshot of a join. The store
//! does the storage part of each as one operation (`crate::store::Backend`);
//! this module builds the requests (mentions need presence) and broadcasts
//! the outcomes.
//!
//! Completions run on the writer thread right after the commit, in commit
//! order, so broadcasts of one topic leave in `seq` order.

use std::sync::Arc;

use serde::Serialize;
use serde_json::{json, Value};

use super::mentions;
use super::notify;
use super::topic::Access;
use super::views::{MessageView, UserBrief};
use crate::error::{Error, Result};
use crate::hub::{Broadcast, Hub};
use crate::state::AppState;
use crate::store::ops::{
    BotAudience, ChangeOutcome, ChangeRequest, HistoryQuery, MessageChange, MessagePage,
    PostOutcome, PostRequest, RecoveryQuery,
};
use crate::store::records::{AttachmentRecord, Stored, UserRecord};

/// Most messages a join reply recovers before it says `truncated`.
pub const MAX_RECOVERY: usize = 1000;
/// Largest history page.
pub const MAX_PAGE: usize = 200;
/// History page size when none is asked for.
pub const DEFAULT_PAGE: usize = 50;

/// Why a message body was refused: `(reason code, human text)`. An empty
/// body is allowed only for a message that carries an attachment.
pub fn body_problem(
    body: &str,
    max_chars: usize,
    has_attachment: bool,
) -> Option<(&'static str, String)> {
    if body.trim().is_empty() && !has_attachment {
        return Some(("empty_body", "the message is empty".into()));
    }
    if body.chars().count() > max_chars {
        return Some((
            "body_too_long",
            format!("the message is longer than {max_chars} characters"),
        ));
    }
    None
}

/// The outcome of a post.
#[derive(Clone, Debug)]
pub struct Posted {
    pub stored: Stored,
    /// True when the `client_id` had been used: nothing new was stored.
    pub duplicate: bool,
    topic: Arc<str>,
    author: UserBrief,
    attachment: Option<AttachmentRecord>,
}

impl Posted {
    /// The ok reply of a `new_msg` push: `{id, seq, inserted_at}`.
    pub fn ack(&self) -> Value {
        json!({
            "id": self.stored.record.id,
            "seq": self.stored.seq,
            "inserted_at": crate::clock::rfc3339_ms(self.stored.record.inserted_at),
        })
    }

    /// The `message` object as JSON (built on demand: the socket ack does
    /// not need it, and the broadcast serializes its own copy).
    pub fn message(&self) -> Value {
        MessageView::new(&self.topic, &self.stored, &self.author)
            .with_attachment(self.attachment.as_ref())
            .to_value()
    }
}

/// What a client asks to post.
#[derive(Clone, Debug, Default)]
pub struct Draft {
    pub body: String,
    pub client_id: Option<String>,
    /// An image uploaded to the same topic by the same user.
    pub attachment_id: Option<u64>,
}

/// The bots that may hear of a post by `author` through outgoing webhooks
/// (none when there are none, or the author is a bot).
fn bot_audience(state: &AppState, author: &UserRecord, brief: &UserBrief) -> Option<BotAudience> {
    if author.bot {
        return None;
    }
    let registry = state.bots.registry();
    if registry.is_empty() {
        return None;
    }
    Some(BotAudience {
        bots: registry
            .iter()
            .map(|(&id, entry)| (id, entry.all_messages))
            .collect(),
        author: brief.clone(),
        body: crate::bots::event_body,
    })
}

/// Stores a message and, once durable, broadcasts `new_msg` to the topic;
/// `done` runs after that, on the writer thread. The body must already be
/// validated with [`body_problem`] (it may be empty with an attachment).
pub async fn post<D>(state: &AppState, author: &UserRecord, access: &Access, draft: Draft, done: D)
where
    D: FnOnce(Result<Posted>) + Send + 'static,
{
    let hub: Arc<Hub> = state.hub.clone();
    let relay = state.relay.clone();
    let metrics = state.metrics.clone();
    let search = state.search.clone();
    let brief = UserBrief::from(author);
    let topic = access.name.clone();
    let request = PostRequest {
        topic_id: access.topic_id,
        topic: topic.clone(),
        user_id: author.id,
        mentions: mentions::query(&hub, &topic, author.id, &draft.body),
        body: draft.body,
        client_id: draft.client_id,
        attachment_id: draft.attachment_id,
        bots: bot_audience(state, author, &brief),
    };
    // The dispatcher that sends the queued events once they are durable.
    let bots = state.bots.clone();
    state
        .store
        .post_message(request, move |result: Result<PostOutcome>| {
            // Broadcast, then ack, in commit order, off the writer thread.
            relay.run(move || {
                let posted = result.map(|outcome| {
                    let PostOutcome {
                        stored,
                        duplicate,
                        unread,
                        attachment,
                        mentioned,
                        events,
                    } = outcome;
                    if !duplicate {
                        crate::metrics::Metrics::inc(&metrics.messages_stored);
                        if let Some(search) = &search {
                            search.stored(&stored);
                        }
                        let view = MessageView::new(&topic, &stored, &brief)
                            .with_attachment(attachment.as_ref());
                        let mut broadcast = Broadcast::new(topic.clone(), "new_msg", &view);
                        broadcast.seq = Some(stored.seq);
                        broadcast.author = Some(brief.id);
                        broadcast.topic_id = Some(stored.topic_id);
                        hub.publish(Arc::new(broadcast));
                        notify::unread_counts(&hub, &topic, stored.seq, &unread);
                        mentions::notify(
                            &hub,
                            &mentioned,
                            &topic,
                            stored.seq,
                            &brief,
                            &stored.record.body,
                        );
                        bots.dispatch(events);
                    }
                    Posted {
                        stored,
                        duplicate,
                        topic,
                        author: brief,
                        attachment,
                    }
                });
                done(posted);
            });
        })
        .await;
}

/// [`post`], waiting for the outcome.
pub async fn post_and_wait(
    state: &AppState,
    author: &UserRecord,
    access: &Access,
    draft: Draft,
) -> Result<Posted> {
    let (tx, rx) = tokio::sync::oneshot::channel();
    post(state, author, access, draft, move |r| {
        let _ = tx.send(r);
    })
    .await;
    rx.await
        .unwrap_or_else(|_| Err(Error::Unavailable("the store is closed".into())))
}

/// What an edit or delete does to a message.
#[derive(Clone, Debug)]
pub enum Change {
    Edit(String),
    Delete,
}

/// Edits or deletes a message (author or admin only); broadcasts
/// `msg_updated` (the message) or `msg_deleted` (`{seq}`) once durable.
/// An edit resolves mentions again and tells the newly mentioned; a delete
/// drops them (see [`mentions`]).
pub async fn change(
    state: &AppState,
    editor: &UserRecord,
    access: &Access,
    seq: u64,
    change: Change,
) -> Result<Value> {
    let hub = state.hub.clone();
    let relay = state.relay.clone();
    let search = state.search.clone();
    let topic = access.name.clone();
    let (tx, rx) = tokio::sync::oneshot::channel();
    let (mentions, edit, change) = match change {
        Change::Edit(body) => (
            mentions::query(&hub, &topic, editor.id, &body),
            true,
            MessageChange::Edit(body),
        ),
        Change::Delete => (None, false, MessageChange::Delete),
    };
    let request = ChangeRequest {
        topic_id: access.topic_id,
        topic: topic.clone(),
        seq,
        editor_id: editor.id,
        editor_admin: editor.admin,
        change,
        mentions,
    };
    state
        .store
        .change_message(request, move |result: Result<ChangeOutcome>| {
            relay.run(move || {
                let out = result.map(|outcome| {
                    let ChangeOutcome {
                        stored,
                        author,
                        attachment,
                        mentioned,
                        reactions,
                    } = outcome;
                    if let Some(search) = &search {
                        if edit {
                            search.edited(&stored);
                        } else {
                            search.deleted(stored.record.id);
                        }
                    }
                    let view = MessageView::new(&topic, &stored, &author)
                        .with_attachment(attachment.as_ref())
                        .with_reactions(reactions.as_ref());
                    let mut broadcast = if edit {
                        Broadcast::new(topic.clone(), "msg_updated", &view)
                    } else {
                        Broadcast::new(topic.clone(), "msg_deleted", &json!({"seq": stored.seq}))
                    };
                    // Ignoring a user hides their edits and deletions too.
                    broadcast.author = Some(stored.record.user_id);
                    broadcast.topic_id = Some(stored.topic_id);
                    broadcast.refers_to = Some(stored.seq);
                    hub.publish(Arc::new(broadcast));
                    mentions::notify(
                        &hub,
                        &mentioned,
                        &topic,
                        stored.seq,
                        &author,
                        &stored.record.body,
                    );
                    view.to_value()
                });
                let _ = tx.send(out);
            });
        })
        .await;
    rx.await
        .unwrap_or_else(|_| Err(Error::Unavailable("the store is closed".into())))
}

/// Moves the user's read position in a topic forward (never past the last
/// message), clearing the mentions up to it; returns it and tells the
/// user's personal topic the new counts.
pub async fn mark_read(state: &AppState, user_id: u64, access: &Access, seq: u64) -> Result<u64> {
    let counts = state.store.mark_read(user_id, access.topic_id, seq).await?;
    notify::unread_with_mentions(
        &state.hub,
        user_id,
        &access.name,
        counts.last_seq,
        counts.unread(),
        counts.unread_mentions,
    );
    Ok(counts.read)
}

/// Messages read for a reply, turned into views (`message` objects) only
/// while the reply is serialized: a burst of rejoins each recovering
/// hundreds of messages holds records, not a JSON tree per message, and
/// the JSON is written where it is sent.
pub struct MessageViews {
    topic: Arc<str>,
    page: MessagePage,
}

impl MessageViews {
    /// The views of `page`'s messages on `topic`.
    pub fn new(topic: Arc<str>, page: MessagePage) -> Self {
        MessageViews { topic, page }
    }

    /// The views as a JSON array value (for replies built as values).
    pub fn to_value(&self) -> Value {
        serde_json::to_value(self).unwrap_or_else(|e| {
            tracing::error!(error = %e, "message views did not serialize");
            Value::Array(Vec::new())
        })
    }
}

impl Serialize for MessageViews {
    fn serialize<S: serde::Serializer>(
        &self,
        serializer: S,
    ) -> std::result::Result<S::Ok, S::Error> {
        use serde::ser::SerializeSeq;
        let page = &self.page;
        let mut seq = serializer.serialize_seq(Some(page.messages.len()))?;
        for (message, attachment) in page.messages.iter().zip(&page.attachments) {
            let id = message.record.user_id;
            let unknown;
            let author = match page.authors.get(&id) {
                Some(author) => author,
                None => {
                    unknown = UserBrief::unknown(id);
                    &unknown
                }
            };
            seq.serialize_element(
                &MessageView::new(&self.topic, message, author)
                    .with_attachment(attachment.as_ref())
                    .with_reactions(page.reactions.get(&message.seq)),
            )?;
        }
        seq.end()
    }
}

/// Which page of history to read.
#[derive(Clone, Copy, Debug, Default)]
pub struct Page {
    pub before: Option<u64>,
    pub after: Option<u64>,
    pub limit: Option<usize>,
}

/// A history page, ascending by seq: `(messages, has_more)`.
pub async fn history(
    state: &AppState,
    access: &Access,
    page: Page,
) -> Result<(MessageViews, bool)> {
    let query = HistoryQuery {
        before: page.before,
        after: page.after,
        limit: page.limit.unwrap_or(DEFAULT_PAGE).clamp(1, MAX_PAGE),
    };
    let mut page = state.store.history(access.topic_id, query).await?;
    let has_more = std::mem::take(&mut page.has_more);
    Ok((MessageViews::new(access.name.clone(), page), has_more))
}

/// A page of history centred on `seq`, ascending: `(messages,
/// has_more_before, has_more_after)`. Up to half the page (rounded down,
/// after `seq` itself) is older than `seq`; a short side gives its room to
/// the other.
pub async fn around(
    state: &AppState,
    access: &Access,
    seq: u64,
    limit: Option<usize>,
) -> Result<(MessageViews, bool, bool)> {
    let limit = limit.unwrap_or(DEFAULT_PAGE).clamp(1, MAX_PAGE);
    let around = state
        .store
        .history_around(access.topic_id, seq, limit)
        .await?;
    Ok((
        MessageViews::new(access.name.clone(), around.page),
        around.has_more_before,
        around.has_more_after,
    ))
}

/// The join reply of a topic with history (api.md §3); it serializes as
/// the join reply's response object.
#[derive(Serialize)]
pub struct Snapshot {
    pub epoch: String,
    /// The topic's last seq when the snapshot was read.
    pub last_seq: u64,
    pub messages: MessageViews,
    pub recovered: bool,
    pub truncated: bool,
}

/// Reads what a joining client gets: with `since` (and a matching or
/// absent epoch) every message after it, up to [`MAX_RECOVERY`]; otherwise
/// the newest `default_limit`.
pub async fn snapshot(
    state: &AppState,
    access: &Access,
    since: Option<u64>,
    epoch: Option<String>,
) -> Result<Snapshot> {
    let query = RecoveryQuery {
        since,
        epoch,
        default_limit: state.cfg.join_history_limit,
        max_recovery: MAX_RECOVERY,
    };
    let mut recovery = state.store.recovery(access.topic_id, query).await?;
    let truncated = std::mem::take(&mut recovery.page.has_more);
    Ok(Snapshot {
        epoch: recovery.epoch,
        last_seq: recovery.last_seq,
        messages: MessageViews::new(access.name.clone(), recovery.page),
        recovered: recovery.recovered,
        truncated,
    })
}

/// The `new_msg` broadcasts of `topic`'s messages after `after`, oldest
/// first, at most `limit`, and whether more follow: what a node of a
/// cluster delivers when the bus lost a message or was down (a message
/// deleted meanwhile arrives as it is now, without its body).
pub async fn broadcasts_after(
    store: &crate::store::Store,
    topic: &Arc<str>,
    topic_id: u64,
    after: u64,
    limit: usize,
) -> Result<(Vec<Arc<Broadcast>>, bool)> {
    let query = HistoryQuery {
        before: None,
        after: Some(after),
        limit,
    };
    let page = store.history(topic_id, query).await?;
    let broadcasts = page
        .messages
        .iter()
        .zip(&page.attachments)
        .map(|(message, attachment)| {
            let id = message.record.user_id;
            let author = page
                .authors
                .get(&id)
                .cloned()
                .unwrap_or_else(|| UserBrief::unknown(id));
            let view = MessageView::new(topic, message, &author)
                .with_attachment(attachment.as_ref())
                .with_reactions(page.reactions.get(&message.seq));
            let mut broadcast = Broadcast::new(topic.clone(), "new_msg", &view);
            broadcast.seq = Some(message.seq);
            broadcast.author = Some(id);
            broadcast.topic_id = Some(topic_id);
            Arc::new(broadcast)
        })
        .collect();
    Ok((broadcasts, page.has_more))
}
