//! The store's operations ([`Backend`]) on PostgreSQL: each one handed to
//! the module that owns its tables.

use std::collections::HashSet;
use std::future::Future;
use std::io::Write;

use super::{
    attachments, bots, conversations, export, history, mail, meta, posting, rooms, search_reads,
    tokens, users, PgStore,
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
    AttachmentRecord, ConversationRecord, RoomRecord, Stored, TopicRecord, UserRecord,
};
use crate::store::records::{
    BotRecord, DeliveryRecord, HookRecord, MailRecord, PasswordLinkRecord,
};
use crate::store::Backend;

impl Backend for PgStore {
    fn location(&self) -> String {
        PgStore::location(self).to_owned()
    }

    async fn ready(&self) -> bool {
        meta::ready(self).await
    }

    async fn schema_version(&self) -> Result<u32> {
        meta::schema_version(self).await
    }

    async fn jwt_secret(&self) -> Result<Vec<u8>> {
        meta::jwt_secret(self).await
    }

    fn export_into<W>(&self, out: W) -> impl Future<Output = Result<W>> + Send
    where
        W: Write + Send + 'static,
    {
        export::export_into(self.clone(), out)
    }

    fn close(self) {
        self.writer().stop();
    }

    async fn create_user(&self, new: NewUser) -> Result<UserRecord> {
        users::create(self, new).await
    }

    async fn user(&self, id: u64) -> Result<Option<UserRecord>> {
        users::get(self, id).await
    }

    async fn user_by_username(&self, username: &str) -> Result<Option<UserRecord>> {
        users::by_username(self, username).await
    }

    async fn users(&self) -> Result<Vec<UserRecord>> {
        users::all(self).await
    }

    async fn update_profile(&self, id: u64, change: ProfileChange) -> Result<UserRecord> {
        users::update_profile(self, id, change).await
    }

    async fn set_password_hash(&self, id: u64, password_hash: String) -> Result<UserRecord> {
        users::set_password_hash(self, id, password_hash).await
    }

    async fn set_disabled(&self, id: u64, disabled: bool) -> Result<UserRecord> {
        users::set_disabled(self, id, disabled).await
    }

    async fn revoke_token(&self, jti: &str, expires_at: u64) -> Result<()> {
        tokens::revoke(self, jti, expires_at).await
    }

    async fn is_token_revoked(&self, jti: &str) -> Result<bool> {
        tokens::is_revoked(self, jti).await
    }

    async fn purge_expired_revocations(&self, now: u64) -> Result<usize> {
        tokens::purge_expired(self, now).await
    }

    async fn create_room(&self, new: NewRoom) -> Result<RoomRecord> {
        rooms::create(self, new).await
    }

    async fn room(&self, name: &str) -> Result<Option<RoomRecord>> {
        rooms::get(self, name).await
    }

    async fn rooms(&self) -> Result<Vec<RoomRecord>> {
        rooms::all(self).await
    }

    async fn room_access(&self, name: &str, user_id: u64) -> Result<Option<(RoomRecord, bool)>> {
        rooms::access(self, name, user_id).await
    }

    async fn room_list(&self, user_id: u64) -> Result<Vec<RoomSummary>> {
        rooms::list(self, user_id).await
    }

    async fn add_member(&self, topic_id: u64, user_id: u64) -> Result<bool> {
        rooms::add_member(self, topic_id, user_id).await
    }

    async fn remove_member(&self, topic_id: u64, user_id: u64) -> Result<bool> {
        rooms::remove_member(self, topic_id, user_id).await
    }

    async fn topic(&self, topic_id: u64) -> Result<Option<TopicRecord>> {
        rooms::topic(self, topic_id).await
    }

    async fn last_seq(&self, topic_id: u64) -> Result<u64> {
        rooms::last_seq(self, topic_id).await
    }

    async fn topic_counts(&self, user_id: u64, topic_id: u64) -> Result<TopicCounts> {
        rooms::counts(self, user_id, topic_id).await
    }

