//! Mentions (api.md §5): `@username` and `@here` in a body, resolved when
//! the message is stored to the users who may read the topic (`@here`: the
//! users present on the topic then, not the author); the `mention` event on
//! `user:<id>` for each newly mentioned user who does not ignore the author;
//! and the unread mentions that reading clears.
//!
//! An edit resolves the new body again: users no longer named lose their
//! unread mention, users newly named are notified; a delete drops the
//! message's mentions and their unread marks. The author is never notified
//! of their own mention.

use std::sync::Arc;

use serde_json::json;

use super::topic::personal;
use super::views::UserBrief;
use crate::hub::{Broadcast, Hub};
use crate::store::ops::MentionQuery;

/// Most names looked up in one body.
const MAX_NAMES: usize = 50;
/// Longest snippet of the body a `mention` event carries, in characters.
const SNIPPET_CHARS: usize = 140;

/// Whether `c` may appear in a username (api.md §2, any case).
fn username_char(c: char) -> bool {
    c.is_ascii_alphanumeric() || c == '_' || c == '.' || c == '-'
}

/// What a body names: per `@token` the lowercase spellings to try (the
/// token, then without trailing punctuation), and whether it says `@here`.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Names {
    pub names: Vec<Vec<String>>,
    pub here: bool,
}

/// The names in `body`; `None` when it has no `@` at all (the common case,
/// which then costs one scan of the body and no store lookups).
pub fn parse(body: &str) -> Option<Names> {
    if !body.contains('@') {
        return None;
    }
    let mut out = Names::default();
    let mut previous: Option<char> = None;
    for (at, c) in body.char_indices() {
        let starts = c == '@' && !previous.is_some_and(|p| username_char(p) || p == '@');
        previous = Some(c);
        if !starts {
            continue;
        }
        let rest = &body[at + 1..];
        let end = rest.find(|c: char| !username_char(c)).unwrap_or(rest.len());
        let token = rest[..end].to_ascii_lowercase();
        let trimmed = token.trim_end_matches(['.', '-', '_']).to_string();
        if trimmed == "here" {
            out.here = true;
            continue;
        }
        let mut spellings = Vec::with_capacity(2);
        if (3..=32).contains(&token.len()) {
            spellings.push(token.clone());
        }
        if trimmed != token && (3..=32).contains(&trimmed.len()) {
            spellings.push(trimmed);
        }
        if !spellings.is_empty() && !out.names.contains(&spellings) {
            out.names.push(spellings);
        }
        if out.names.len() == MAX_NAMES {
            break;
        }
    }
    (!out.names.is_empty() || out.here).then_some(out)
}

/// What the store needs to resolve the mentions of `body` posted by
/// `author` on `topic`: the names and, for `@here`, who is present on the
/// topic now (without the author). `None` if it names nobody.
pub fn query(hub: &Hub, topic: &str, author: u64, body: &str) -> Option<MentionQuery> {
    let names = parse(body)?;
    let present = if names.here {
        let mut present = hub.present_users(topic);
        present.retain(|&id| id != author);
        present
    } else {
        Vec::new()
    };
    Some(MentionQuery {
        names: names.names,
        present,
    })
}

/// The start of a body, for a notification.
pub fn snippet(body: &str) -> String {
    let body = body.trim();
    match body.char_indices().nth(SNIPPET_CHARS) {
        Some((cut, _)) => format!("{}…", body[..cut].trim_end()),
        None => body.to_string(),
    }
}

/// Sends `mention {topic, seq, author, snippet}` to each user's personal
/// topic (every socket of theirs that joined it). The author is the
/// broadcast's author, so a socket whose user ignores them drops it too.
pub fn notify(hub: &Hub, users: &[u64], topic: &str, seq: u64, author: &UserBrief, body: &str) {
    if users.is_empty() {
        return;
    }
    let payload = json!({
        "topic": topic,
        "seq": seq,
        "author": author,
        "snippet": snippet(body),
    });
    for &user in users {
        let personal: Arc<str> = Arc::from(personal(user));
        if !hub.is_heard(&personal) {
            continue;
        }
        let mut broadcast = Broadcast::new(personal, "mention", &payload);
        broadcast.author = Some(author.id);
        hub.publish(Arc::new(broadcast));
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn names(body: &str) -> Vec<Vec<String>> {
        parse(body).map(|n| n.names).unwrap_or_default()
    }

    #[test]
    fn finds_names_and_here() {
        assert_eq!(parse("no at sign"), None);
        assert_eq!(names("hi @Bob and @ada_l!"), [vec!["bob"], vec!["ada_l"]]);
        assert_eq!(names("@bob, @bob"), [vec!["bob"]]);
        assert_eq!(names("thanks @bob."), [vec!["bob.", "bob"]]);
        assert!(parse("@here look").unwrap().here);
        assert!(parse("hey @here.").unwrap().here);
        assert!(parse("@here").unwrap().names.is_empty());
    }

    #[test]
    fn ignores_addresses_and_odd_tokens() {
        assert_eq!(parse("mail ada@example.com"), None);
        assert_eq!(parse("@@bob"), None);
        assert_eq!(parse("@ab is too short, @ alone"), None);
        assert_eq!(
            names(&format!("@{}", "x".repeat(33))),
            Vec::<Vec<String>>::new()
        );
        let many: String = (0..80).map(|i| format!("@user{i} ")).collect();
        assert_eq!(names(&many).len(), MAX_NAMES);
    }

    #[test]
    fn snippets_are_short() {
        assert_eq!(snippet("  hi @bob  "), "hi @bob");
        let long = "é".repeat(200);
        let cut = snippet(&long);
        assert_eq!(cut.chars().count(), SNIPPET_CHARS + 1);
        assert!(cut.ends_with('…'));
    }
}
