//! The writes of the message path on PostgreSQL: one batch of posts, edits,
//! deletes and reactions in one transaction (see [`super::writer`] for the
//! batching and the order of completions), and read marks.
//!
//! A batch first locks the `topics` rows it writes, in id order, and reads
//! their `last_seq`. A run of consecutive posts is then applied set-wise: a
//! handful of statements read what the run needs (used `client_id`s,
//! attachments, mentioned accounts, members, read positions, ignores), the
//! posts are worked out one by one in memory exactly as the embedded store
//! does them, and a handful more write the result (`INSERT … SELECT FROM
//! unnest(…)`), so a batch of hundreds of posts costs about a dozen round
//! trips. Edits, deletes and reactions are rare and run statement by
//! statement.
//!
//! An operation refused for its own reasons (a used attachment, a message
//! not found) writes nothing and fails alone; a failed statement fails the
//! batch.

use std::collections::{BTreeSet, HashMap, HashSet};

use deadpool_postgres::{GenericClient, Pool, Transaction};
use tokio::sync::oneshot;

use super::convert::{from_db, ids_to_db, prefixed, to_db, Param};
use super::error::{db, is_retryable};
use super::writer::{Outcome, Request};
use super::{attachments, bots, history, users, PgStore};
use crate::clock;
use crate::error::{Error, Result};
use crate::store::ops::{
    ChangeOutcome, ChangeRequest, MentionQuery, MessageChange, PostOutcome, PostRequest,
    ReactRequest, Toggled, TopicCounts, MAX_DISTINCT_EMOJI,
};
use crate::store::records::{
    AttachmentRecord, Author, DeliveryRecord, MessageRecord, ReactionsRecord, Stored,
};

/// Why a batch did not commit.
pub enum BatchError {
    /// It ran into another transaction and may be run again.
    Retry(Error),
    /// Anything else.
    Failed(Error),
}

impl BatchError {
    /// The error the batch's operations are failed with.
    pub fn into_error(self) -> Error {
        match self {
            BatchError::Retry(e) | BatchError::Failed(e) => e,
        }
    }
}

/// A statement's failure, as the batch's.
fn fail(error: tokio_postgres::Error) -> BatchError {
    if is_retryable(&error) {
        BatchError::Retry(db(error))
    } else {
        BatchError::Failed(db(error))
    }
}

impl From<Error> for BatchError {
    fn from(error: Error) -> Self {
        BatchError::Failed(error)
    }
}

/// A step of a batch: the batch's failure, or the operation's own result.
type Step<T> = std::result::Result<T, BatchError>;

/// Runs `sql` (prepared once per connection) with `params`.
async fn query(
    tx: &Transaction<'_>,
    sql: &str,
    params: &[Param<'_>],
) -> Step<Vec<tokio_postgres::Row>> {
    let statement = tx.prepare_cached(sql).await.map_err(fail)?;
    tx.query(&statement, params).await.map_err(fail)
}

/// Executes `sql` (prepared once per connection) with `params`.
async fn execute(tx: &Transaction<'_>, sql: &str, params: &[Param<'_>]) -> Step<u64> {
    let statement = tx.prepare_cached(sql).await.map_err(fail)?;
    tx.execute(&statement, params).await.map_err(fail)
}

/// A column of a row, or the batch's failure.
fn get<'a, T: tokio_postgres::types::FromSql<'a>>(
    row: &'a tokio_postgres::Row,
    index: usize,
) -> Step<T> {
    row.try_get(index).map_err(fail)
}

/// The topic of each request.
fn topic_of(request: &Request) -> u64 {
    match request {
        Request::Post(p) => p.topic_id,
        Request::Change(c) => c.topic_id,
        Request::React(r) => r.topic_id,
    }
}

/// What the batch knows of a topic it has locked.
struct TopicState {
    /// The last seq handed out.
    head: u64,
    /// A public room: mentions may name anyone.
    open_to_all: bool,
}

/// A batch's place in the order in which batches lock their topics: it
/// locks after the batch before it has locked (or has given up), and lets
/// the batch after it go once its own locks are held.
#[derive(Default)]
pub struct LockTurn {
    /// Resolves (or is dropped) once the previous batch holds its locks.
    pub after: Option<oneshot::Receiver<()>>,
    /// Fired once this batch holds its locks; dropped if it never does.
    pub then: Option<oneshot::Sender<()>>,
}

impl LockTurn {
    /// Whether this batch has taken its locks (and let the next one go).
    pub fn has_locked(&self) -> bool {
        self.then.is_none()
    }
}

