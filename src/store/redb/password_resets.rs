//! One-time password links (welcome and reset): `password_links` maps the
//! SHA-256 of a link's token to its [`PasswordLinkRecord`]. Only the hash is
//! kept, so reading the store gives no usable link away; a link is looked
//! up by hashing what its holder presents.
//!
//! A link is void once used, once expired, and once the user's token version
//! has moved on (any password change), so a reset revokes every older link.

use redb::ReadableTable;

use super::codec;
use super::mail_queue::enqueue_in;
use super::tables::PASSWORD_LINKS;
use super::{users, EmbeddedStore};
use crate::error::Result;
use crate::store::ops::{LinkState, Redeemed};
use crate::store::records::{MailRecord, PasswordLinkRecord};

impl EmbeddedStore {
    /// Stores a link under `hash` and queues `mail` (which carries it) in the
    /// same durable write.
    pub(super) async fn issue_password_link(
        &self,
        hash: [u8; 32],
        link: PasswordLinkRecord,
        mail: MailRecord,
    ) -> Result<u64> {
        self.write(move |ctx| {
            ctx.tx()
                .open_table(PASSWORD_LINKS)?
                .insert(&hash[..], codec::encode(&link).as_slice())?;
            enqueue_in(ctx, &mail)
        })
        .await
    }

    /// Whether the link under `hash` could be redeemed at `now_ms`.
    pub(super) async fn password_link_state(
        &self,
        hash: [u8; 32],
        now_ms: i64,
    ) -> Result<LinkState> {
        self.read(move |tx| {
            let links = tx.open_table(PASSWORD_LINKS)?;
            let Some(link) = links
                .get(&hash[..])?
                .map(|v| codec::decode::<PasswordLinkRecord>(v.value()))
                .transpose()?
            else {
                return Ok(LinkState::Unknown);
            };
            let current = users::get(tx, link.user_id)?
                .is_some_and(|user| user.token_version == link.token_version);
            Ok(if !current {
                LinkState::Unknown
            } else if link.expires_at <= now_ms {
                LinkState::Expired
            } else {
                LinkState::Usable
            })
        })
        .await
    }

    /// Uses the link under `hash` to set `password_hash`, bumping the user's
    /// token version (which voids their tokens and other links).
    pub(super) async fn redeem_password_link(
        &self,
        hash: [u8; 32],
        password_hash: String,
        now_ms: i64,
    ) -> Result<Redeemed> {
        self.write(move |ctx| {
            let found = {
                let links = ctx.tx().open_table(PASSWORD_LINKS)?;
                let found = links.get(&hash[..])?;
                found
                    .map(|v| codec::decode::<PasswordLinkRecord>(v.value()))
                    .transpose()?
            };
            let Some(link) = found else {
                return Ok(Redeemed::Unknown);
            };
            let user = users::get_in(ctx, link.user_id)?;
            let outcome = match user {
                Some(user) if user.token_version != link.token_version => Redeemed::Unknown,
                None => Redeemed::Unknown,
                Some(_) if link.expires_at <= now_ms => Redeemed::Expired,
                Some(user) if user.disabled => return Ok(Redeemed::Disabled),
                Some(mut user) => {
                    user.password_hash = password_hash;
                    user.token_version = user.token_version.wrapping_add(1);
                    users::put(ctx, &user)?;
                    Redeemed::Done(user)
                }
            };
            ctx.tx().open_table(PASSWORD_LINKS)?.remove(&hash[..])?;
            Ok(outcome)
        })
        .await
    }

    /// Drops links expired by `now_ms`; returns how many.
    pub(super) async fn purge_expired_password_links(&self, now_ms: i64) -> Result<usize> {
        self.write(move |ctx| {
            let mut links = ctx.tx().open_table(PASSWORD_LINKS)?;
            let mut removed = 0;
            for entry in links.extract_if(|_, value| {
                codec::decode::<PasswordLinkRecord>(value).is_ok_and(|l| l.expires_at <= now_ms)
            })? {
                entry?;
                removed += 1;
            }
            Ok(removed)
        })
        .await
    }
}
