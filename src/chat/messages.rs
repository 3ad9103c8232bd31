//! Message operations shared by socket events and REST: post (durable,
//! idempotent on `client_id`, broadcast after commit), edit, delete, read
//! positions, history pages (also centred on one message) and the recovery
//! snapshot of a join.
//!
//! Completions run on the writer thread right after the commit, in commit
//! order, so broadcasts of one topic leave in `seq` order.

use std::collections::HashMap;
use std::sync::Arc;

use redb::ReadTransaction;
use serde::Serialize;
use serde_json::{json, Value};

use super::mentions::{self, Request};
use super::notify;
use super::topic::Access;
use super::views::{MessageView, UserBrief};
use crate::error::{Error, Result};
use crate::hub::{Broadcast, Hub};
use crate::state::AppState;
use crate::store::mentions as stored_mentions;
use crate::store::messages::{self, Appended, Stored};
use crate::store::records::{AttachmentRecord, ReactionsRecord, UserRecord};
use crate::store::{attachments, deliveries, reactions, reads, topics, users};

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
    let (topic_id, topic) = (access.topic_id, access.name.clone());
    let user_id = author.id;
    let request = Request::new(&hub, &topic, user_id, &draft.body);
    let topic_name = topic.clone();
    // Outgoing webhooks: which bots may hear of this message, and the
    // dispatcher that sends the events once they are durable.
    let registry = state.bots.registry();
    let bots = state.bots.clone();
    let (author_is_bot, event_author) = (author.bot, brief.clone());
    state
        .store
        .writer()
        .submit(
            move |ctx| {
                let Draft {
                    body,
                    client_id,
                    attachment_id,
                } = draft;
                if let Some(existing) =
                    messages::existing(ctx, topic_id, user_id, client_id.as_deref())?
                {
                    let attachment = attachments::of_message_in(ctx, topic_id, existing.seq)?;
                    return Ok((
                        Appended::Duplicate(existing),
                        Vec::new(),
                        attachment,
                        Vec::new(),
                        Vec::new(),
                    ));
                }
                if let Some(id) = attachment_id {
                    attachments::check(ctx, id, topic_id, user_id)?;
                }
                let named = mentions::resolve(ctx, topic_id, &topic_name, request.as_ref())?;
                let stored = messages::append(ctx, topic_id, user_id, body, client_id, named)?;
                let attachment = match attachment_id {
                    Some(id) => Some(attachments::link(ctx, id, topic_id, stored.seq)?),
                    None => None,
                };
                // Posting implies having read the topic up to here.
                reads::advance(ctx, user_id, topic_id, stored.seq)?;
                stored_mentions::clear_read(ctx, user_id, topic_id, stored.seq)?;
                let mentioned = if stored.record.mentions.is_empty() {
                    Vec::new()
                } else {
                    mentions::record(
                        ctx,
                        topic_id,
                        stored.seq,
                        user_id,
                        &stored.record.mentions,
                        &[],
                    )?
                };
                let unread = reads::members_unread(ctx, topic_id, stored.seq, user_id)?;
                let candidates = crate::bots::candidates(
                    &registry,
                    &topic_name,
                    &event_author,
                    author_is_bot,
                    &stored.record.mentions,
                );
                let events = if candidates.is_empty() {
                    Vec::new()
                } else {
                    deliveries::enqueue_in(ctx, topic_id, &topic_name, &candidates, |id, _| {
                        crate::bots::event_body(
                            id,
                            &topic_name,
                            &stored,
                            &event_author,
                            attachment.as_ref(),
                        )
                    })?
                };
                let appended = Appended::New(stored);
                Ok((appended, unread, attachment, mentioned, events))
            },
            move |result| {
                // Broadcast, then ack, in commit order, off the writer thread.
                relay.run(move || {
                    let posted = result.map(|(appended, unread, attachment, mentioned, events)| {
                        let (stored, duplicate) = match appended {
                            Appended::New(stored) => (stored, false),
                            Appended::Duplicate(stored) => (stored, true),
                        };
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
                            hub.publish(Arc::new(broadcast));
                            for (member, count) in unread {
                                notify::unread(&hub, member, &topic, stored.seq, count);
                            }
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
            },
        )
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

/// What an edit or delete read back inside its batch.
type Changed = (
    Stored,
    UserBrief,
    Option<AttachmentRecord>,
    Vec<u64>,
    Option<ReactionsRecord>,
);

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
    let (editor_id, editor_admin) = (editor.id, editor.admin);
    let (topic_id, topic) = (access.topic_id, access.name.clone());
    let (tx, rx) = tokio::sync::oneshot::channel();
    let kind = change.clone();
    let request = match &change {
        Change::Edit(body) => Request::new(&hub, &topic, editor_id, body),
        Change::Delete => None,
    };
    let topic_name = topic.clone();
    state
        .store
        .writer()
        .submit(
            move |ctx| {
                let named = match change {
                    Change::Edit(_) => {
                        mentions::resolve(ctx, topic_id, &topic_name, request.as_ref())?
                    }
                    Change::Delete => Vec::new(),
                };
                let mut before = Vec::new();
                let stored = messages::update(ctx, topic_id, seq, |m| {
                    if m.user_id != editor_id && !editor_admin {
                        return Err(Error::Forbidden(
                            "only the author or an admin may do this".into(),
                        ));
                    }
                    if m.deleted {
                        return Err(Error::NotFound("message"));
                    }
                    match change {
                        Change::Edit(body) => {
                            m.body = body;
                            m.edited_at = Some(crate::clock::now_ms());
                        }
                        Change::Delete => {
                            m.body.clear();
                            m.deleted = true;
                        }
                    }
                    before = std::mem::replace(&mut m.mentions, named);
                    Ok(())
                })?;
                let after = &stored.record.mentions;
                let added: Vec<u64> = after
                    .iter()
                    .copied()
                    .filter(|u| !before.contains(u))
                    .collect();
                let removed: Vec<u64> = before
                    .iter()
                    .copied()
                    .filter(|u| !after.contains(u))
                    .collect();
                let mentioned =
                    mentions::record(ctx, topic_id, seq, stored.record.user_id, &added, &removed)?;
                if stored.record.deleted {
                    attachments::erase_of_message(ctx, topic_id, seq)?;
                    reactions::erase_of_message(ctx, topic_id, seq)?;
                }
                let attachment = attachments::of_message_in(ctx, topic_id, seq)?;
                let reactions = reactions::of_message_in(ctx, topic_id, seq)?;
                let author = users::get_in(ctx, stored.record.user_id)?
                    .map(|u| UserBrief::from(&u))
                    .unwrap_or_else(|| UserBrief::unknown(stored.record.user_id));
                Ok((stored, author, attachment, mentioned, reactions))
            },
            move |result: Result<Changed>| {
                relay.run(move || {
                    let out = result.map(|(stored, author, attachment, mentioned, reactions)| {
                        if let Some(search) = &search {
                            match kind {
                                Change::Edit(_) => search.edited(&stored),
                                Change::Delete => search.deleted(stored.record.id),
                            }
                        }
                        let view = MessageView::new(&topic, &stored, &author)
                            .with_attachment(attachment.as_ref())
                            .with_reactions(reactions.as_ref());
                        let broadcast = match kind {
                            Change::Edit(_) => Broadcast::new(topic.clone(), "msg_updated", &view),
                            Change::Delete => Broadcast::new(
                                topic.clone(),
                                "msg_deleted",
                                &json!({"seq": stored.seq}),
                            ),
                        };
                        // Ignoring a user hides their edits and deletions too.
                        let mut broadcast = broadcast;
                        broadcast.author = Some(stored.record.user_id);
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
            },
        )
        .await;
    rx.await
        .unwrap_or_else(|_| Err(Error::Unavailable("the store is closed".into())))
}

/// Moves the user's read position in a topic forward (never past the last
/// message), clearing the mentions up to it; returns it and tells the
/// user's personal topic the new counts.
pub async fn mark_read(state: &AppState, user_id: u64, access: &Access, seq: u64) -> Result<u64> {
    let topic_id = access.topic_id;
    let (position, last_seq, unread_mentions) = state
        .store
        .write(move |ctx| {
            let last_seq = messages::head(ctx, topic_id)?;
            let position = reads::advance(ctx, user_id, topic_id, seq.min(last_seq))?;
            stored_mentions::clear_read(ctx, user_id, topic_id, position)?;
            let unread_mentions = stored_mentions::unread_count_in(ctx, user_id, topic_id)?;
            Ok((position, last_seq, unread_mentions))
        })
        .await?;
    notify::unread_with_mentions(
        &state.hub,
        user_id,
        &access.name,
        last_seq,
        last_seq.saturating_sub(position),
        unread_mentions,
    );
    Ok(position)
}

/// Resolves authors while building message views in one read transaction.
struct Authors<'t> {
    tx: &'t ReadTransaction,
    known: HashMap<u64, UserBrief>,
}

impl<'t> Authors<'t> {
    fn new(tx: &'t ReadTransaction) -> Self {
        Authors {
            tx,
            known: HashMap::new(),
        }
    }

    /// Everything the views of `stored` need, read in this transaction.
    fn views(mut self, topic: Arc<str>, stored: Vec<Stored>) -> Result<MessageViews> {
        let mut attachments = Vec::with_capacity(stored.len());
        for message in &stored {
            let id = message.record.user_id;
            if !self.known.contains_key(&id) {
                let brief = users::get(self.tx, id)?
                    .map(|u| UserBrief::from(&u))
                    .unwrap_or_else(|| UserBrief::unknown(id));
                self.known.insert(id, brief);
            }
            attachments.push(attachments::of_message(
                self.tx,
                message.topic_id,
                message.seq,
            )?);
        }
        // One range read over the page's seqs (the page is ascending).
        let reactions = match (stored.first(), stored.last()) {
            (Some(first), Some(last)) => {
                reactions::of_range(self.tx, first.topic_id, first.seq, last.seq)?
            }
            _ => HashMap::new(),
        };
        Ok(MessageViews {
            topic,
            stored,
            authors: self.known,
            attachments,
            reactions,
        })
    }
}

/// Messages read for a reply, turned into views (`message` objects) only
/// while the reply is serialized: a burst of rejoins each recovering
/// hundreds of messages holds records, not a JSON tree per message, and
/// the JSON is written where it is sent.
pub struct MessageViews {
    topic: Arc<str>,
    stored: Vec<Stored>,
    authors: HashMap<u64, UserBrief>,
    attachments: Vec<Option<AttachmentRecord>>,
    /// seq → reactions, for the messages that have any.
    reactions: HashMap<u64, ReactionsRecord>,
}

impl MessageViews {
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
        let mut seq = serializer.serialize_seq(Some(self.stored.len()))?;
        for (message, attachment) in self.stored.iter().zip(&self.attachments) {
            let id = message.record.user_id;
            let unknown;
            let author = match self.authors.get(&id) {
                Some(author) => author,
                None => {
                    unknown = UserBrief::unknown(id);
                    &unknown
                }
            };
            seq.serialize_element(
                &MessageView::new(&self.topic, message, author)
                    .with_attachment(attachment.as_ref())
                    .with_reactions(self.reactions.get(&message.seq)),
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
    let (topic_id, topic) = (access.topic_id, access.name.clone());
    let limit = page.limit.unwrap_or(DEFAULT_PAGE).clamp(1, MAX_PAGE);
    state
        .store
        .read(move |tx| {
            let (stored, has_more) = match page.after {
                Some(after) => messages::oldest_after(tx, topic_id, after, limit)?,
                None => messages::newest_before(tx, topic_id, page.before, limit)?,
            };
            Ok((Authors::new(tx).views(topic, stored)?, has_more))
        })
        .await
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
    let (topic_id, topic) = (access.topic_id, access.name.clone());
    let limit = limit.unwrap_or(DEFAULT_PAGE).clamp(1, MAX_PAGE);
    state
        .store
        .read(move |tx| {
            let (mut older, older_more) = messages::newest_before(tx, topic_id, Some(seq), limit)?;
            let (mut newer, newer_more) =
                messages::oldest_after(tx, topic_id, seq.saturating_sub(1), limit)?;
            let half = (limit - 1) / 2;
            let take_after = newer.len().min(limit - older.len().min(half));
            let take_before = older.len().min(limit - take_after);
            let has_more_before = older_more || older.len() > take_before;
            let has_more_after = newer_more || newer.len() > take_after;
            newer.truncate(take_after);
            let mut stored = older.split_off(older.len() - take_before);
            stored.append(&mut newer);
            let views = Authors::new(tx).views(topic, stored)?;
            Ok((views, has_more_before, has_more_after))
        })
        .await
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
    let (topic_id, topic) = (access.topic_id, access.name.clone());
    let default_limit = state.cfg.join_history_limit;
    state
        .store
        .read(move |tx| {
            let record = topics::get(tx, topic_id)?
                .ok_or_else(|| Error::Store(format!("topic {topic_id} has no record")))?;
            let last_seq = messages::last_seq(tx, topic_id)?;
            let epoch_matches = epoch.as_deref().is_none_or(|e| e == record.epoch);
            let (stored, recovered, truncated) = match since {
                Some(since) if epoch_matches => {
                    let (stored, more) = messages::oldest_after(tx, topic_id, since, MAX_RECOVERY)?;
                    (stored, true, more)
                }
                _ => {
                    let (stored, _) = messages::newest_before(tx, topic_id, None, default_limit)?;
                    (stored, false, false)
                }
            };
            let messages = Authors::new(tx).views(topic, stored)?;
            Ok(Snapshot {
                epoch: record.epoch,
                last_seq,
                messages,
                recovered,
                truncated,
            })
        })
        .await
}