/// Applies the operations of one batch in one transaction and commits;
/// returns each operation's outcome, in order. The connection and the
/// transaction are made before the batch's turn comes; the topic locks are
/// taken in turn.
pub async fn apply_batch(
    pool: &Pool,
    requests: &[Request],
    turn: &mut LockTurn,
) -> Step<Vec<Outcome>> {
    let mut client = pool
        .get()
        .await
        .map_err(|e| BatchError::Failed(super::error::pool(e)))?;
    let tx = client.transaction().await.map_err(fail)?;
    let topic_ids: BTreeSet<u64> = requests.iter().map(topic_of).collect();
    if let Some(previous) = turn.after.take() {
        // An error only means the previous batch ended without locking.
        let _ = previous.await;
    }
    let mut topics = lock_topics(&tx, &topic_ids).await?;
    if let Some(next) = turn.then.take() {
        let _ = next.send(());
    }
    let mut outcomes = Vec::with_capacity(requests.len());
    let mut at = 0;
    while at < requests.len() {
        match &requests[at] {
            Request::Post(_) => {
                let posts: Vec<&PostRequest> = requests[at..]
                    .iter()
                    .map_while(|r| match r {
                        Request::Post(p) => Some(p),
                        _ => None,
                    })
                    .collect();
                at += posts.len();
                for outcome in post_run(&tx, &mut topics, &posts).await? {
                    outcomes.push(Outcome::Post(outcome));
                }
            }
            Request::Change(request) => {
                at += 1;
                let outcome = match topics.get(&request.topic_id) {
                    Some(topic) => change_one(&tx, topic.open_to_all, request).await?,
                    None => Err(Error::NotFound("message")),
                };
                outcomes.push(Outcome::Change(outcome));
            }
            Request::React(request) => {
                at += 1;
                outcomes.push(Outcome::React(react_one(&tx, request).await?));
            }
        }
    }
    tx.commit().await.map_err(fail)?;
    Ok(outcomes)
}

/// Locks the rows of `ids` in `topics` (in id order, so batches never
/// deadlock on them) and reads their heads.
async fn lock_topics(tx: &Transaction<'_>, ids: &BTreeSet<u64>) -> Step<HashMap<u64, TopicState>> {
    let ids: Vec<i64> = ids.iter().copied().map(to_db).collect();
    let rows = query(
        tx,
        "SELECT t.id, t.last_seq, coalesce(NOT r.private, false) \
         FROM topics t LEFT JOIN rooms r ON r.topic_id = t.id \
         WHERE t.id = ANY($1) ORDER BY t.id FOR UPDATE OF t",
        &[&ids],
    )
    .await?;
    let mut topics = HashMap::with_capacity(rows.len());
    for row in &rows {
        topics.insert(
            from_db(get(row, 0)?),
            TopicState {
                head: from_db(get(row, 1)?),
                open_to_all: get(row, 2)?,
            },
        );
    }
    Ok(topics)
}

/// What a run of posts reads before working them out.
#[derive(Default)]
struct RunContext {
    /// (topic, author, client_id) → the message already stored under it.
    existing: HashMap<(u64, u64, String), Stored>,
    /// The attachments named by the run, by id.
    attachments: HashMap<u64, AttachmentRecord>,
    /// Lowercase username → (id, disabled), for the names mentioned.
    names: HashMap<String, (u64, bool)>,
    /// Id → disabled, for every account looked up.
    disabled: HashMap<u64, bool>,
    /// (user, ignored): who ignores which author.
    ignoring: HashSet<(u64, u64)>,
    /// Topic → members, ascending.
    members: HashMap<u64, Vec<u64>>,
    /// (user, topic) → read position.
    reads: HashMap<(u64, u64), u64>,
}

impl RunContext {
    fn read(&self, user: u64, topic: u64) -> u64 {
        self.reads.get(&(user, topic)).copied().unwrap_or(0)
    }

    fn is_member(&self, topic: u64, user: u64) -> bool {
        self.members
            .get(&topic)
            .is_some_and(|m| m.binary_search(&user).is_ok())
    }

    /// The users `query` mentions who may read the topic, as the embedded
    /// store resolves them: per `@token` the first spelling that is an
    /// account, then the present users; disabled accounts dropped; outside
    /// public rooms only members.
    fn resolve(&self, topic_id: u64, open_to_all: bool, query: Option<&MentionQuery>) -> Vec<u64> {
        let Some(query) = query else {
            return Vec::new();
        };
        let named = query.names.iter().filter_map(|spellings| {
            spellings
                .iter()
                .find_map(|name| self.names.get(name).map(|&(id, _)| id))
        });
        let mut found: Vec<u64> = Vec::new();
        for id in named.chain(query.present.iter().copied()) {
            if found.contains(&id) {
                continue;
            }
            if self.disabled.get(&id) == Some(&false) {
                found.push(id);
            }
        }
        if !open_to_all {
            found.retain(|&id| self.is_member(topic_id, id));
        }
        found
    }
}

