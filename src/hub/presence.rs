//! Presence of one topic, with Phoenix Presence semantics: the key is the
//! user id as a string, each joined socket adds one meta
//! `{phx_ref, online_at, username, display_name}`, several sockets of one
//! user are one key with several metas.
//!
//! Changes are collected and published as one `presence_diff` per topic per
//! flush interval, so a burst of N joins costs each subscriber one diff, not
//! N. The full state for a joining socket is serialized at most once per
//! interval and shared: it reflects the last flush or later, and every change
//! after it reaches the joiner in a later diff (joins of known refs and
//! leaves of unknown refs are no-ops for the client).
//!
//! In a room with more presences (sockets) than the configured
//! `presence_state_limit`, the state a joiner receives lists only the ones
//! that joined most recently; diffs stay complete. Without the limit, N
//! sockets joining one room receive O(N²) bytes of state between them, and
//! a few users with many tabs are as costly as many users. One inexactness
//! follows for a user whose tabs are partly or wholly left out of a
//! joiner's state: that joiner knows only the tabs listed or opened later,
//! and when those close it drops the user although older tabs are still
//! online.

use std::collections::{BTreeMap, HashMap};
use std::sync::Arc;

use serde::Serialize;

/// One socket's presence on a topic.
#[derive(Clone, Debug, Serialize, PartialEq, Eq)]
pub struct Meta {
    pub phx_ref: String,
    /// Milliseconds since the epoch.
    pub online_at: i64,
    pub username: String,
    pub display_name: String,
    /// Present (true) only for bot accounts.
    #[serde(skip_serializing_if = "std::ops::Not::not")]
    pub bot: bool,
    /// The connection that tracked it (not sent).
    #[serde(skip)]
    pub conn_id: u64,
    /// Its place in the topic's tracking order, set by [`Presence::track`]
    /// (not sent; unlike `online_at`, unique and immune to clock steps).
    #[serde(skip)]
    pub joined: u64,
}

#[derive(Serialize)]
struct Metas<'a> {
    metas: Vec<&'a Meta>,
}

/// Presence state and pending changes of one topic.
#[derive(Default)]
pub struct Presence {
    /// key → metas, in tracking order.
    entries: BTreeMap<String, Vec<Meta>>,
    /// connection id → its key, so leaving is not a scan.
    by_conn: HashMap<u64, String>,
    joins: Vec<(String, Meta)>,
    leaves: Vec<(String, Meta)>,
    /// The serialized state, shared by joiners until the next flush.
    state: Option<Arc<str>>,
    /// Metas tracked so far (the next meta's `joined`).
    tracked: u64,
}

impl Presence {
    /// Adds a meta under `key`.
    pub fn track(&mut self, key: String, mut meta: Meta) {
        meta.joined = self.tracked;
        self.tracked += 1;
        self.by_conn.insert(meta.conn_id, key.clone());
        self.entries
            .entry(key.clone())
            .or_default()
            .push(meta.clone());
        self.joins.push((key, meta));
    }

    /// Removes the meta tracked by `conn_id`, if any.
    pub fn untrack(&mut self, conn_id: u64) -> bool {
        self.untrack_meta(conn_id).is_some()
    }

    /// Removes the meta tracked by `conn_id` and returns it with its key.
    pub fn untrack_meta(&mut self, conn_id: u64) -> Option<(String, Meta)> {
        let key = self.by_conn.remove(&conn_id)?;
        let metas = self.entries.get_mut(&key)?;
        let index = metas.iter().position(|m| m.conn_id == conn_id)?;
        let meta = metas.remove(index);
        if metas.is_empty() {
            self.entries.remove(&key);
        }
        self.leaves.push((key.clone(), meta.clone()));
        Some((key, meta))
    }

    /// Whether nothing is present and nothing is pending.
    pub fn is_empty(&self) -> bool {
        self.entries.is_empty() && self.joins.is_empty() && self.leaves.is_empty()
    }

    /// Whether changes wait for the next flush.
    pub fn has_pending(&self) -> bool {
        !self.joins.is_empty() || !self.leaves.is_empty()
    }

    /// The keys present (user ids as strings), each once.
    pub fn keys(&self) -> impl Iterator<Item = &str> {
        self.entries.keys().map(String::as_str)
    }

    /// Number of metas present.
    pub fn len(&self) -> usize {
        self.entries.values().map(Vec::len).sum()
    }

    /// The `presence_state` payload, `{key: {metas: [...]}}`, holding at
    /// most `limit` metas (0 = all): past the limit, the ones that joined
    /// most recently, so its size is bounded however many users or tabs
    /// are online. The cached copy is used whatever `limit` is (callers
    /// pass the configured one).
    pub fn state(&mut self, limit: usize) -> Arc<str> {
        if let Some(state) = &self.state {
            return state.clone();
        }
        // Past the limit, only metas tracked at or after the `limit`-th newest.
        let mut oldest_shown = 0;
        if limit > 0 {
            let mut joined: Vec<u64> = self.entries.values().flatten().map(|m| m.joined).collect();
            if joined.len() > limit {
                let (_, nth, _) = joined.select_nth_unstable_by(limit - 1, |a, b| b.cmp(a));
                oldest_shown = *nth;
            }
        }
        let view: BTreeMap<&str, Metas<'_>> = self
            .entries
            .iter()
            .filter_map(|(key, metas)| {
                let metas: Vec<&Meta> = metas.iter().filter(|m| m.joined >= oldest_shown).collect();
                (!metas.is_empty()).then_some((key.as_str(), Metas { metas }))
            })
            .collect();
        let state: Arc<str> =
            Arc::from(serde_json::to_string(&view).unwrap_or_else(|_| "{}".into()));
        self.state = Some(state.clone());
        state
    }

