//! `GET /api/search` (api.md §5): parses the query string, checks a
//! `topic` filter like history does, and runs the search off the runtime.

use crate::chat::topic;
use crate::error::{Error, Result};
use crate::http::call::Call;
use crate::http::query;
use crate::http::reply::{self, HttpResponse};
use crate::search::{self, results};

/// One page of messages the caller may read that match `q`, newest first.
pub async fn search(call: &mut Call) -> Result<HttpResponse> {
    let identity = call.identity().await?;
    let params = query::pairs(call.parts.uri.query());
    let q = query::last(&params, "q").unwrap_or("");
    let parsed = search::query::parse(q).map_err(results::query_error)?;
    let limit = match query::last(&params, "limit") {
        None => results::DEFAULT_LIMIT,
        Some(text) => match text.parse::<usize>() {
            Ok(n) if (1..=results::MAX_LIMIT).contains(&n) => n,
            _ => {
                return Err(Error::field(
                    "limit",
                    format!("must be an integer from 1 to {}", results::MAX_LIMIT),
                ))
            }
        },
    };
    let before = match query::last(&params, "before") {
        None | Some("") => None,
        Some(cursor) => Some(
            results::decode_cursor(cursor)
                .ok_or_else(|| Error::field("before", "is not a cursor from a previous page"))?,
        ),
    };
    let topic_id = match query::last(&params, "topic").filter(|t| !t.is_empty()) {
        None => None,
        Some(name) => Some(
            topic::require(&call.state, &identity.user, name)
                .await?
                .topic_id,
        ),
    };
    let index = call
        .state
        .search
        .clone()
        .ok_or_else(|| Error::Unavailable("search is turned off on this server".into()))?;
    let store = call.state.store.clone();
    let request = results::Request {
        user_id: identity.user.id,
        parsed,
        topic_id,
        before,
        limit,
    };
    let page = tokio::task::spawn_blocking(move || results::find(&index, &store, request))
        .await
        .map_err(|e| Error::Internal(format!("search task failed: {e}")))??;
    Ok(reply::json(200, &page.to_value()))
}