/// Reads what the posts of a run need.
async fn read_context(
    tx: &Transaction<'_>,
    topics: &HashMap<u64, TopicState>,
    posts: &[&PostRequest],
) -> Step<RunContext> {
    let mut context = RunContext::default();
    let topic_ids: Vec<i64> = topics.keys().copied().map(to_db).collect();

    let keyed: Vec<&&PostRequest> = posts.iter().filter(|p| p.client_id.is_some()).collect();
    if !keyed.is_empty() {
        let t: Vec<i64> = keyed.iter().map(|p| to_db(p.topic_id)).collect();
        let a: Vec<i64> = keyed.iter().map(|p| to_db(p.user_id)).collect();
        let c: Vec<&str> = keyed
            .iter()
            .map(|p| p.client_id.as_deref().unwrap_or_default())
            .collect();
        let sql = format!(
            "SELECT {} FROM messages m JOIN unnest($1::bigint[], $2::bigint[], $3::text[]) \
             AS k(t, a, c) ON m.topic_id = k.t AND m.author_id = k.a AND m.client_id = k.c",
            prefixed(history::COLUMNS, "m")
        );
        for row in query(tx, &sql, &[&t, &a, &c]).await? {
            let stored = history::from_row(&row)?;
            let key = (
                stored.topic_id,
                stored.record.user_id,
                stored.record.client_id.clone().unwrap_or_default(),
            );
            context.existing.insert(key, stored);
        }
    }

    let attachment_ids: Vec<i64> = posts
        .iter()
        .filter_map(|p| p.attachment_id.map(to_db))
        .collect();
    if !attachment_ids.is_empty() {
        let sql = format!(
            "SELECT {} FROM attachments WHERE id = ANY($1) FOR UPDATE",
            attachments::COLUMNS
        );
        for row in query(tx, &sql, &[&attachment_ids]).await? {
            let record = attachments::from_row(&row)?;
            context.attachments.insert(record.id, record);
        }
    }

    let mut names: Vec<String> = Vec::new();
    let mut present: Vec<i64> = Vec::new();
    for query in posts.iter().filter_map(|p| p.mentions.as_ref()) {
        names.extend(query.names.iter().flatten().cloned());
        present.extend(query.present.iter().copied().map(to_db));
    }
    let mut candidates: Vec<u64> = Vec::new();
    if !names.is_empty() || !present.is_empty() {
        candidates = context.look_up_accounts(tx, &names, &present).await?;
        let authors: Vec<i64> = posts.iter().map(|p| to_db(p.user_id)).collect();
        let rows = query(
            tx,
            "SELECT user_id, ignored_id FROM ignores WHERE ignored_id = ANY($1)",
            &[&authors],
        )
        .await?;
        for row in &rows {
            context
                .ignoring
                .insert((from_db(get(row, 0)?), from_db(get(row, 1)?)));
        }
    }

    let rows = query(
        tx,
        "SELECT topic_id, user_id FROM topic_members WHERE topic_id = ANY($1) \
         ORDER BY topic_id, user_id",
        &[&topic_ids],
    )
    .await?;
    let mut people: Vec<i64> = posts.iter().map(|p| to_db(p.user_id)).collect();
    for row in &rows {
        let topic = from_db(get(row, 0)?);
        let user: i64 = get(row, 1)?;
        context
            .members
            .entry(topic)
            .or_default()
            .push(from_db(user));
        people.push(user);
    }
    people.extend(candidates.iter().copied().map(to_db));
    people.sort_unstable();
    people.dedup();
    let rows = query(
        tx,
        "SELECT user_id, topic_id, seq FROM read_positions \
         WHERE topic_id = ANY($1) AND user_id = ANY($2)",
        &[&topic_ids, &people],
    )
    .await?;
    for row in &rows {
        context.reads.insert(
            (from_db(get(row, 0)?), from_db(get(row, 1)?)),
            from_db(get(row, 2)?),
        );
    }
    Ok(context)
}

/// What a run writes once its posts are worked out.
#[derive(Default)]
struct RunWrites {
    messages: Vec<Stored>,
    /// (attachment id, topic, seq).
    links: Vec<(u64, u64, u64)>,
    /// (author, topic) → read position after the run.
    author_reads: HashMap<(u64, u64), u64>,
    /// (user, topic, seq, author): unread mentions to add.
    mentions: Vec<(u64, u64, u64, u64)>,
    events: Vec<DeliveryRecord>,
}

/// Applies a run of posts; one outcome per post, in order.
async fn post_run(
    tx: &Transaction<'_>,
    topics: &mut HashMap<u64, TopicState>,
    posts: &[&PostRequest],
) -> Step<Vec<Result<PostOutcome>>> {
    let mut context = read_context(tx, topics, posts).await?;
    let rows = query(
        tx,
        "SELECT nextval('messages_id_seq') FROM generate_series(1, $1::bigint)",
        &[&(posts.len() as i64)],
    )
    .await?;
    let mut ids = Vec::with_capacity(rows.len());
    for row in &rows {
        ids.push(from_db(get(row, 0)?));
    }
    let mut ids = ids.into_iter();
    let mut writes = RunWrites::default();
    let mut outcomes = Vec::with_capacity(posts.len());
    // Attachments linked by earlier posts of the run: id → message.
    let mut linked: HashMap<u64, AttachmentRecord> = HashMap::new();
    for post in posts {
        let outcome = work_out(
            tx,
            topics,
            &mut context,
            &mut writes,
            &mut linked,
            &mut ids,
            post,
        )
        .await?;
        outcomes.push(outcome);
    }
    write_run(tx, topics, &writes).await?;
    Ok(outcomes)
}

