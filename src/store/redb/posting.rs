//! The message operations as they run in the embedded store: a post, an
//! edit or delete, and a read mark each inside one write batch; history
//! pages and the recovery of a join inside one read transaction.

use std::collections::hash_map::Entry;
use std::collections::HashMap;

use redb::ReadTransaction;

use super::{
    attachments, deliveries, mentions, messages, reactions, reads, topics, users, WriteCtx,
};
use crate::error::{Error, Result};
use crate::store::ops::{
    AroundPage, ChangeOutcome, ChangeRequest, HistoryQuery, MessageChange, MessagePage,
    PostOutcome, PostRequest, ReactRequest, Recovery, RecoveryQuery, Toggled, TopicCounts,
};
use crate::store::records::{Author, Stored};

/// Stores a post: the existing message for a used `client_id`, else the
/// attachment check, mentions, the new seq, the link, the author's read
/// position and the members' unread counts.
pub fn post(ctx: &mut WriteCtx<'_>, request: PostRequest) -> Result<PostOutcome> {
    let PostRequest {
        topic_id,
        topic,
        user_id,
        body,
        client_id,
        attachment_id,
        mentions: query,
        bots,
    } = request;
    if let Some(existing) = messages::existing(ctx, topic_id, user_id, client_id.as_deref())? {
        let attachment = attachments::of_message_in(ctx, topic_id, existing.seq)?;
        return Ok(PostOutcome {
            stored: existing,
            duplicate: true,
            unread: Vec::new(),
            attachment,
            mentioned: Vec::new(),
            events: Vec::new(),
        });
    }
    if let Some(id) = attachment_id {
        attachments::check(ctx, id, topic_id, user_id)?;
    }
    let named = mentions::resolve_query(ctx, topic_id, &topic, query.as_ref())?;
    let stored = messages::append(ctx, topic_id, user_id, body, client_id, named)?;
    let attachment = match attachment_id {
        Some(id) => Some(attachments::link(ctx, id, topic_id, stored.seq)?),
        None => None,
    };
    // Posting implies having read the topic up to here.
    reads::advance(ctx, user_id, topic_id, stored.seq)?;
    mentions::clear_read(ctx, user_id, topic_id, stored.seq)?;
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
    let events = match &bots {
        Some(audience) => {
            deliveries::enqueue_in(ctx, &topic, &stored, attachment.as_ref(), audience)?
        }
        None => Vec::new(),
    };
    Ok(PostOutcome {
        stored,
        duplicate: false,
        unread,
        attachment,
        mentioned,
        events,
    })
}

/// Edits or deletes a message (author or admin only), resolving mentions
/// again and moving the unread marks.
pub fn change(ctx: &mut WriteCtx<'_>, request: ChangeRequest) -> Result<ChangeOutcome> {
    let ChangeRequest {
        topic_id,
        topic,
        seq,
        editor_id,
        editor_admin,
        change,
        mentions: query,
    } = request;
    let named = match change {
        MessageChange::Edit(_) => mentions::resolve_query(ctx, topic_id, &topic, query.as_ref())?,
        MessageChange::Delete => Vec::new(),
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
            MessageChange::Edit(body) => {
                m.body = body;
                m.edited_at = Some(crate::clock::now_ms());
            }
            MessageChange::Delete => {
                m.body.clear();
                m.deleted = true;
            }
        }
        before = std::mem::replace(&mut m.mentions, named);
        Ok(())
    })?;
    let (added, removed) = crate::store::ops::mention_changes(&before, &stored.record.mentions);
    let mentioned = mentions::record(ctx, topic_id, seq, stored.record.user_id, &added, &removed)?;
    if stored.record.deleted {
        attachments::erase_of_message(ctx, topic_id, seq)?;
        reactions::erase_of_message(ctx, topic_id, seq)?;
    }
    let attachment = attachments::of_message_in(ctx, topic_id, seq)?;
    let reactions = reactions::of_message_in(ctx, topic_id, seq)?;
    let author = users::get_in(ctx, stored.record.user_id)?
        .map(|u| Author::from(&u))
        .unwrap_or_else(|| Author::unknown(stored.record.user_id));
    Ok(ChangeOutcome {
        stored,
        author,
        attachment,
        mentioned,
        reactions,
    })
}

