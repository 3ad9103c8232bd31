//! The LongPoll transport at `/socket/longpoll`, for networks that block
//! WebSockets (phoenix-protocol.md §6). A LongPoll session is one more
//! socket kind to the hub: it runs the same [`Session`] routing, limits and
//! presence as a WebSocket, but frames arrive in POST bodies and leave in
//! GET responses. Every answer is HTTP 200 with the logical status in the
//! JSON body, as the client expects.

use std::collections::{HashMap, VecDeque};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use base64::Engine;
use bytes::Bytes;
use hyper::header::{HeaderValue, CACHE_CONTROL, CONTENT_TYPE, ORIGIN};
use hyper::Method;
use serde_json::{json, Value};
use tokio::sync::{mpsc, oneshot, Notify};
use tokio_tungstenite::tungstenite::Message;

use super::frame::Vsn;
use super::longpoll_route;
use super::session::{Closing, Session};
use super::upgrade::origin_allowed;
use crate::auth;
use crate::error::{Error, Result};
use crate::http::call::Call;
use crate::http::query;
use crate::http::reply::{self, HttpResponse};
use crate::hub::{ConnTx, Out, Outbox};
use crate::state::{AppState, State};

/// How long a GET is held when there is nothing to send.
pub const POLL_WINDOW: Duration = Duration::from_secs(10);
/// A session with no GET for this long ends (1.5 × the window).
pub const IDLE_LIMIT: Duration = Duration::from_secs(15);
/// Most frames one POST may carry.
pub const MAX_LINES: usize = 100;

/// Frames from one POST, and the signal that they were handled.
struct Post {
    frames: Vec<Frame>,
    done: oneshot::Sender<()>,
}

enum Frame {
    Text(String),
    Binary(Bytes),
}

/// The shared half of a LongPoll session: what GET and POST handlers touch.
pub struct LongPoll {
    inbox: mpsc::Sender<Post>,
    outbox: Mutex<VecDeque<String>>,
    ready: Notify,
    last_poll: Mutex<Instant>,
    closed: AtomicBool,
    max_buffered: usize,
}

impl LongPoll {
    fn touch(&self) {
        *self.last_poll.lock().unwrap_or_else(|p| p.into_inner()) = Instant::now();
    }

    fn idle_for(&self) -> Duration {
        self.last_poll
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .elapsed()
    }

    /// Queues text frames for the next GET; `false` if the buffer overflowed.
    fn queue(&self, frames: &mut Vec<Message>, metrics: &crate::metrics::Metrics) -> bool {
        metrics
            .frames_out
            .fetch_add(frames.len() as u64, Ordering::Relaxed);
        let mut outbox = self.outbox.lock().unwrap_or_else(|p| p.into_inner());
        for frame in frames.drain(..) {
            // Binary frames can't travel over LongPoll; none are produced for it.
            if let Message::Text(text) = frame {
                outbox.push_back(text.as_str().to_string());
            }
        }
        let ok = outbox.len() <= self.max_buffered;
        drop(outbox);
        self.ready.notify_waiters();
        ok
    }

    /// The buffered frames, oldest first: all of them, or with `budget`
    /// as many as fit in that many bytes of JSON (at least one).
    fn take(&self, budget: Option<usize>) -> Vec<String> {
        let mut outbox = self.outbox.lock().unwrap_or_else(|p| p.into_inner());
        let Some(budget) = budget else {
            return outbox.drain(..).collect();
        };
        let mut used = 0;
        let count = outbox
            .iter()
            .take_while(|frame| {
                used += json_string_len(frame) + 1;
                used <= budget
            })
            .count()
            .max(1)
            .min(outbox.len());
        outbox.drain(..count).collect()
    }
}

/// The length of `text` as a JSON string (quotes and escapes included),
/// as serde_json writes it.
fn json_string_len(text: &str) -> usize {
    2 + text
        .bytes()
        .map(|b| match b {
            b'"' | b'\\' | b'\n' | b'\r' | b'\t' | 0x08 | 0x0c => 2,
            0..=0x1f => 6,
            _ => 1,
        })
        .sum::<usize>()
}

/// The live LongPoll sessions, by session id.
#[derive(Default)]
pub struct LongPollSessions {
    sessions: Mutex<HashMap<String, Arc<LongPoll>>>,
    /// Requests passed to the nodes holding their sessions (cluster mode).
    pub(super) routed: super::longpoll_route::Counts,
}