/// Works out one post against the run's state, recording its writes.
#[allow(clippy::too_many_arguments)]
async fn work_out(
    tx: &Transaction<'_>,
    topics: &mut HashMap<u64, TopicState>,
    context: &mut RunContext,
    writes: &mut RunWrites,
    linked: &mut HashMap<u64, AttachmentRecord>,
    ids: &mut impl Iterator<Item = u64>,
    post: &PostRequest,
) -> Step<Result<PostOutcome>> {
    let key = post
        .client_id
        .as_ref()
        .map(|c| (post.topic_id, post.user_id, c.clone()));
    if let Some(existing) = key.as_ref().and_then(|k| context.existing.get(k)) {
        let existing = existing.clone();
        let attachment = match linked
            .values()
            .find(|a| a.topic_id == existing.topic_id && a.linked_seq == Some(existing.seq))
        {
            Some(a) => Some(a.clone()),
            None => attachment_of(tx, existing.topic_id, existing.seq).await?,
        };
        return Ok(Ok(PostOutcome {
            stored: existing,
            duplicate: true,
            unread: Vec::new(),
            attachment,
            mentioned: Vec::new(),
            events: Vec::new(),
        }));
    }
    let Some(topic) = topics.get_mut(&post.topic_id) else {
        return Ok(Err(Error::NotFound("topic")));
    };
    if let Some(id) = post.attachment_id {
        let record = match context.attachments.get(&id) {
            Some(record) => record,
            None => return Ok(Err(Error::field("attachment_id", "no such attachment"))),
        };
        if record.topic_id != post.topic_id || record.user_id != post.user_id {
            return Ok(Err(Error::field(
                "attachment_id",
                "belongs to another topic or user",
            )));
        }
        if record.linked_seq.is_some() {
            return Ok(Err(Error::field(
                "attachment_id",
                "is already attached to a message",
            )));
        }
    }
    let mentions = context.resolve(post.topic_id, topic.open_to_all, post.mentions.as_ref());
    let seq = topic.head + 1;
    topic.head = seq;
    let Some(id) = ids.next() else {
        return Err(BatchError::Failed(Error::Store(
            "ran out of message ids".into(),
        )));
    };
    let stored = Stored {
        topic_id: post.topic_id,
        seq,
        record: MessageRecord {
            id,
            user_id: post.user_id,
            body: post.body.clone(),
            client_id: post.client_id.clone(),
            inserted_at: clock::now_ms(),
            edited_at: None,
            deleted: false,
            mentions,
        },
    };
    if let Some(key) = key {
        context.existing.insert(key, stored.clone());
    }
    let attachment = match post.attachment_id {
        Some(id) => {
            let record = context.attachments.get_mut(&id).map(|record| {
                record.linked_seq = Some(seq);
                record.clone()
            });
            if let Some(record) = &record {
                linked.insert(id, record.clone());
                writes.links.push((id, post.topic_id, seq));
            }
            record
        }
        None => None,
    };
    // Posting implies having read the topic up to here, mentions included.
    let author = post.user_id;
    let read = context.reads.entry((author, post.topic_id)).or_insert(0);
    *read = (*read).max(seq);
    writes.author_reads.insert((author, post.topic_id), *read);
    writes.mentions.retain(|&(user, topic_id, s, _)| {
        !(user == author && topic_id == post.topic_id && s <= seq)
    });
    let mut mentioned = Vec::new();
    for &user in &stored.record.mentions {
        if user == author || context.ignoring.contains(&(user, author)) {
            continue;
        }
        if context.read(user, post.topic_id) < seq {
            writes.mentions.push((user, post.topic_id, seq, author));
        }
        mentioned.push(user);
    }
    let unread = context
        .members
        .get(&post.topic_id)
        .map(|members| {
            members
                .iter()
                .filter(|&&m| m != author)
                .map(|&m| (m, seq.saturating_sub(context.read(m, post.topic_id))))
                .collect()
        })
        .unwrap_or_default();
    let events = match &post.bots {
        Some(audience) => {
            let direct = post.topic.starts_with("dm:");
            let mut candidates: Vec<(u64, bool)> = audience
                .bots
                .iter()
                .filter(|(id, _)| *id != author)
                .filter_map(|&(bot, all_messages)| {
                    if stored.record.mentions.contains(&bot) {
                        Some((bot, false))
                    } else if direct || all_messages {
                        Some((bot, true))
                    } else {
                        None
                    }
                })
                .collect();
            candidates.sort_by_key(|&(bot, _)| bot);
            let mut events = Vec::new();
            for (bot, if_member) in candidates {
                if if_member && !context.is_member(post.topic_id, bot) {
                    continue;
                }
                let event_id = bots::next_event_id(tx).await.map_err(fail)?;
                let event = DeliveryRecord {
                    event_id,
                    bot_id: bot,
                    topic: post.topic.to_string(),
                    body: (audience.body)(
                        event_id,
                        &post.topic,
                        &stored,
                        &audience.author,
                        attachment.as_ref(),
                    ),
                    created_at: clock::now_ms(),
                };
                writes.events.push(event.clone());
                events.push(event);
            }
            events
        }
        None => Vec::new(),
    };
    writes.messages.push(stored.clone());
    Ok(Ok(PostOutcome {
        stored,
        duplicate: false,
        unread,
        attachment,
        mentioned,
        events,
    }))
}

