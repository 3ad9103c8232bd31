//! Admin operations over HTTP: `GET /api/admin/export`, the same JSON Lines
//! snapshot as `confab export`, taken from one read transaction while the
//! server keeps running.

use hyper::header::{HeaderValue, CONTENT_DISPOSITION, CONTENT_TYPE};

use crate::error::Result;
use crate::http::call::Call;
use crate::http::reply::{self, HttpResponse};

/// Streams the export (admins only).
pub async fn export(call: &mut Call) -> Result<HttpResponse> {
    let admin = call.admin().await?;
    let bytes = call.state.store.export().await?;
    tracing::info!(by = %admin.user.username, bytes = bytes.len(), "export taken");
    let mut response = reply::empty(200);
    *response.body_mut() = reply::body(bytes);
    let headers = response.headers_mut();
    headers.insert(
        CONTENT_TYPE,
        HeaderValue::from_static("application/x-ndjson"),
    );
    headers.insert(
        CONTENT_DISPOSITION,
        HeaderValue::from_static("attachment; filename=\"confab-export.jsonl\""),
    );
    Ok(response)
}
