//! Bot accounts: `bots` (user id → [`BotRecord`]) and `bot_key_hashes`
//! (SHA-256 of the API key → user id). A bot is also a user (with the `bot`
//! flag), created, re-keyed and removed here in one write each (removal
//! also drops its rate limit and delivery log).

use redb::{ReadTransaction, ReadableTable};

use super::codec;
use super::meta::next_id;
use super::tables::{BOTS, BOT_KEY_HASHES, USERNAME_USER};
use super::{bot_limits, delivery_log, users, EmbeddedStore, WriteCtx};
use crate::clock;
use crate::error::{Error, Result};
use crate::store::ops::NewBot;
use crate::store::records::{BotRecord, UserRecord};

/// One bot inside a read transaction.
pub fn get(tx: &ReadTransaction, user_id: u64) -> Result<Option<BotRecord>> {
    let bots = tx.open_table(BOTS)?;
    let found = bots.get(user_id)?;
    found.map(|v| codec::decode(v.value())).transpose()
}

fn get_in(ctx: &mut WriteCtx<'_>, user_id: u64) -> Result<Option<BotRecord>> {
    let bots = ctx.tx().open_table(BOTS)?;
    let found = bots.get(user_id)?;
    found.map(|v| codec::decode(v.value())).transpose()
}

fn put(ctx: &mut WriteCtx<'_>, bot: &BotRecord) -> Result<()> {
    let mut bots = ctx.tx().open_table(BOTS)?;
    bots.insert(bot.user_id, codec::encode(bot).as_slice())?;
    Ok(())
}

impl EmbeddedStore {
    /// Creates the bot's user (flagged `bot`, no password) and its record;
    /// 422 on a taken username.
    pub(super) async fn create_bot(&self, new: NewBot) -> Result<(UserRecord, BotRecord)> {
        self.write(move |ctx| {
            let key = new.username.to_lowercase();
            {
                let index = ctx.tx().open_table(USERNAME_USER)?;
                if index.get(key.as_str())?.is_some() {
                    return Err(Error::field("username", "is already taken"));
                }
            }
            let id = next_id(ctx.tx(), "next_user_id")?;
            let now = clock::now_ms();
            let user = UserRecord {
                id,
                username: new.username,
                display_name: new.display_name,
                email: None,
                password_hash: String::new(),
                admin: false,
                disabled: false,
                token_version: 0,
                created_at: now,
                bot: true,
            };
            users::put(ctx, &user)?;
            ctx.tx()
                .open_table(USERNAME_USER)?
                .insert(key.as_str(), id)?;
            let bot = BotRecord {
                user_id: id,
                key_hash: new.key_hash,
                signing_secret: new.signing_secret,
                webhook_url: new.webhook_url,
                all_messages: new.all_messages,
                created_by: new.created_by,
                created_at: now,
            };
            put(ctx, &bot)?;
            ctx.tx()
                .open_table(BOT_KEY_HASHES)?
                .insert(bot.key_hash.as_slice(), id)?;
            Ok((user, bot))
        })
        .await
    }

    /// Every bot with its user, by id.
    pub(super) async fn bots(&self) -> Result<Vec<(UserRecord, BotRecord)>> {
        self.read(|tx| {
            let table = tx.open_table(BOTS)?;
            let mut out = Vec::new();
            for entry in table.iter()? {
                let (_, value) = entry?;
                let bot: BotRecord = codec::decode(value.value())?;
                if let Some(user) = users::get(tx, bot.user_id)? {
                    out.push((user, bot));
                }
            }
            Ok(out)
        })
        .await
    }

    /// One bot by user id.
    pub(super) async fn bot(&self, user_id: u64) -> Result<Option<BotRecord>> {
        self.read(move |tx| get(tx, user_id)).await
    }

    /// The bot whose API key hashes to `key_hash`, with its user.
    pub(super) async fn bot_by_key_hash(&self, key_hash: Vec<u8>) -> Result<Option<UserRecord>> {
        self.read(move |tx| {
            let index = tx.open_table(BOT_KEY_HASHES)?;
            let id = index.get(key_hash.as_slice())?.map(|v| v.value());
            match id {
                Some(id) => users::get(tx, id),
                None => Ok(None),
            }
        })
        .await
    }

    /// Replaces the bot's key (and signing secret): the old key is refused
    /// from this commit on, and the bot's token version moves so its open
    /// sockets fail their recheck.
    pub(super) async fn rotate_bot_key(
        &self,
        user_id: u64,
        key_hash: Vec<u8>,
        signing_secret: String,
    ) -> Result<BotRecord> {
        self.write(move |ctx| {
            let mut bot = get_in(ctx, user_id)?.ok_or(Error::NotFound("bot"))?;
            ctx.tx()
                .open_table(BOT_KEY_HASHES)?
                .remove(bot.key_hash.as_slice())?;
            bot.key_hash = key_hash;
            bot.signing_secret = signing_secret;
            put(ctx, &bot)?;
            ctx.tx()
                .open_table(BOT_KEY_HASHES)?
                .insert(bot.key_hash.as_slice(), user_id)?;
            let mut user = users::get_in(ctx, user_id)?.ok_or(Error::NotFound("bot"))?;
            user.token_version = user.token_version.wrapping_add(1);
            users::put(ctx, &user)?;
            Ok(bot)
        })
        .await
    }

    /// Changes a bot's webhook settings.
    pub(super) async fn update_bot_webhook(
        &self,
        user_id: u64,
        webhook_url: Option<String>,
        all_messages: bool,
    ) -> Result<BotRecord> {
        self.write(move |ctx| {
            let mut bot = get_in(ctx, user_id)?.ok_or(Error::NotFound("bot"))?;
            bot.webhook_url = webhook_url;
            bot.all_messages = all_messages;
            put(ctx, &bot)?;
            Ok(bot)
        })
        .await
    }

    /// Removes a bot: its key is refused from this commit on and its user is
    /// disabled (kept, so its messages keep their author).
    pub(super) async fn delete_bot(&self, user_id: u64) -> Result<()> {
        self.write(move |ctx| {
            let bot = get_in(ctx, user_id)?.ok_or(Error::NotFound("bot"))?;
            ctx.tx()
                .open_table(BOT_KEY_HASHES)?
                .remove(bot.key_hash.as_slice())?;
            ctx.tx().open_table(BOTS)?.remove(user_id)?;
            bot_limits::forget_in(ctx, user_id)?;
            delivery_log::forget_in(ctx, user_id)?;
            if let Some(mut user) = users::get_in(ctx, user_id)? {
                user.disabled = true;
                user.token_version = user.token_version.wrapping_add(1);
                users::put(ctx, &user)?;
            }
            Ok(())
        })
        .await
    }
}