/// The attachment linked to message (topic, seq), if any.
async fn attachment_of(
    client: &impl GenericClient,
    topic_id: u64,
    seq: u64,
) -> Step<Option<AttachmentRecord>> {
    let sql = format!(
        "SELECT {} FROM attachments WHERE topic_id = $1 AND message_seq = $2",
        attachments::COLUMNS
    );
    let statement = client.prepare_cached(&sql).await.map_err(fail)?;
    let row = client
        .query_opt(&statement, &[&to_db(topic_id), &to_db(seq)])
        .await
        .map_err(fail)?;
    Ok(row.as_ref().map(attachments::from_row).transpose()?)
}

/// Writes what a run worked out: the messages first (the other rows refer
/// to them), then the heads, links, read positions, mentions and events.
async fn write_run(
    tx: &Transaction<'_>,
    topics: &HashMap<u64, TopicState>,
    writes: &RunWrites,
) -> Step<()> {
    if !writes.messages.is_empty() {
        let m = &writes.messages;
        let topic: Vec<i64> = m.iter().map(|s| to_db(s.topic_id)).collect();
        let seq: Vec<i64> = m.iter().map(|s| to_db(s.seq)).collect();
        let id: Vec<i64> = m.iter().map(|s| to_db(s.record.id)).collect();
        let author: Vec<i64> = m.iter().map(|s| to_db(s.record.user_id)).collect();
        let body: Vec<&str> = m.iter().map(|s| s.record.body.as_str()).collect();
        let client_id: Vec<Option<&str>> =
            m.iter().map(|s| s.record.client_id.as_deref()).collect();
        let at: Vec<i64> = m.iter().map(|s| s.record.inserted_at).collect();
        let mentions: Vec<String> = m
            .iter()
            .map(|s| array_literal(&s.record.mentions))
            .collect();
        execute(
            tx,
            "INSERT INTO messages \
             (topic_id, seq, id, author_id, body, client_id, inserted_at, mentions) \
             SELECT t, s, i, a, b, c, at, m::bigint[] FROM unnest($1::bigint[], $2::bigint[], \
             $3::bigint[], $4::bigint[], $5::text[], $6::text[], $7::bigint[], $8::text[]) \
             AS v(t, s, i, a, b, c, at, m)",
            &[
                &topic, &seq, &id, &author, &body, &client_id, &at, &mentions,
            ],
        )
        .await?;
        let mut heads: Vec<(i64, i64)> = m
            .iter()
            .map(|s| s.topic_id)
            .collect::<BTreeSet<u64>>()
            .into_iter()
            .filter_map(|t| topics.get(&t).map(|state| (to_db(t), to_db(state.head))))
            .collect();
        heads.sort_unstable();
        let (ids, lasts): (Vec<i64>, Vec<i64>) = heads.into_iter().unzip();
        execute(
            tx,
            "UPDATE topics SET last_seq = v.s FROM unnest($1::bigint[], $2::bigint[]) AS v(id, s) \
             WHERE topics.id = v.id",
            &[&ids, &lasts],
        )
        .await?;
    }
    if !writes.links.is_empty() {
        let id: Vec<i64> = writes.links.iter().map(|l| to_db(l.0)).collect();
        let seq: Vec<i64> = writes.links.iter().map(|l| to_db(l.2)).collect();
        execute(
            tx,
            "UPDATE attachments SET message_seq = v.s FROM unnest($1::bigint[], $2::bigint[]) \
             AS v(id, s) WHERE attachments.id = v.id",
            &[&id, &seq],
        )
        .await?;
    }
    if !writes.author_reads.is_empty() {
        let mut reads: Vec<(i64, i64, i64)> = writes
            .author_reads
            .iter()
            .map(|(&(u, t), &s)| (to_db(u), to_db(t), to_db(s)))
            .collect();
        reads.sort_unstable();
        let user: Vec<i64> = reads.iter().map(|r| r.0).collect();
        let topic: Vec<i64> = reads.iter().map(|r| r.1).collect();
        let seq: Vec<i64> = reads.iter().map(|r| r.2).collect();
        execute(
            tx,
            "INSERT INTO read_positions (user_id, topic_id, seq) \
             SELECT * FROM unnest($1::bigint[], $2::bigint[], $3::bigint[]) \
             ON CONFLICT (user_id, topic_id) \
             DO UPDATE SET seq = GREATEST(read_positions.seq, EXCLUDED.seq)",
            &[&user, &topic, &seq],
        )
        .await?;
        // The authors' mentions up to their posts are read now (new ones
        // of this run were already dropped while working it out).
        execute(
            tx,
            "DELETE FROM unread_mentions u USING unnest($1::bigint[], $2::bigint[], \
             $3::bigint[]) AS v(u, t, s) \
             WHERE u.user_id = v.u AND u.topic_id = v.t AND u.seq <= v.s",
            &[&user, &topic, &seq],
        )
        .await?;
    }
    if !writes.mentions.is_empty() {
        let user: Vec<i64> = writes.mentions.iter().map(|m| to_db(m.0)).collect();
        let topic: Vec<i64> = writes.mentions.iter().map(|m| to_db(m.1)).collect();
        let seq: Vec<i64> = writes.mentions.iter().map(|m| to_db(m.2)).collect();
        execute(
            tx,
            "INSERT INTO unread_mentions (user_id, topic_id, seq) \
             SELECT * FROM unnest($1::bigint[], $2::bigint[], $3::bigint[]) \
             ON CONFLICT DO NOTHING",
            &[&user, &topic, &seq],
        )
        .await?;
    }
    bots::enqueue_in(tx, &writes.events).await.map_err(fail)?;
    Ok(())
}

