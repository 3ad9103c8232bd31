//! The store's operations ([`Backend`]) on the embedded store: each read
//! in one short read transaction on the blocking pool, each write as one
//! operation of the writer's next batch.

use std::collections::hash_map::Entry;
use std::collections::{BTreeSet, HashMap, HashSet};
use std::future::Future;
use std::io::Write;

use redb::ReadTransaction;

use super::{
    attachments, conversations, export, ignores, mentions, messages, meta, posting, reads, rooms,
    tables, tokens, topics, users, EmbeddedStore,
};
use crate::error::Result;
use crate::store::ops::{
    AroundPage, LinkState, NewBot, NewHook, QueueStatus, ReactRequest, Redeemed, Toggled,
};
use crate::store::ops::{
    ChangeOutcome, ChangeRequest, ConversationSummary, HistoryQuery, MessageLookup, MessagePage,
    NewRoom, NewUser, PostOutcome, PostRequest, ProfileChange, Recovery, RecoveryQuery,
    RoomSummary, SearchScope, TopicCounts,
};
use crate::store::records::{
    AttachmentRecord, Author, ConversationRecord, RoomRecord, Stored, TopicRecord, UserRecord,
};
use crate::store::records::{
    BotRecord, DeliveryRecord, HookRecord, MailRecord, PasswordLinkRecord,
};
use crate::store::records::{DeliveryAttemptRecord, RateLimit};
use crate::store::Backend;

/// A user's counts in a topic, read in `tx`.
fn counts(tx: &ReadTransaction, user_id: u64, topic_id: u64) -> Result<TopicCounts> {
    Ok(TopicCounts {
        last_seq: messages::last_seq(tx, topic_id)?,
        read: reads::get(tx, user_id, topic_id)?,
        unread_mentions: mentions::unread_count(tx, user_id, topic_id)?,
    })
}

impl Backend for EmbeddedStore {
    fn location(&self) -> String {
        self.path().display().to_string()
    }

    async fn ready(&self) -> bool {
        self.read(|tx| {
            tx.open_table(tables::META)?;
            Ok(())
        })
        .await
        .is_ok()
    }

    async fn schema_version(&self) -> Result<u32> {
        self.read(meta::schema_version).await
    }

    async fn jwt_secret(&self) -> Result<Vec<u8>> {
        if let Some(secret) = self.read(meta::jwt_secret).await? {
            return Ok(secret);
        }
        self.write(meta::ensure_jwt_secret).await
    }

    async fn export_into<W>(&self, mut out: W) -> Result<W>
    where
        W: Write + Send + 'static,
    {
        self.read(move |tx| {
            export::export(tx, &mut out)?;
            Ok(out)
        })
        .await
    }

    fn close(self) {
        self.stop();
    }

    async fn create_user(&self, new: NewUser) -> Result<UserRecord> {
        self.write(move |ctx| users::create(ctx, new)).await
    }

    async fn user(&self, id: u64) -> Result<Option<UserRecord>> {
        self.read(move |tx| users::get(tx, id)).await
    }

    async fn user_by_username(&self, username: &str) -> Result<Option<UserRecord>> {
        let username = username.to_string();
        self.read(move |tx| users::get_by_username(tx, &username))
            .await
    }

    async fn users(&self) -> Result<Vec<UserRecord>> {
        self.read(users::all).await
    }

    async fn update_profile(&self, id: u64, change: ProfileChange) -> Result<UserRecord> {
        self.write(move |ctx| {
            users::update(ctx, id, |user| {
                if let Some(name) = change.display_name {
                    user.display_name = name.trim().to_string();
                }
                if let Some(email) = change.email {
                    user.email = Some(email).filter(|e| !e.is_empty());
                }
            })
        })
        .await
    }

    async fn set_password_hash(&self, id: u64, password_hash: String) -> Result<UserRecord> {
        self.write(move |ctx| {
            users::update(ctx, id, |user| {
                user.password_hash = password_hash;
                user.token_version = user.token_version.wrapping_add(1);
            })
        })
        .await
    }

    async fn set_disabled(&self, id: u64, disabled: bool) -> Result<UserRecord> {
        self.write(move |ctx| users::update(ctx, id, |user| user.disabled = disabled))
            .await
    }

    async fn revoke_token(&self, jti: &str, expires_at: u64) -> Result<()> {
        let jti = jti.to_string();
        self.write(move |ctx| tokens::revoke(ctx, &jti, expires_at))
            .await
    }

    async fn is_token_revoked(&self, jti: &str) -> Result<bool> {
        let jti = jti.to_string();
        self.read(move |tx| tokens::is_revoked(tx, &jti)).await
    }

