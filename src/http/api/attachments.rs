//! Image attachments over REST: upload the raw bytes to a room or
//! conversation (`POST .../attachments`, type sniffed from the bytes, capped
//! by `max_http_body_bytes`), and fetch one (`GET /api/attachments/{id}`)
//! for members of its topic, served with its sniffed type, `nosniff`, a
//! sandboxing CSP and `Content-Disposition`, so it is never executed.

use hyper::header::{HeaderValue, CACHE_CONTROL, CONTENT_DISPOSITION, CONTENT_TYPE};
use serde_json::json;

use crate::chat::topic;
use crate::chat::views::AttachmentView;
use crate::error::{Error, Result};
use crate::http::call::Call;
use crate::http::reply::{self, HttpResponse};

/// Stores the request body as an image of `topic_name`; 201 `{attachment}`.
pub async fn upload(call: &mut Call, topic_name: &str) -> Result<HttpResponse> {
    let identity = call.identity().await?;
    let access = topic::require(&call.state, &identity.user, topic_name).await?;
    let bytes = call.body_bytes().await?;
    if bytes.is_empty() {
        return Err(Error::field("file", "is empty"));
    }
    let record = call
        .state
        .store
        .add_attachment(access.topic_id, identity.user.id, bytes.to_vec())
        .await?;
    Ok(reply::json(
        201,
        &json!({"attachment": AttachmentView::from(&record)}),
    ))
}

/// The bytes of an attachment, for members of its topic.
pub async fn fetch(call: &mut Call, id: &str) -> Result<HttpResponse> {
    let identity = call.identity().await?;
    let id: u64 = id.parse().map_err(|_| Error::NotFound("attachment"))?;
    let (record, bytes) = call
        .state
        .store
        .attachment(id)
        .await?
        .ok_or(Error::NotFound("attachment"))?;
    let topic_id = record.topic_id;
    let topic = call
        .state
        .store
        .topic(topic_id)
        .await?
        .ok_or(Error::NotFound("attachment"))?;
    topic::require(&call.state, &identity.user, &topic.name)
        .await
        .map_err(|_| Error::NotFound("attachment"))?;
    let extension = record.content_type.rsplit('/').next().unwrap_or("bin");
    let mut response = reply::empty(200);
    *response.body_mut() = reply::body(bytes);
    let headers = response.headers_mut();
    if let Ok(value) = HeaderValue::from_str(&record.content_type) {
        headers.insert(CONTENT_TYPE, value);
    }
    if let Ok(value) = HeaderValue::from_str(&format!(
        "inline; filename=\"attachment-{}.{extension}\"",
        record.id
    )) {
        headers.insert(CONTENT_DISPOSITION, value);
    }
    headers.insert(
        "content-security-policy",
        HeaderValue::from_static("default-src 'none'; sandbox"),
    );
    headers.insert(
        CACHE_CONTROL,
        HeaderValue::from_static("private, max-age=86400, immutable"),
    );
    Ok(response)
}
