//! LongPoll in a cluster, behind a load balancer without sticky sessions.
//! A session lives on the node that opened it, and its token names that
//! node (signed with the session, so a client cannot point a request at
//! another subject). A GET or POST that arrives at another node is passed
//! to the holder over the bus (request/reply on `confab.node.<node>.longpoll`,
//! as Phoenix routes LongPoll requests over PubSub); the holder runs the
//! same poll or post on its session and sends back the JSON body, which
//! this node answers with the usual LongPoll headers. When the holder does
//! not answer (it is gone, or the bus is down) the request gets what a
//! gone session gets, `{"status":410}`, and the client opens a new session.
//!
//! Only the socket layer knows about LongPoll: the cluster offers a
//! request to a node's service ([`Cluster::ask`]) and serving one
//! ([`Cluster::serve`]).

use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use bytes::Bytes;
use serde::{Deserialize, Serialize};
use serde_json::{json, Value};

use super::longpoll::{self, POLL_WINDOW};
use crate::auth::token::SessionClaims;
use crate::cluster::{AskError, Cluster};
use crate::error::Result;
use crate::http::call::Call;
use crate::http::reply::HttpResponse;
use crate::state::{AppState, State};

/// The bus service that takes forwarded LongPoll requests.
pub const SERVICE: &str = "longpoll";

/// How long a forwarded request may take: the holder holds a GET (and
/// waits for a POST's frames to be handled) up to the poll window.
pub const FORWARD_TIMEOUT: Duration = Duration::from_secs(POLL_WINDOW.as_secs() + 5);

/// Room kept in a forwarded poll's answer for all but its messages (the
/// status and the session token).
const ANSWER_ROOM: usize = 4096;

/// The encoding's version (requests and answers); a node answers what it
/// cannot read as a server error.
const VERSION: u8 = 1;

/// Counts for `/metrics`.
#[derive(Default)]
pub struct Counts {
    forwarded: AtomicU64,
    unanswered: AtomicU64,
}

/// A request passed to the node holding its session.
#[derive(Debug, PartialEq, Eq, Serialize, Deserialize)]
enum Forwarded {
    /// A GET: the session's frames, or 204 after the window.
    Poll { sid: String, token: String },
    /// A POST of `body` (ndjson lines, or one frame).
    Post {
        sid: String,
        ndjson: bool,
        body: Vec<u8>,
    },
}

fn encode(request: &Forwarded) -> Vec<u8> {
    let mut bytes = vec![VERSION];
    // Serializing this plain structure to a Vec cannot fail.
    if let Err(e) = bincode::serialize_into(&mut bytes, request) {
        tracing::error!(error = %e, "a LongPoll request did not serialize");
    }
    bytes
}

fn decode(bytes: &[u8]) -> std::result::Result<Forwarded, String> {
    match bytes.split_first() {
        Some((&VERSION, rest)) => {
            bincode::deserialize(rest).map_err(|e| format!("unreadable LongPoll request: {e}"))
        }
        Some((version, _)) => Err(format!("LongPoll request of version {version}")),
        None => Err("empty LongPoll request".into()),
    }
}

/// The cluster and the id of the node holding the session of `claims`,
/// when that is another node. On a single node, or for a session held
/// here, `None`: the request is handled here as always.
pub(super) fn holder<'a>(
    state: &'a AppState,
    claims: &'a SessionClaims,
) -> Option<(&'a Cluster, &'a str)> {
    let cluster = state.cluster.as_deref()?;
    let node = claims.node.as_deref()?;
    (node != cluster.node()).then_some((cluster, node))
}

/// A GET for a session held by `node`.
pub(super) async fn poll(
    call: &Call,
    state: &AppState,
    cluster: &Cluster,
    node: &str,
    sid: &str,
    token: &str,
) -> HttpResponse {
    let request = Forwarded::Poll {
        sid: sid.to_owned(),
        token: token.to_owned(),
    };
    forward(call, state, cluster, node, &request).await
}

/// A POST for a session held by `node`: the body is read (and its size
/// checked) here.
pub(super) async fn post(
    call: &mut Call,
    state: &AppState,
    cluster: &Cluster,
    node: &str,
    sid: &str,
) -> Result<HttpResponse> {
    let ndjson = longpoll::is_ndjson(call);
    let body = match longpoll::post_body(call).await? {
        Ok(body) => body,
        Err(too_large) => return Ok(too_large),
    };
    let request = Forwarded::Post {
        sid: sid.to_owned(),
        ndjson,
        body: body.to_vec(),
    };
    Ok(forward(call, state, cluster, node, &request).await)
}