    async fn purge_expired_revocations(&self, now: u64) -> Result<usize> {
        self.write(move |ctx| tokens::purge_expired(ctx, now)).await
    }

    async fn create_room(&self, new: NewRoom) -> Result<RoomRecord> {
        self.write(move |ctx| rooms::insert(ctx.tx(), new)).await
    }

    async fn room(&self, name: &str) -> Result<Option<RoomRecord>> {
        let name = name.to_string();
        self.read(move |tx| rooms::get(tx, &name)).await
    }

    async fn rooms(&self) -> Result<Vec<RoomRecord>> {
        self.read(rooms::all).await
    }

    async fn room_access(&self, name: &str, user_id: u64) -> Result<Option<(RoomRecord, bool)>> {
        let name = name.to_string();
        self.read(move |tx| {
            let Some(room) = rooms::get(tx, &name)? else {
                return Ok(None);
            };
            let allowed = !room.private || topics::is_member(tx, room.topic_id, user_id)?;
            Ok(Some((room, allowed)))
        })
        .await
    }

    async fn room_list(&self, user_id: u64) -> Result<Vec<RoomSummary>> {
        self.read(move |tx| {
            let mine = topics::of_user(tx, user_id)?;
            let mut out = Vec::new();
            for room in rooms::all(tx)? {
                if room.private && !mine.contains(&room.topic_id) {
                    continue;
                }
                let owner = users::get(tx, room.owner)?.map(|u| u.username);
                let counts = counts(tx, user_id, room.topic_id)?;
                out.push(RoomSummary {
                    room,
                    owner,
                    counts,
                });
            }
            Ok(out)
        })
        .await
    }

    async fn add_member(&self, topic_id: u64, user_id: u64) -> Result<bool> {
        self.write(move |ctx| topics::add_member(ctx.tx(), topic_id, user_id))
            .await
    }

    async fn remove_member(&self, topic_id: u64, user_id: u64) -> Result<bool> {
        self.write(move |ctx| topics::remove_member(ctx.tx(), topic_id, user_id))
            .await
    }

    async fn topic(&self, topic_id: u64) -> Result<Option<TopicRecord>> {
        self.read(move |tx| topics::get(tx, topic_id)).await
    }

    async fn last_seq(&self, topic_id: u64) -> Result<u64> {
        self.read(move |tx| messages::last_seq(tx, topic_id)).await
    }

    async fn topic_counts(&self, user_id: u64, topic_id: u64) -> Result<TopicCounts> {
        self.read(move |tx| counts(tx, user_id, topic_id)).await
    }

    async fn open_conversation(&self, a: u64, b: u64) -> Result<(ConversationRecord, bool)> {
        self.write(move |ctx| conversations::open(ctx, a, b)).await
    }

    async fn conversation(&self, id: u64) -> Result<Option<ConversationRecord>> {
        self.read(move |tx| conversations::get(tx, id)).await
    }

    async fn conversation_list(&self, user_id: u64) -> Result<Vec<ConversationSummary>> {
        self.read(move |tx| {
            let mut out = Vec::new();
            for conversation in conversations::of_user(tx, user_id)? {
                let Some(with) = users::get(tx, conversation.other(user_id))? else {
                    continue;
                };
                let counts = counts(tx, user_id, conversation.topic_id)?;
                out.push(ConversationSummary {
                    conversation,
                    with,
                    counts,
                });
            }
            Ok(out)
        })
        .await
    }

    async fn ignores(&self, user_id: u64) -> Result<HashSet<u64>> {
        self.read(move |tx| ignores::of_user(tx, user_id)).await
    }

    async fn set_ignore(&self, user_id: u64, other: u64, ignore: bool) -> Result<HashSet<u64>> {
        self.write(move |ctx| ignores::set(ctx, user_id, other, ignore))
            .await
    }

    async fn add_attachment(
        &self,
        topic_id: u64,
        user_id: u64,
        content_type: &'static str,
        bytes: Vec<u8>,
    ) -> Result<AttachmentRecord> {
        self.write(move |ctx| attachments::add(ctx, topic_id, user_id, content_type, &bytes))
            .await
    }

    async fn attachment(&self, id: u64) -> Result<Option<(AttachmentRecord, Vec<u8>)>> {
        self.read(move |tx| attachments::with_bytes(tx, id)).await
    }

    fn post_message<D>(&self, request: PostRequest, done: D) -> impl Future<Output = ()> + Send
    where
        D: FnOnce(Result<PostOutcome>) + Send + 'static,
    {
        self.writer()
            .submit(move |ctx| posting::post(ctx, request), done)
    }

