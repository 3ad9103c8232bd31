//! Incoming webhooks: `hooks` (id → [`HookRecord`]) and `hook_token_hashes`
//! (SHA-256 of the URL token → id), so a token is found by its hash alone.

use redb::ReadableTable;

use super::codec;
use super::meta::next_id;
use super::tables::{HOOKS, HOOK_TOKEN_HASHES};
use super::EmbeddedStore;
use crate::clock;
use crate::error::{Error, Result};
use crate::store::ops::NewHook;
use crate::store::records::HookRecord;

impl EmbeddedStore {
    /// Stores a new incoming webhook.
    pub(super) async fn create_hook(&self, new: NewHook) -> Result<HookRecord> {
        self.write(move |ctx| {
            let id = next_id(ctx.tx(), "next_hook_id")?;
            let hook = HookRecord {
                id,
                room: new.room,
                topic_id: new.topic_id,
                user_id: new.user_id,
                token_hash: new.token_hash,
                created_by: new.created_by,
                created_at: clock::now_ms(),
            };
            ctx.tx()
                .open_table(HOOKS)?
                .insert(id, codec::encode(&hook).as_slice())?;
            ctx.tx()
                .open_table(HOOK_TOKEN_HASHES)?
                .insert(hook.token_hash.as_slice(), id)?;
            Ok(hook)
        })
        .await
    }

    /// The incoming webhooks of one room, by id.
    pub(super) async fn hooks_of_topic(&self, topic_id: u64) -> Result<Vec<HookRecord>> {
        self.read(move |tx| {
            let table = tx.open_table(HOOKS)?;
            let mut out = Vec::new();
            for entry in table.iter()? {
                let (_, value) = entry?;
                let hook: HookRecord = codec::decode(value.value())?;
                if hook.topic_id == topic_id {
                    out.push(hook);
                }
            }
            Ok(out)
        })
        .await
    }

    /// The hook whose token hashes to `token_hash`.
    pub(super) async fn hook_by_token_hash(
        &self,
        token_hash: Vec<u8>,
    ) -> Result<Option<HookRecord>> {
        self.read(move |tx| {
            let index = tx.open_table(HOOK_TOKEN_HASHES)?;
            let Some(id) = index.get(token_hash.as_slice())?.map(|v| v.value()) else {
                return Ok(None);
            };
            let table = tx.open_table(HOOKS)?;
            let found = table.get(id)?;
            found.map(|v| codec::decode(v.value())).transpose()
        })
        .await
    }

    /// Deletes hook `id` of topic `topic_id`; its token is refused from this
    /// commit on. 404 if there is no such hook in that room.
    pub(super) async fn delete_hook(&self, topic_id: u64, id: u64) -> Result<()> {
        self.write(move |ctx| {
            let hook: HookRecord = {
                let table = ctx.tx().open_table(HOOKS)?;
                let found = table.get(id)?;
                match found.map(|v| codec::decode(v.value())).transpose()? {
                    Some(hook) => hook,
                    None => return Err(Error::NotFound("hook")),
                }
            };
            if hook.topic_id != topic_id {
                return Err(Error::NotFound("hook"));
            }
            ctx.tx().open_table(HOOKS)?.remove(id)?;
            ctx.tx()
                .open_table(HOOK_TOKEN_HASHES)?
                .remove(hook.token_hash.as_slice())?;
            Ok(())
        })
        .await
    }
}