async fn forward(
    call: &Call,
    state: &AppState,
    cluster: &Cluster,
    node: &str,
    request: &Forwarded,
) -> HttpResponse {
    let counts = &longpoll::sessions(state).routed;
    counts.forwarded.fetch_add(1, Ordering::Relaxed);
    let asked = cluster.ask(node, SERVICE, encode(request), FORWARD_TIMEOUT);
    let answer = tokio::select! {
        answer = asked => answer,
        // As a poll held here answers at shutdown.
        () = state.shutdown.cancelled() => return longpoll::status(call, 410),
    };
    let failure = match answer {
        Ok(bytes) => match bytes.split_first() {
            Some((&VERSION, _)) => return longpoll::answer_serialized(call, bytes.slice(1..)),
            _ => AskError::NoAnswer("an answer of another version".into()),
        },
        Err(AskError::TooLarge) => {
            return longpoll::answer(
                call,
                &json!({"status": 413, "error": "the body is too large"}),
            )
        }
        Err(failure) => failure,
    };
    counts.unanswered.fetch_add(1, Ordering::Relaxed);
    tracing::debug!(node, error = %failure, "a forwarded LongPoll request got no answer");
    longpoll::status(call, 410)
}

/// Starts answering the requests other nodes pass to this one, in cluster
/// mode, until shutdown. Returns once they can arrive.
pub async fn serve(state: &State) -> std::result::Result<(), String> {
    let Some(cluster) = state.cluster.clone() else {
        return Ok(());
    };
    let here = state.clone();
    cluster
        .serve(
            SERVICE,
            move |bytes| {
                let state = here.clone();
                async move { answer_here(&state, &bytes).await }
            },
            state.shutdown.clone(),
        )
        .await
}

/// Runs a forwarded request on the session held here; the answer is the
/// version byte and the JSON body, sized to fit the bus.
async fn answer_here(state: &AppState, bytes: &Bytes) -> Vec<u8> {
    let max = state
        .cluster
        .as_ref()
        .map_or(usize::MAX, |c| c.max_payload());
    let budget = max.saturating_sub(ANSWER_ROOM).max(1);
    let body = match decode(bytes) {
        Ok(Forwarded::Poll { sid, token }) => {
            longpoll::poll(state, &sid, &token, Some(budget)).await
        }
        Ok(Forwarded::Post { sid, ndjson, body }) => {
            longpoll::post_here(state, &sid, &body, ndjson).await
        }
        Err(e) => {
            tracing::warn!(error = %e, "dropped a forwarded LongPoll request");
            json!({ "status": 500 })
        }
    };
    let answer = encode_answer(&body);
    if answer.len() > max {
        // One frame larger than the bus carries: it is lost; the client
        // reconnects and its channels rejoin from history.
        tracing::warn!(
            bytes = answer.len(),
            max,
            "a LongPoll answer is larger than the bus carries"
        );
        return encode_answer(&json!({ "status": 410 }));
    }
    answer
}

/// An answer on the wire: the version byte, then the JSON body.
fn encode_answer(body: &Value) -> Vec<u8> {
    let mut answer = vec![VERSION];
    // Writing a JSON value to a Vec cannot fail.
    let _ = serde_json::to_writer(&mut answer, body);
    answer
}

/// The LongPoll lines of `/metrics` (cluster mode).
pub fn render_metrics(state: &AppState, out: &mut String) {
    use std::fmt::Write as _;
    let counts = &longpoll::sessions(state).routed;
    let lines = [
        (
            "confab_longpoll_forwarded_total",
            "LongPoll requests this node passed to the node holding their session.",
            counts.forwarded.load(Ordering::Relaxed),
        ),
        (
            "confab_longpoll_forward_failures_total",
            "Of those, the ones no node answered (answered as a gone session).",
            counts.unanswered.load(Ordering::Relaxed),
        ),
    ];
    for (name, help, value) in lines {
        let _ = writeln!(
            out,
            "# HELP {name} {help}\n# TYPE {name} counter\n{name} {value}"
        );
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn requests_round_trip() {
        let post = Forwarded::Post {
            sid: "s".into(),
            ndjson: true,
            body: b"[1]\nAAE=\n".to_vec(),
        };
        assert_eq!(decode(&encode(&post)).unwrap(), post);
        let poll = Forwarded::Poll {
            sid: "s".into(),
            token: "t".into(),
        };
        let mut bytes = encode(&poll);
        assert_eq!(decode(&bytes).unwrap(), poll);
        bytes[0] = VERSION + 1;
        assert!(decode(&bytes).unwrap_err().contains("version"));
        assert!(decode(&[]).is_err());
    }

    #[test]
    fn forwarding_waits_longer_than_a_held_poll() {
        assert!(FORWARD_TIMEOUT > POLL_WINDOW);
    }
}