    fn change_message<D>(&self, request: ChangeRequest, done: D) -> impl Future<Output = ()> + Send
    where
        D: FnOnce(Result<ChangeOutcome>) + Send + 'static,
    {
        self.writer()
            .submit(move |ctx| posting::change(ctx, request), done)
    }

    async fn mark_read(&self, user_id: u64, topic_id: u64, seq: u64) -> Result<TopicCounts> {
        self.write(move |ctx| posting::mark_read(ctx, user_id, topic_id, seq))
            .await
    }

    async fn history(&self, topic_id: u64, query: HistoryQuery) -> Result<MessagePage> {
        self.read(move |tx| posting::history(tx, topic_id, query))
            .await
    }

    async fn recovery(&self, topic_id: u64, query: RecoveryQuery) -> Result<Recovery> {
        self.read(move |tx| posting::recovery(tx, topic_id, query))
            .await
    }

    async fn user_by_email(&self, email: &str) -> Result<Option<UserRecord>> {
        let email = email.to_string();
        self.read(move |tx| users::get_by_email(tx, &email)).await
    }

    async fn create_bot(&self, new: NewBot) -> Result<(UserRecord, BotRecord)> {
        EmbeddedStore::create_bot(self, new).await
    }

    async fn bots(&self) -> Result<Vec<(UserRecord, BotRecord)>> {
        EmbeddedStore::bots(self).await
    }

    async fn bot(&self, user_id: u64) -> Result<Option<BotRecord>> {
        EmbeddedStore::bot(self, user_id).await
    }

    async fn bot_by_key_hash(&self, key_hash: Vec<u8>) -> Result<Option<UserRecord>> {
        EmbeddedStore::bot_by_key_hash(self, key_hash).await
    }

    async fn rotate_bot_key(
        &self,
        user_id: u64,
        key_hash: Vec<u8>,
        signing_secret: String,
    ) -> Result<BotRecord> {
        EmbeddedStore::rotate_bot_key(self, user_id, key_hash, signing_secret).await
    }

    async fn update_bot_webhook(
        &self,
        user_id: u64,
        webhook_url: Option<String>,
        all_messages: bool,
    ) -> Result<BotRecord> {
        EmbeddedStore::update_bot_webhook(self, user_id, webhook_url, all_messages).await
    }

    async fn delete_bot(&self, user_id: u64) -> Result<()> {
        EmbeddedStore::delete_bot(self, user_id).await
    }

    async fn create_hook(&self, new: NewHook) -> Result<HookRecord> {
        EmbeddedStore::create_hook(self, new).await
    }

    async fn hooks_of_topic(&self, topic_id: u64) -> Result<Vec<HookRecord>> {
        EmbeddedStore::hooks_of_topic(self, topic_id).await
    }

    async fn hook_by_token_hash(&self, token_hash: Vec<u8>) -> Result<Option<HookRecord>> {
        EmbeddedStore::hook_by_token_hash(self, token_hash).await
    }

    async fn delete_hook(&self, topic_id: u64, id: u64) -> Result<()> {
        EmbeddedStore::delete_hook(self, topic_id, id).await
    }

    async fn pending_deliveries(&self) -> Result<Vec<DeliveryRecord>> {
        EmbeddedStore::pending_deliveries(self).await
    }

    async fn finish_delivery(&self, event_id: u64) -> Result<()> {
        EmbeddedStore::finish_delivery(self, event_id).await
    }

    async fn issue_password_link(
        &self,
        hash: [u8; 32],
        link: PasswordLinkRecord,
        mail: MailRecord,
    ) -> Result<u64> {
        EmbeddedStore::issue_password_link(self, hash, link, mail).await
    }

    async fn password_link_state(&self, hash: [u8; 32], now_ms: i64) -> Result<LinkState> {
        EmbeddedStore::password_link_state(self, hash, now_ms).await
    }

    async fn redeem_password_link(
        &self,
        hash: [u8; 32],
        password_hash: String,
        now_ms: i64,
    ) -> Result<Redeemed> {
        EmbeddedStore::redeem_password_link(self, hash, password_hash, now_ms).await
    }

    async fn purge_expired_password_links(&self, now_ms: i64) -> Result<usize> {
        EmbeddedStore::purge_expired_password_links(self, now_ms).await
    }

    async fn enqueue_mail(&self, mail: MailRecord) -> Result<u64> {
        EmbeddedStore::enqueue_mail(self, mail).await
    }