/// `{1,2,3}`: ids as an array literal, cast to `bigint[]` in SQL.
pub fn array_literal(ids: &[u64]) -> String {
    let items: Vec<String> = ids.iter().map(u64::to_string).collect();
    format!("{{{}}}", items.join(","))
}

/// Edits or deletes one message, as the embedded store does.
async fn change_one(
    tx: &Transaction<'_>,
    open_to_all: bool,
    request: &ChangeRequest,
) -> Step<Result<ChangeOutcome>> {
    let sql = format!(
        "SELECT {} FROM messages WHERE topic_id = $1 AND seq = $2 FOR UPDATE",
        history::COLUMNS
    );
    let (topic_id, seq) = (to_db(request.topic_id), to_db(request.seq));
    let rows = query(tx, &sql, &[&topic_id, &seq]).await?;
    let Some(row) = rows.first() else {
        return Ok(Err(Error::NotFound("message")));
    };
    let mut stored = history::from_row(row)?;
    if stored.record.user_id != request.editor_id && !request.editor_admin {
        return Ok(Err(Error::Forbidden(
            "only the author or an admin may do this".into(),
        )));
    }
    if stored.record.deleted {
        return Ok(Err(Error::NotFound("message")));
    }
    let author = stored.record.user_id;
    let context = match &request.change {
        MessageChange::Edit(_) => Some(mention_context(tx, request, author).await?),
        MessageChange::Delete => None,
    };
    let named = match &context {
        Some(context) => context.resolve(request.topic_id, open_to_all, request.mentions.as_ref()),
        None => Vec::new(),
    };
    match &request.change {
        MessageChange::Edit(body) => {
            stored.record.body = body.clone();
            stored.record.edited_at = Some(clock::now_ms());
        }
        MessageChange::Delete => {
            stored.record.body.clear();
            stored.record.deleted = true;
        }
    }
    let before = std::mem::replace(&mut stored.record.mentions, named);
    let (added, removed) = crate::store::ops::mention_changes(&before, &stored.record.mentions);
    let removed: Vec<i64> = removed.into_iter().map(to_db).collect();
    execute(
        tx,
        "UPDATE messages SET body = $3, edited_at = $4, deleted = $5, mentions = $6 \
         WHERE topic_id = $1 AND seq = $2",
        &[
            &topic_id,
            &seq,
            &stored.record.body,
            &stored.record.edited_at,
            &stored.record.deleted,
            &ids_to_db(&stored.record.mentions),
        ],
    )
    .await?;
    if !removed.is_empty() {
        execute(
            tx,
            "DELETE FROM unread_mentions WHERE topic_id = $1 AND seq = $2 AND user_id = ANY($3)",
            &[&topic_id, &seq, &removed],
        )
        .await?;
    }
    let mut mentioned = Vec::new();
    if let (false, Some(context)) = (added.is_empty(), &context) {
        let reads = read_positions(tx, request.topic_id, &added).await?;
        for user in added {
            if user == author || context.ignoring.contains(&(user, author)) {
                continue;
            }
            if reads.get(&user).copied().unwrap_or(0) < request.seq {
                execute(
                    tx,
                    "INSERT INTO unread_mentions (user_id, topic_id, seq) VALUES ($1, $2, $3) \
                     ON CONFLICT DO NOTHING",
                    &[&to_db(user), &topic_id, &seq],
                )
                .await?;
            }
            mentioned.push(user);
        }
    }
    if stored.record.deleted {
        execute(
            tx,
            "DELETE FROM attachments WHERE topic_id = $1 AND message_seq = $2",
            &[&topic_id, &seq],
        )
        .await?;
        execute(
            tx,
            "DELETE FROM reactions WHERE topic_id = $1 AND seq = $2",
            &[&topic_id, &seq],
        )
        .await?;
    }
    let attachment = attachment_of(tx, request.topic_id, request.seq).await?;
    let reactions = reactions_of(tx, request.topic_id, request.seq).await?;
    let sql = format!("SELECT {} FROM users WHERE id = $1", users::COLUMNS);
    let rows = query(tx, &sql, &[&to_db(author)]).await?;
    let author = match rows.first() {
        Some(row) => Author::from(&users::from_row(row)?),
        None => Author::unknown(author),
    };
    Ok(Ok(ChangeOutcome {
        stored,
        author,
        attachment,
        mentioned,
        reactions,
    }))
}