    async fn open_conversation(&self, a: u64, b: u64) -> Result<(ConversationRecord, bool)> {
        conversations::open(self, a, b).await
    }

    async fn conversation(&self, id: u64) -> Result<Option<ConversationRecord>> {
        conversations::get(self, id).await
    }

    async fn conversation_list(&self, user_id: u64) -> Result<Vec<ConversationSummary>> {
        conversations::list(self, user_id).await
    }

    async fn ignores(&self, user_id: u64) -> Result<HashSet<u64>> {
        conversations::ignores(self, user_id).await
    }

    async fn set_ignore(&self, user_id: u64, other: u64, ignore: bool) -> Result<HashSet<u64>> {
        conversations::set_ignore(self, user_id, other, ignore).await
    }

    async fn add_attachment(
        &self,
        topic_id: u64,
        user_id: u64,
        content_type: &'static str,
        bytes: Vec<u8>,
    ) -> Result<AttachmentRecord> {
        attachments::add(self, topic_id, user_id, content_type, bytes).await
    }

    async fn attachment(&self, id: u64) -> Result<Option<(AttachmentRecord, Vec<u8>)>> {
        attachments::get(self, id).await
    }

    fn post_message<D>(&self, request: PostRequest, done: D) -> impl Future<Output = ()> + Send
    where
        D: FnOnce(Result<PostOutcome>) + Send + 'static,
    {
        self.writer().post(request, done)
    }

    fn change_message<D>(&self, request: ChangeRequest, done: D) -> impl Future<Output = ()> + Send
    where
        D: FnOnce(Result<ChangeOutcome>) + Send + 'static,
    {
        self.writer().change(request, done)
    }

    async fn mark_read(&self, user_id: u64, topic_id: u64, seq: u64) -> Result<TopicCounts> {
        posting::mark_read(self, user_id, topic_id, seq).await
    }

    async fn history(&self, topic_id: u64, query: HistoryQuery) -> Result<MessagePage> {
        history::history(self, topic_id, query).await
    }

    async fn recovery(&self, topic_id: u64, query: RecoveryQuery) -> Result<Recovery> {
        history::recovery(self, topic_id, query).await
    }

    async fn user_by_email(&self, email: &str) -> Result<Option<UserRecord>> {
        users::by_email(self, email).await
    }

    async fn create_bot(&self, new: NewBot) -> Result<(UserRecord, BotRecord)> {
        bots::create(self, new).await
    }

    async fn bots(&self) -> Result<Vec<(UserRecord, BotRecord)>> {
        bots::all(self).await
    }

    async fn bot(&self, user_id: u64) -> Result<Option<BotRecord>> {
        bots::get(self, user_id).await
    }

    async fn bot_by_key_hash(&self, key_hash: Vec<u8>) -> Result<Option<UserRecord>> {
        bots::by_key_hash(self, key_hash).await
    }

    async fn rotate_bot_key(
        &self,
        user_id: u64,
        key_hash: Vec<u8>,
        signing_secret: String,
    ) -> Result<BotRecord> {
        bots::rotate_key(self, user_id, key_hash, signing_secret).await
    }

    async fn update_bot_webhook(
        &self,
        user_id: u64,
        webhook_url: Option<String>,
        all_messages: bool,
    ) -> Result<BotRecord> {
        bots::update_webhook(self, user_id, webhook_url, all_messages).await
    }

    async fn delete_bot(&self, user_id: u64) -> Result<()> {
        bots::delete(self, user_id).await
    }

    async fn create_hook(&self, new: NewHook) -> Result<HookRecord> {
        bots::create_hook(self, new).await
    }

    async fn hooks_of_topic(&self, topic_id: u64) -> Result<Vec<HookRecord>> {
        bots::hooks_of_topic(self, topic_id).await
    }

    async fn hook_by_token_hash(&self, token_hash: Vec<u8>) -> Result<Option<HookRecord>> {
        bots::hook_by_token_hash(self, token_hash).await
    }