impl LongPollSessions {
    fn get(&self, sid: &str) -> Option<Arc<LongPoll>> {
        self.sessions
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .get(sid)
            .cloned()
    }

    fn insert(&self, sid: String, session: Arc<LongPoll>) {
        self.sessions
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .insert(sid, session);
    }

    fn remove(&self, sid: &str) {
        self.sessions
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .remove(sid);
    }

    /// Number of live sessions.
    pub fn len(&self) -> usize {
        self.sessions
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .len()
    }

    /// Whether there are none.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

/// This node's LongPoll sessions (kept in the state's slot for them).
pub(super) fn sessions(state: &AppState) -> &LongPollSessions {
    state.longpoll.get()
}

/// A JSON answer with the headers Phoenix's LongPoll sends.
pub(super) fn answer(call: &Call, body: &Value) -> HttpResponse {
    let mut response = reply::json(200, body);
    longpoll_headers(call, &mut response);
    response
}

/// [`answer`] with a body already serialized (by the node holding the
/// session).
pub(super) fn answer_serialized(call: &Call, json: Bytes) -> HttpResponse {
    let mut response = reply::empty(200);
    *response.body_mut() = reply::body(json);
    longpoll_headers(call, &mut response);
    response
}

fn longpoll_headers(call: &Call, response: &mut HttpResponse) {
    let headers = response.headers_mut();
    headers.insert(
        CONTENT_TYPE,
        HeaderValue::from_static("application/json; charset=utf-8"),
    );
    headers.insert(CACHE_CONTROL, HeaderValue::from_static("no-store"));
    cors(call, response);
}

fn cors(call: &Call, response: &mut HttpResponse) {
    if let Some(origin) = call
        .header(ORIGIN)
        .and_then(|o| HeaderValue::from_str(o).ok())
    {
        response
            .headers_mut()
            .insert("access-control-allow-origin", origin);
    }
}

pub(super) fn status(call: &Call, code: u16) -> HttpResponse {
    answer(call, &json!({ "status": code }))
}

/// Handles `GET|POST|OPTIONS /socket/longpoll`.
pub async fn handle(call: &mut Call) -> Result<HttpResponse> {
    let state = call.state.clone();
    if call.parts.method == Method::OPTIONS {
        let mut response = reply::empty(200);
        let headers = response.headers_mut();
        if let Some(requested) = call
            .header("access-control-request-headers")
            .and_then(|v| HeaderValue::from_str(v).ok())
        {
            headers.insert("access-control-allow-headers", requested);
        }
        headers.insert(
            "access-control-allow-methods",
            HeaderValue::from_static("get, post, options"),
        );
        headers.insert("access-control-max-age", HeaderValue::from_static("3600"));
        cors(call, &mut response);
        return Ok(response);
    }
    if call.parts.method != Method::GET && call.parts.method != Method::POST {
        return Ok(reply::empty(400));
    }
    if !origin_allowed(
        &state.cfg.allowed_origins,
        call.header(ORIGIN),
        call.header(hyper::header::HOST),
    ) {
        return Ok(status(call, 403));
    }
    let params = query::pairs(call.parts.uri.query());
    let session_token = call
        .header("x-phoenix-longpoll-token")
        .map(str::to_string)
        .or_else(|| query::last(&params, "token").map(str::to_string));
    let claims = session_token
        .as_deref()
        .and_then(|t| state.keys.verify_session(t));
    if call.parts.method == Method::POST {
        let Some(claims) = claims else {
            return Ok(status(call, 410));
        };
        if let Some((cluster, node)) = longpoll_route::holder(&state, &claims) {
            return longpoll_route::post(call, &state, cluster, node, &claims.sid).await;
        }
        return post(call, &state, &claims.sid).await;
    }
    match claims {
        Some(claims) => {
            let token = session_token.as_deref().unwrap_or("");
            if let Some((cluster, node)) = longpoll_route::holder(&state, &claims) {
                return Ok(
                    longpoll_route::poll(call, &state, cluster, node, &claims.sid, token).await,
                );
            }
            Ok(answer(call, &poll(&state, &claims.sid, token, None).await))
        }
        None => open(call, &state, &params).await,
    }
}

/// GET without a session: authenticate like a WebSocket connect and start one.
async fn open(call: &mut Call, state: &State, params: &[(String, String)]) -> Result<HttpResponse> {
    let Some(vsn) = Vsn::negotiate(query::last(params, "vsn")) else {
        return Ok(status(call, 403));
    };
    // The user's own `token` param comes first; a stale session token may follow it.
    let user_token = call
        .header("x-phoenix-authtoken")
        .map(str::to_string)
        .or_else(|| {
            params
                .iter()
                .find(|(k, _)| k == "token")
                .map(|(_, v)| v.clone())
        });
    let Some(user_token) = user_token else {
        return Ok(status(call, 403));
    };
    let identity = match auth::authenticate(&state.keys, &state.store, &user_token).await {
        Ok(identity) => identity,
        Err(Error::Unauthorized) => {
            crate::metrics::Metrics::inc(&state.metrics.auth_failures);
            return Ok(status(call, 403));
        }
        Err(other) => {
            tracing::error!(error = %other, "longpoll connect failed");
            return Ok(status(call, 500));
        }
    };
    // The client only understands 200, 204, 403, 410 and 500 from a GET;
    // 500 makes it retry with backoff.
    if state.hub.socket_count() >= state.socket_capacity.load(Ordering::Relaxed) {
        return Ok(status(call, 500));
    }
    let (conn, outbound) = ConnTx::new(
        state.next_conn_id(),
        identity.user.id,
        state.cfg.outbound_queue_frames,
    );
    let Ok(registration) = state.hub.register(&conn, state.cfg.max_sockets_per_user) else {
        return Ok(status(call, 500));
    };
    let sid = auth::random_token(18);
    let node = state.cluster.as_ref().map(|cluster| cluster.node());
    let token = state.keys.issue_session(identity.user.id, &sid, node)?;
    let (inbox, posts) = mpsc::channel(8);
    let shared = Arc::new(LongPoll {
        inbox,
        outbox: Mutex::new(VecDeque::new()),
        ready: Notify::new(),
        last_poll: Mutex::new(Instant::now()),
        closed: AtomicBool::new(false),
        max_buffered: state.cfg.outbound_queue_frames,
    });
    sessions(state).insert(sid.clone(), shared.clone());
    let mut session = Session::new(state.clone(), registration, conn, vsn, identity);
    session.binary_frames = false;
    session.ignores = Arc::new(
        state
            .store
            .ignores(session.identity.user.id)
            .await
            .unwrap_or_default(),
    );
    let ended = Ended {
        state: state.clone(),
        sid: sid.clone(),
        shared: shared.clone(),
    };
    state.sessions.spawn(async move {
        let _ended = ended;
        run(session, shared, posts, outbound).await;
    });
    Ok(answer(
        call,
        &json!({"status": 410, "token": token, "messages": []}),
    ))
}

/// Ends a LongPoll session however its task ends (returning, a panic,
/// cancelled): waiting polls are woken and answered 410, and the id is
/// forgotten. The session itself leaves its channels when dropped.
struct Ended {
    state: crate::state::State,
    sid: String,
    shared: Arc<LongPoll>,
}

impl Drop for Ended {
    fn drop(&mut self) {
        self.shared.closed.store(true, Ordering::Release);
        self.shared.ready.notify_waiters();
        sessions(&self.state).remove(&self.sid);
    }
}

/// The answer to a GET for session `sid` held here: its buffered frames
/// (with `budget`, at most about that many bytes of them), or 204 after
/// the window.
pub(super) async fn poll(state: &AppState, sid: &str, token: &str, budget: Option<usize>) -> Value {
    let Some(session) = sessions(state).get(sid) else {
        return json!({ "status": 410 });
    };
    session.touch();
    let deadline = tokio::time::Instant::now() + POLL_WINDOW;
    loop {
        let ready = session.ready.notified();
        tokio::pin!(ready);
        ready.as_mut().enable();
        let messages = session.take(budget);
        if !messages.is_empty() {
            session.touch();
            return json!({"status": 200, "token": token, "messages": messages});
        }
        if session.closed.load(Ordering::Acquire) {
            return json!({ "status": 410 });
        }
        tokio::select! {
            () = &mut ready => {}
            () = tokio::time::sleep_until(deadline) => {
                session.touch();
                return json!({"status": 204, "token": token, "messages": []});
            }
            () = state.shutdown.cancelled() => return json!({ "status": 410 }),
        }
    }
}

/// POST: hands every line to the session and answers once they are handled.
async fn post(call: &mut Call, state: &AppState, sid: &str) -> Result<HttpResponse> {
    let Some(session) = sessions(state).get(sid) else {
        return Ok(status(call, 410));
    };
    let ndjson = is_ndjson(call);
    let body = match post_body(call).await? {
        Ok(body) => body,
        Err(too_large) => return Ok(too_large),
    };
    Ok(answer(call, &deliver(state, &session, &body, ndjson).await))
}

/// Whether a POST body is ndjson (one frame per line) rather than one frame.
pub(super) fn is_ndjson(call: &Call) -> bool {
    call.header(CONTENT_TYPE)
        .is_some_and(|t| t.starts_with("application/x-ndjson"))
}

/// A POST's body, or the answer when it is too large.
pub(super) async fn post_body(call: &mut Call) -> Result<std::result::Result<Bytes, HttpResponse>> {
    match call.body_bytes().await {
        Ok(body) => Ok(Ok(body)),
        Err(Error::PayloadTooLarge(_)) => Ok(Err(answer(
            call,
            &json!({"status": 413, "error": "the body is too large"}),
        ))),
        Err(e) => Err(e),
    }
}

/// The answer to a POST of `body` to session `sid` held here.
pub(super) async fn post_here(state: &AppState, sid: &str, body: &[u8], ndjson: bool) -> Value {
    match sessions(state).get(sid) {
        Some(session) => deliver(state, &session, body, ndjson).await,
        None => json!({ "status": 410 }),
    }
}

/// Hands every frame of a POST body to `session`; answers once they are
/// handled.
async fn deliver(state: &AppState, session: &LongPoll, body: &[u8], ndjson: bool) -> Value {
    let frames = match parse_body(body, ndjson, state.cfg.max_frame_bytes) {
        Ok(frames) => frames,
        Err(message) => return json!({"status": 400, "error": message}),
    };
    let (done, handled) = oneshot::channel();
    if session.inbox.send(Post { frames, done }).await.is_err() {
        return json!({ "status": 410 });
    }
    match tokio::time::timeout(POLL_WINDOW, handled).await {
        Ok(Ok(())) => json!({ "status": 200 }),
        Ok(Err(_)) => json!({ "status": 410 }),
        Err(_) => json!({ "status": 408 }),
    }
}

/// Splits a POST body into frames: ndjson lines starting with `[` are text
/// frames, other lines are base64 binary frames; a non-ndjson body is one
/// text frame.
fn parse_body(
    body: &[u8],
    ndjson: bool,
    max_frame: usize,
) -> std::result::Result<Vec<Frame>, String> {
    let text = std::str::from_utf8(body).map_err(|_| "the body is not UTF-8".to_string())?;
    if !ndjson {
        return Ok(vec![Frame::Text(text.to_string())]);
    }
    let lines: Vec<&str> = text
        .split('\n')
        .map(|l| l.trim_end_matches('\r'))
        .filter(|l| !l.is_empty())
        .collect();
    if lines.len() > MAX_LINES {
        return Err(format!("at most {MAX_LINES} frames per POST"));
    }
    lines
        .into_iter()
        .map(|line| {
            if line.len() > max_frame * 4 / 3 + 4 {
                return Err(format!("a frame is larger than {max_frame} bytes"));
            }
            if line.starts_with('[') {
                Ok(Frame::Text(line.to_string()))
            } else {
                base64::engine::general_purpose::STANDARD
                    .decode(line)
                    .map(|bytes| Frame::Binary(Bytes::from(bytes)))
                    .map_err(|_| "a line is neither a JSON frame nor base64".to_string())
            }
        })
        .collect()
}

/// The session task: frames from POSTs in, hub traffic out to the buffer.
async fn run(
    mut session: Session,
    shared: Arc<LongPoll>,
    mut posts: mpsc::Receiver<Post>,
    mut outbound: Outbox,
) {
    let mut batch: Vec<Out> = Vec::with_capacity(64);
    let mut frames: Vec<Message> = Vec::new();
    let mut idle_check = tokio::time::interval(Duration::from_secs(1));
    let closing: Option<Closing> = loop {
        // A close order (slowness, shutdown) goes before anything else, as
        // `recv_many` below only hears it when posts leave it a turn.
        if let Some(reason) = session.conn.closing() {
            break Some(Closing::from(reason));
        }
        tokio::select! {
            biased;
            _ = idle_check.tick() => {
                if shared.idle_for() > IDLE_LIMIT {
                    break Some(Closing::IDLE);
                }
            }
            post = posts.recv() => {
                let Some(post) = post else { break None };
                let mut failed = None;
                session.state.metrics.frames_in.fetch_add(post.frames.len() as u64, Ordering::Relaxed);
                for frame in post.frames {
                    let result = match frame {
                        Frame::Text(text) => session.on_text(&text, &mut frames).await,
                        Frame::Binary(data) => session.on_binary(data, &mut frames).await,
                    };
                    if let Err(closing) = result {
                        failed = Some(closing);
                        break;
                    }
                }
                let overflow = !shared.queue(&mut frames, &session.state.metrics);
                let _ = post.done.send(());
                if let Some(closing) = failed {
                    break Some(closing);
                }
                if overflow {
                    break Some(Closing::SLOW);
                }
            }
            // Queued frames, or the hub's order to close (slowness, shutdown).
            received = outbound.recv_many(&mut batch, 64) => {
                if let Err(reason) = received {
                    break Some(Closing::from(reason));
                }
                let recheck = session.render(&mut batch, &mut frames);
                if !shared.queue(&mut frames, &session.state.metrics) {
                    break Some(Closing::SLOW);
                }
                if recheck && !session.credentials_valid().await {
                    break Some(Closing::REVOKED);
                }
            }
        }
    };
    if let Some(closing) = closing {
        tracing::debug!(
            conn = session.conn.id(),
            reason = closing.reason,
            "longpoll session ended"
        );
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn splits_bodies() {
        let frames = parse_body(
            b"[\"1\",\"1\",\"t\",\"phx_join\",{}]\r\nAAEC\n\n",
            true,
            1024,
        )
        .unwrap();
        assert_eq!(frames.len(), 2);
        assert!(matches!(&frames[0], Frame::Text(t) if t.starts_with('[')));
        assert!(matches!(&frames[1], Frame::Binary(b) if b.as_ref() == [0, 1, 2]));
        assert!(matches!(
            &parse_body(b"{\"topic\":1}", false, 1024).unwrap()[0],
            Frame::Text(_)
        ));
        assert!(parse_body(b"not base64!\n", true, 1024).is_err());
        let many = "[]\n".repeat(MAX_LINES + 1);
        assert!(parse_body(many.as_bytes(), true, 1024).is_err());
    }

    #[test]
    fn json_string_len_is_what_serde_json_writes() {
        for text in [
            "",
            "plain",
            "[\"1\",null,{\"a\":\"\\\\\"}]",
            "é\u{1F600}/",
            "\n\r\t\u{8}\u{c}\u{1}\u{1f}\u{7f}",
        ] {
            assert_eq!(
                json_string_len(text),
                serde_json::to_string(text).unwrap().len(),
                "{text:?}"
            );
        }
    }

    #[test]
    fn a_budget_takes_the_oldest_frames_that_fit() {
        let (inbox, _posts) = mpsc::channel(1);
        let session = LongPoll {
            inbox,
            outbox: Mutex::new(VecDeque::new()),
            ready: Notify::new(),
            last_poll: Mutex::new(Instant::now()),
            closed: AtomicBool::new(false),
            max_buffered: 100,
        };
        let fill = |frames: &[&str]| {
            let mut outbox = session.outbox.lock().unwrap();
            outbox.extend(frames.iter().map(|f| f.to_string()));
        };
        fill(&["aaaa", "bbbb", "cccc"]);
        // Each takes 4 + 2 quotes + 1 comma = 7 bytes.
        assert_eq!(session.take(Some(14)), ["aaaa", "bbbb"]);
        assert_eq!(session.take(Some(13)), ["cccc"]);
        assert!(session.take(Some(100)).is_empty());
        // One frame larger than the budget still goes, alone.
        fill(&["a long frame", "x"]);
        assert_eq!(session.take(Some(3)), ["a long frame"]);
        fill(&["y"]);
        assert_eq!(session.take(None), ["x", "y"]);
    }
}
