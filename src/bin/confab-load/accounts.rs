//! Credentials and set-up before a run: the tokens sockets connect with
//! (given with `--token`, or registered/logged in over HTTP with
//! `--register-prefix`), and, for confab, creating the rooms the topics
//! name (`--create-rooms`).

use serde_json::json;

use crate::cli::Common;
use crate::http::HttpBase;

/// The HTTP base for set-up requests (`--http` or derived from the first
/// `--url`: with several, they share one database and one secret).
async fn http_base(common: &Common) -> Result<HttpBase, String> {
    let url = match &common.http {
        Some(url) => url.clone(),
        None => HttpBase::url_for_ws(common.first_url())?,
    };
    HttpBase::parse(&url).await
}

/// The tokens to connect with; empty means "no token param".
pub async fn tokens(common: &Common) -> Result<Vec<String>, String> {
    if !common.tokens.is_empty() {
        return Ok(common.tokens.clone());
    }
    let Some(prefix) = &common.register_prefix else {
        return Ok(Vec::new());
    };
    let http = http_base(common).await?;
    let mut tokens = Vec::with_capacity(common.users);
    for i in 0..common.users.max(1) {
        let username = format!("{prefix}-{i}");
        let credentials = json!({"username": username, "password": common.password});
        let (status, body) = http
            .request("POST", "/api/register", None, Some(&credentials))
            .await?;
        let (status, body) = if status == 201 || status == 200 {
            (status, body)
        } else {
            // Taken already (a rerun against the same server): log in instead.
            http.request("POST", "/api/login", None, Some(&credentials))
                .await?
        };
        match body.get("token").and_then(|t| t.as_str()) {
            Some(token) if (200..300).contains(&status) => tokens.push(token.to_string()),
            _ => {
                return Err(format!(
                    "cannot register or log in {username}: HTTP {status} {body}"
                ))
            }
        }
    }
    Ok(tokens)
}

/// Creates the room of every `room:<name>` topic in `topics` (confab's
/// `POST /api/rooms`); an existing room (409, or 422 "is already taken")
/// is fine. Returns how many
/// were created.
pub async fn create_rooms(
    common: &Common,
    token: Option<&str>,
    topics: &[String],
) -> Result<usize, String> {
    let http = http_base(common).await?;
    let mut created = 0;
    for topic in topics {
        let Some(name) = topic.strip_prefix("room:") else {
            continue;
        };
        let (status, body) = http
            .request("POST", "/api/rooms", token, Some(&json!({"name": name})))
            .await?;
        match status {
            200 | 201 => created += 1,
            409 => {}
            422 if body.to_string().contains("taken") => {}
            _ => return Err(format!("cannot create room {name:?}: HTTP {status} {body}")),
        }
    }
    Ok(created)
}