    async fn delete_hook(&self, topic_id: u64, id: u64) -> Result<()> {
        bots::delete_hook(self, topic_id, id).await
    }

    async fn pending_deliveries(&self) -> Result<Vec<DeliveryRecord>> {
        bots::pending_deliveries(self).await
    }

    async fn finish_delivery(&self, event_id: u64) -> Result<()> {
        bots::finish_delivery(self, event_id).await
    }

    async fn issue_password_link(
        &self,
        hash: [u8; 32],
        link: PasswordLinkRecord,
        mail: MailRecord,
    ) -> Result<u64> {
        mail::issue_password_link(self, hash, link, mail).await
    }

    async fn password_link_state(&self, hash: [u8; 32], now_ms: i64) -> Result<LinkState> {
        mail::password_link_state(self, hash, now_ms).await
    }

    async fn redeem_password_link(
        &self,
        hash: [u8; 32],
        password_hash: String,
        now_ms: i64,
    ) -> Result<Redeemed> {
        mail::redeem_password_link(self, hash, password_hash, now_ms).await
    }

    async fn purge_expired_password_links(&self, now_ms: i64) -> Result<usize> {
        mail::purge_expired_password_links(self, now_ms).await
    }

    async fn enqueue_mail(&self, mail: MailRecord) -> Result<u64> {
        mail::enqueue(self, mail).await
    }

    async fn due_mail(&self, now_ms: i64, limit: usize) -> Result<Vec<(u64, MailRecord)>> {
        mail::due(self, now_ms, limit).await
    }

    async fn remove_mail(&self, id: u64) -> Result<()> {
        mail::remove(self, id).await
    }

    async fn mail_attempt_failed(
        &self,
        id: u64,
        attempts: u32,
        next_attempt_at: i64,
    ) -> Result<()> {
        mail::attempt_failed(self, id, attempts, next_attempt_at).await
    }

    async fn mail_queue_status(&self) -> Result<QueueStatus> {
        mail::queue_status(self).await
    }

    fn react<D>(&self, request: ReactRequest, done: D) -> impl Future<Output = ()> + Send
    where
        D: FnOnce(Result<Toggled>) + Send + 'static,
    {
        self.writer().react(request, done)
    }

    async fn history_around(&self, topic_id: u64, seq: u64, limit: usize) -> Result<AroundPage> {
        history::around(self, topic_id, seq, limit).await
    }

    fn topic_ids_blocking(&self) -> Result<Vec<u64>> {
        self.block_on(search_reads::topic_ids(self))
    }

    fn messages_after_blocking(
        &self,
        topic_id: u64,
        after: u64,
        limit: usize,
    ) -> Result<(Vec<Stored>, bool)> {
        self.block_on(history::messages_after(self, topic_id, after, limit))
    }

    fn search_scope_blocking(&self, user_id: u64, from: &[String]) -> Result<SearchScope> {
        self.block_on(search_reads::scope(self, user_id, from))
    }

    fn lookup_messages_blocking(&self, keys: &[(u64, u64)]) -> Result<MessageLookup> {
        self.block_on(search_reads::lookup(self, keys))
    }

    async fn bot_rate_limits(&self) -> Result<Vec<(u64, crate::store::records::RateLimit)>> {
        super::bot_limits::all(self).await
    }

    async fn set_bot_rate_limit(
        &self,
        user_id: u64,
        limit: Option<crate::store::records::RateLimit>,
    ) -> Result<()> {
        super::bot_limits::set(self, user_id, limit).await
    }

    async fn log_delivery_attempt(
        &self,
        bot_id: u64,
        attempt: crate::store::records::DeliveryAttemptRecord,
        keep: usize,
    ) -> Result<()> {
        super::delivery_log::add(self, bot_id, attempt, keep).await
    }

    async fn delivery_log(
        &self,
        bot_id: u64,
    ) -> Result<Vec<crate::store::records::DeliveryAttemptRecord>> {
        super::delivery_log::of_bot(self, bot_id).await
    }
}