    async fn due_mail(&self, now_ms: i64, limit: usize) -> Result<Vec<(u64, MailRecord)>> {
        EmbeddedStore::due_mail(self, now_ms, limit).await
    }

    async fn remove_mail(&self, id: u64) -> Result<()> {
        EmbeddedStore::remove_mail(self, id).await
    }

    async fn mail_attempt_failed(
        &self,
        id: u64,
        attempts: u32,
        next_attempt_at: i64,
    ) -> Result<()> {
        EmbeddedStore::mail_attempt_failed(self, id, attempts, next_attempt_at).await
    }

    async fn mail_queue_status(&self) -> Result<QueueStatus> {
        EmbeddedStore::mail_queue_status(self).await
    }

    fn react<D>(&self, request: ReactRequest, done: D) -> impl Future<Output = ()> + Send
    where
        D: FnOnce(Result<Toggled>) + Send + 'static,
    {
        self.writer()
            .submit(move |ctx| posting::react(ctx, request), done)
    }

    async fn history_around(&self, topic_id: u64, seq: u64, limit: usize) -> Result<AroundPage> {
        self.read(move |tx| posting::around(tx, topic_id, seq, limit))
            .await
    }

    fn topic_ids_blocking(&self) -> Result<Vec<u64>> {
        self.read_now(topics::all_ids)
    }

    fn messages_after_blocking(
        &self,
        topic_id: u64,
        after: u64,
        limit: usize,
    ) -> Result<(Vec<Stored>, bool)> {
        self.read_now(|tx| messages::oldest_after(tx, topic_id, after, limit))
    }

    fn search_scope_blocking(&self, user_id: u64, from: &[String]) -> Result<SearchScope> {
        self.read_now(|tx| {
            let member_of: BTreeSet<u64> = topics::of_user(tx, user_id)?.into_iter().collect();
            let mut readable = member_of.clone();
            let mut rooms_by_name = HashMap::new();
            for room in rooms::all(tx)? {
                if !room.private || member_of.contains(&room.topic_id) {
                    readable.insert(room.topic_id);
                    rooms_by_name.insert(room.name, room.topic_id);
                }
            }
            for conversation in conversations::of_user(tx, user_id)? {
                readable.insert(conversation.topic_id);
            }
            let mut found = Vec::new();
            for name in from {
                if let Some(user) = users::get_by_username(tx, name)? {
                    found.push(user.id);
                }
            }
            Ok(SearchScope {
                readable,
                rooms: rooms_by_name,
                from: found,
                ignored: ignores::of_user(tx, user_id)?,
            })
        })
    }

    fn lookup_messages_blocking(&self, keys: &[(u64, u64)]) -> Result<MessageLookup> {
        self.read_now(|tx| {
            let mut out = MessageLookup {
                messages: Vec::with_capacity(keys.len()),
                attachments: Vec::with_capacity(keys.len()),
                ..MessageLookup::default()
            };
            for &(topic_id, seq) in keys {
                let stored = messages::get(tx, topic_id, seq)?;
                let mut attachment = None;
                if let Some(stored) = stored.as_ref().filter(|s| !s.record.deleted) {
                    if let Entry::Vacant(slot) = out.topic_names.entry(topic_id) {
                        let name = topics::get(tx, topic_id)?.map(|t| t.name);
                        slot.insert(name.unwrap_or_default());
                    }
                    let author = stored.record.user_id;
                    if let Entry::Vacant(slot) = out.authors.entry(author) {
                        let brief = users::get(tx, author)?
                            .map(|u| Author::from(&u))
                            .unwrap_or_else(|| Author::unknown(author));
                        slot.insert(brief);
                    }
                    attachment = attachments::of_message(tx, topic_id, seq)?;
                }
                out.messages.push(stored);
                out.attachments.push(attachment);
            }
            Ok(out)
        })
    }

    async fn bot_rate_limits(&self) -> Result<Vec<(u64, RateLimit)>> {
        EmbeddedStore::bot_rate_limits(self).await
    }

    async fn set_bot_rate_limit(&self, user_id: u64, limit: Option<RateLimit>) -> Result<()> {
        EmbeddedStore::set_bot_rate_limit(self, user_id, limit).await
    }

    async fn log_delivery_attempt(
        &self,
        bot_id: u64,
        attempt: DeliveryAttemptRecord,
        keep: usize,
    ) -> Result<()> {
        EmbeddedStore::log_delivery_attempt(self, bot_id, attempt, keep).await
    }

    async fn delivery_log(&self, bot_id: u64) -> Result<Vec<DeliveryAttemptRecord>> {
        EmbeddedStore::delivery_log(self, bot_id).await
    }
}