impl RunContext {
    /// Reads the accounts named (lowercase usernames) or present (ids) into
    /// `names` and `disabled`; returns the ids found.
    async fn look_up_accounts(
        &mut self,
        tx: &Transaction<'_>,
        names: &[String],
        present: &[i64],
    ) -> Step<Vec<u64>> {
        let rows = query(
            tx,
            "SELECT id, lower(username), disabled FROM users \
             WHERE lower(username) = ANY($1) OR id = ANY($2)",
            &[&names, &present],
        )
        .await?;
        let mut found = Vec::with_capacity(rows.len());
        for row in &rows {
            let id = from_db(get(row, 0)?);
            let name: String = get(row, 1)?;
            let disabled: bool = get(row, 2)?;
            self.names.insert(name, (id, disabled));
            self.disabled.insert(id, disabled);
            found.push(id);
        }
        Ok(found)
    }
}

/// What resolving an edit's mentions needs (accounts, members, ignores).
async fn mention_context(
    tx: &Transaction<'_>,
    request: &ChangeRequest,
    author: u64,
) -> Step<RunContext> {
    let mut context = RunContext::default();
    let (names, present): (Vec<String>, Vec<i64>) = match &request.mentions {
        Some(query) => (
            query.names.iter().flatten().cloned().collect(),
            query.present.iter().copied().map(to_db).collect(),
        ),
        None => (Vec::new(), Vec::new()),
    };
    context.look_up_accounts(tx, &names, &present).await?;
    let rows = query(
        tx,
        "SELECT user_id FROM topic_members WHERE topic_id = $1 ORDER BY user_id",
        &[&to_db(request.topic_id)],
    )
    .await?;
    let mut members = Vec::with_capacity(rows.len());
    for row in &rows {
        members.push(from_db(get(row, 0)?));
    }
    context.members.insert(request.topic_id, members);
    let rows = query(
        tx,
        "SELECT user_id FROM ignores WHERE ignored_id = $1",
        &[&to_db(author)],
    )
    .await?;
    for row in &rows {
        context.ignoring.insert((from_db(get(row, 0)?), author));
    }
    Ok(context)
}

/// The read positions of `users` in a topic.
async fn read_positions(
    tx: &Transaction<'_>,
    topic_id: u64,
    users: &[u64],
) -> Step<HashMap<u64, u64>> {
    let rows = query(
        tx,
        "SELECT user_id, seq FROM read_positions WHERE topic_id = $1 AND user_id = ANY($2)",
        &[&to_db(topic_id), &ids_to_db(users)],
    )
    .await?;
    let mut out = HashMap::new();
    for row in &rows {
        out.insert(from_db(get(row, 0)?), from_db(get(row, 1)?));
    }
    Ok(out)
}

/// The reactions of one message.
async fn reactions_of(
    tx: &Transaction<'_>,
    topic_id: u64,
    seq: u64,
) -> Step<Option<ReactionsRecord>> {
    let rows = query(
        tx,
        "SELECT seq, emoji, user_id FROM reactions WHERE topic_id = $1 AND seq = $2 \
         ORDER BY emoji_ord, ord",
        &[&to_db(topic_id), &to_db(seq)],
    )
    .await?;
    Ok(history::reactions_of(&rows)?.remove(&seq))
}