    /// Takes the pending changes as a `presence_diff` payload `{joins, leaves}`
    /// (`None` when nothing changed) and drops the cached state.
    pub fn flush(&mut self) -> Option<serde_json::Value> {
        if !self.has_pending() {
            return None;
        }
        self.state = None;
        let group = |changes: Vec<(String, Meta)>| {
            let mut grouped: BTreeMap<String, Vec<Meta>> = BTreeMap::new();
            for (key, meta) in changes {
                grouped.entry(key).or_default().push(meta);
            }
            grouped
                .into_iter()
                .map(|(key, metas)| (key, serde_json::json!({ "metas": metas })))
                .collect::<serde_json::Map<_, _>>()
        };
        let joins = group(std::mem::take(&mut self.joins));
        let leaves = group(std::mem::take(&mut self.leaves));
        Some(serde_json::json!({ "joins": joins, "leaves": leaves }))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn meta(r: &str, conn_id: u64) -> Meta {
        Meta {
            phx_ref: r.into(),
            online_at: 1,
            username: "ada".into(),
            display_name: "Ada".into(),
            bot: false,
            conn_id,
            joined: 0,
        }
    }

    #[test]
    fn two_tabs_are_one_key_with_two_metas() {
        let mut p = Presence::default();
        p.track("1".into(), meta("A", 10));
        p.track("1".into(), meta("B", 11));
        let state: serde_json::Value = serde_json::from_str(&p.state(0)).unwrap();
        assert_eq!(state["1"]["metas"].as_array().unwrap().len(), 2);
        let diff = p.flush().unwrap();
        assert_eq!(diff["joins"]["1"]["metas"].as_array().unwrap().len(), 2);
        assert_eq!(diff["leaves"], json!({}));
        assert!(p.untrack(10));
        let diff = p.flush().unwrap();
        assert_eq!(diff["leaves"]["1"]["metas"][0]["phx_ref"], "A");
        assert_eq!(diff["joins"], json!({}));
        let state: serde_json::Value = serde_json::from_str(&p.state(0)).unwrap();
        assert_eq!(state["1"]["metas"][0]["phx_ref"], "B");
        assert!(p.untrack(11));
        p.flush();
        assert!(p.is_empty());
        assert!(!p.untrack(11));
    }

    #[test]
    fn a_limited_state_lists_the_most_recent_presences() {
        let mut p = Presence::default();
        for user in 1..=5 {
            let mut m = meta(&format!("R{user}"), user);
            m.online_at = 100 + user as i64;
            p.track(user.to_string(), m);
        }
        // User 1 opens a second tab last: that tab is listed, its first is not.
        let mut late = meta("R1b", 9);
        late.online_at = 200;
        p.track("1".into(), late);
        let state: serde_json::Value = serde_json::from_str(&p.state(3)).unwrap();
        let mut keys: Vec<&str> = state
            .as_object()
            .unwrap()
            .keys()
            .map(|k| k.as_str())
            .collect();
        keys.sort();
        assert_eq!(keys, ["1", "4", "5"]);
        assert_eq!(
            state["1"]["metas"],
            json!([{"phx_ref": "R1b", "online_at": 200, "username": "ada", "display_name": "Ada"}])
        );
        p.flush();
        let all: serde_json::Value = serde_json::from_str(&p.state(0)).unwrap();
        assert_eq!(all.as_object().unwrap().len(), 5);
        assert_eq!(all["1"]["metas"].as_array().unwrap().len(), 2);
    }

    #[test]
    fn one_user_with_many_tabs_is_limited_too() {
        let mut p = Presence::default();
        // All in one millisecond, refs that do not sort as text ("T9" > "T10"):
        // tracking order alone decides.
        for tab in 0..50 {
            p.track("7".into(), meta(&format!("T{tab}"), tab));
        }
        let state: serde_json::Value = serde_json::from_str(&p.state(10)).unwrap();
        let refs: Vec<&str> = state["7"]["metas"]
            .as_array()
            .unwrap()
            .iter()
            .map(|m| m["phx_ref"].as_str().unwrap())
            .collect();
        // The ten newest tabs, in the order they joined.
        let expected: Vec<String> = (40..50).map(|tab| format!("T{tab}")).collect();
        assert_eq!(refs, expected);
    }

    #[test]
    fn state_is_cached_until_flush_and_conn_ids_stay_private() {
        let mut p = Presence::default();
        p.track("2".into(), meta("C", 5));
        let first = p.state(0);
        p.track("3".into(), meta("D", 6));
        assert!(Arc::ptr_eq(&first, &p.state(0)));
        assert!(!first.contains("conn_id"));
        p.flush();
        assert!(p.state(0).contains("\"3\""));
        assert!(p.flush().is_none());
    }
}