/// Toggles a user's emoji on a message.
pub fn react(ctx: &mut WriteCtx<'_>, request: ReactRequest) -> Result<Toggled> {
    let ReactRequest {
        topic_id,
        seq,
        emoji,
        user_id,
    } = request;
    reactions::toggle(ctx, topic_id, seq, &emoji, user_id)
}

/// Moves the read position forward (never past the last message) and
/// clears the mentions up to it.
pub fn mark_read(
    ctx: &mut WriteCtx<'_>,
    user_id: u64,
    topic_id: u64,
    seq: u64,
) -> Result<TopicCounts> {
    let last_seq = messages::head(ctx, topic_id)?;
    let read = reads::advance(ctx, user_id, topic_id, seq.min(last_seq))?;
    mentions::clear_read(ctx, user_id, topic_id, read)?;
    let unread_mentions = mentions::unread_count_in(ctx, user_id, topic_id)?;
    Ok(TopicCounts {
        last_seq,
        read,
        unread_mentions,
    })
}

/// The authors and attachments of `stored`, read in `tx`.
fn page(tx: &ReadTransaction, messages: Vec<Stored>, has_more: bool) -> Result<MessagePage> {
    let mut authors = HashMap::new();
    let mut attachments = Vec::with_capacity(messages.len());
    for message in &messages {
        let id = message.record.user_id;
        if let Entry::Vacant(slot) = authors.entry(id) {
            let author = users::get(tx, id)?
                .map(|u| Author::from(&u))
                .unwrap_or_else(|| Author::unknown(id));
            slot.insert(author);
        }
        attachments.push(attachments::of_message(tx, message.topic_id, message.seq)?);
    }
    // One range read over the page's seqs (the page is ascending).
    let reactions = match (messages.first(), messages.last()) {
        (Some(first), Some(last)) => reactions::of_range(tx, first.topic_id, first.seq, last.seq)?,
        _ => HashMap::new(),
    };
    Ok(MessagePage {
        messages,
        authors,
        attachments,
        reactions,
        has_more,
    })
}

/// A page of history.
pub fn history(tx: &ReadTransaction, topic_id: u64, query: HistoryQuery) -> Result<MessagePage> {
    let (stored, has_more) = match query.after {
        Some(after) => messages::oldest_after(tx, topic_id, after, query.limit)?,
        None => messages::newest_before(tx, topic_id, query.before, query.limit)?,
    };
    page(tx, stored, has_more)
}

/// A page of history centred on `seq`, ascending. Up to half the page
/// (rounded down, after `seq` itself) is older than `seq`; a short side
/// gives its room to the other.
pub fn around(tx: &ReadTransaction, topic_id: u64, seq: u64, limit: usize) -> Result<AroundPage> {
    let limit = limit.max(1);
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
    Ok(AroundPage {
        page: page(tx, stored, false)?,
        has_more_before,
        has_more_after,
    })
}

/// The history part of a join reply.
pub fn recovery(tx: &ReadTransaction, topic_id: u64, query: RecoveryQuery) -> Result<Recovery> {
    let record = topics::get(tx, topic_id)?
        .ok_or_else(|| Error::Store(format!("topic {topic_id} has no record")))?;
    let last_seq = messages::last_seq(tx, topic_id)?;
    let epoch_matches = query.epoch.as_deref().is_none_or(|e| e == record.epoch);
    let (stored, recovered, truncated) = match query.since {
        Some(since) if epoch_matches => {
            let (stored, more) = messages::oldest_after(tx, topic_id, since, query.max_recovery)?;
            (stored, true, more)
        }
        _ => {
            let (stored, _) = messages::newest_before(tx, topic_id, None, query.default_limit)?;
            (stored, false, false)
        }
    };
    Ok(Recovery {
        epoch: record.epoch,
        last_seq,
        page: page(tx, stored, truncated)?,
        recovered,
    })
}