/// Toggles one user's emoji on a message, as the embedded store does.
async fn react_one(tx: &Transaction<'_>, request: &ReactRequest) -> Step<Result<Toggled>> {
    let (topic_id, seq) = (to_db(request.topic_id), to_db(request.seq));
    let rows = query(
        tx,
        "SELECT deleted FROM messages WHERE topic_id = $1 AND seq = $2 FOR UPDATE",
        &[&topic_id, &seq],
    )
    .await?;
    match rows.first() {
        Some(row) if !get::<bool>(row, 0)? => {}
        _ => return Ok(Err(Error::NotFound("message"))),
    }
    let user = to_db(request.user_id);
    let removed = execute(
        tx,
        "DELETE FROM reactions WHERE topic_id = $1 AND seq = $2 AND emoji = $3 AND user_id = $4",
        &[&topic_id, &seq, &request.emoji, &user],
    )
    .await?;
    if removed > 0 {
        return Ok(Ok(Toggled::Off));
    }
    let rows = query(
        tx,
        "SELECT count(DISTINCT emoji), min(emoji_ord) FILTER (WHERE emoji = $3) \
         FROM reactions WHERE topic_id = $1 AND seq = $2",
        &[&topic_id, &seq, &request.emoji],
    )
    .await?;
    let (distinct, emoji_ord): (i64, Option<i64>) = match rows.first() {
        Some(row) => (get(row, 0)?, get(row, 1)?),
        None => (0, None),
    };
    if emoji_ord.is_none() && usize::try_from(distinct).unwrap_or(usize::MAX) >= MAX_DISTINCT_EMOJI
    {
        return Ok(Ok(Toggled::Full));
    }
    execute(
        tx,
        "INSERT INTO reactions (topic_id, seq, emoji, user_id, ord, emoji_ord) \
         SELECT $1, $2, $3, $4, o, coalesce($5, o) \
         FROM (SELECT nextval('reactions_ord_seq') AS o) AS n",
        &[&topic_id, &seq, &request.emoji, &user, &emoji_ord],
    )
    .await?;
    Ok(Ok(Toggled::On))
}

/// Moves a read position forward (never past the last message) and clears
/// the mentions up to it; one transaction.
pub async fn mark_read(
    store: &PgStore,
    user_id: u64,
    topic_id: u64,
    seq: u64,
) -> Result<TopicCounts> {
    let mut client = store.client().await?;
    let tx = client.transaction().await.map_err(db)?;
    let (user, topic) = (to_db(user_id), to_db(topic_id));
    let statement = tx
        .prepare_cached("SELECT last_seq FROM topics WHERE id = $1")
        .await
        .map_err(db)?;
    let last_seq = match tx.query_opt(&statement, &[&topic]).await.map_err(db)? {
        Some(row) => from_db(row.try_get(0).map_err(db)?),
        None => 0,
    };
    let target = to_db(seq.min(last_seq));
    let statement = tx
        .prepare_cached(
            "INSERT INTO read_positions (user_id, topic_id, seq) VALUES ($1, $2, $3) \
             ON CONFLICT (user_id, topic_id) \
             DO UPDATE SET seq = GREATEST(read_positions.seq, EXCLUDED.seq) RETURNING seq",
        )
        .await
        .map_err(db)?;
    let read = from_db(
        tx.query_one(&statement, &[&user, &topic, &target])
            .await
            .and_then(|row| row.try_get(0))
            .map_err(db)?,
    );
    let clear = tx
        .prepare_cached(
            "DELETE FROM unread_mentions WHERE user_id = $1 AND topic_id = $2 AND seq <= $3",
        )
        .await
        .map_err(db)?;
    let count = tx
        .prepare_cached("SELECT count(*) FROM unread_mentions WHERE user_id = $1 AND topic_id = $2")
        .await
        .map_err(db)?;
    let read_db = to_db(read);
    let clear_params: [Param; 3] = [&user, &topic, &read_db];
    let count_params: [Param; 2] = [&user, &topic];
    let (_, row) = tokio::try_join!(
        tx.execute(&clear, &clear_params),
        tx.query_one(&count, &count_params),
    )
    .map_err(db)?;
    let unread_mentions = from_db(row.try_get(0).map_err(db)?);
    tx.commit().await.map_err(db)?;
    Ok(TopicCounts {
        last_seq,
        read,
        unread_mentions,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn array_literals() {
        assert_eq!(array_literal(&[]), "{}");
        assert_eq!(array_literal(&[3, 10]), "{3,10}");
    }

    #[test]
    fn mentions_resolve_like_the_embedded_store() {
        let mut context = RunContext::default();
        context.names.insert("ann".into(), (1, false));
        context.names.insert("bob".into(), (2, true));
        context.names.insert("cy".into(), (3, false));
        for (id, disabled) in [(1, false), (2, true), (3, false), (4, false)] {
            context.disabled.insert(id, disabled);
        }
        context.members.insert(9, vec![1, 4]);
        let query = MentionQuery {
            names: vec![
                vec!["ann.".into(), "ann".into()],
                vec!["bob".into(), "cy".into()],
                vec!["cy".into()],
            ],
            present: vec![4, 1],
        };
        // A disabled first spelling does not fall through to the next one.
        assert_eq!(context.resolve(9, true, Some(&query)), vec![1, 3, 4]);
        assert_eq!(context.resolve(9, false, Some(&query)), vec![1, 4]);
        assert!(context.resolve(9, true, None).is_empty());
    }
}
