//! The web UI, embedded in the binary from `assets/`: content types, strong
//! ETags with conditional GET, and cache headers. Unknown paths without a
//! file extension get `index.html` (the UI routes on the client).

use hyper::header::{HeaderValue, CACHE_CONTROL, CONTENT_TYPE, ETAG, IF_NONE_MATCH};
use rust_embed::RustEmbed;

use super::call::Call;
use super::reply::{self, HttpResponse};
use crate::error::Error;

#[derive(RustEmbed)]
#[folder = "assets/"]
struct Assets;

/// Content-Security-Policy for the UI: no inline scripts, same-origin only.
const CSP: &str = "default-src 'self'; script-src 'self'; style-src 'self'; img-src 'self' data: blob:; connect-src 'self'; base-uri 'none'; frame-ancestors 'none'; form-action 'self'";

/// Serves an embedded file for `path`.
pub fn serve(call: &Call, path: &str) -> HttpResponse {
    let relative = path.trim_start_matches('/');
    let relative = if relative.is_empty() {
        "index.html"
    } else {
        relative
    };
    if relative
        .split('/')
        .any(|part| part == ".." || part.starts_with('.'))
    {
        return reply::error(&Error::NotFound("file"));
    }
    let (name, file) = match Assets::get(relative) {
        Some(file) => (relative, file),
        None if !relative.rsplit('/').next().unwrap_or("").contains('.') => {
            match Assets::get("index.html") {
                Some(file) => ("index.html", file),
                None => return reply::error(&Error::NotFound("file")),
            }
        }
        None => return reply::error(&Error::NotFound("file")),
    };
    let etag = format!("\"{}\"", hex(&file.metadata.sha256_hash()[..16]));
    // Weak comparison (RFC 9110 §13.1.2): a `W/` prefix still matches.
    let mut response = if call.header(IF_NONE_MATCH).is_some_and(|v| {
        v.split(',')
            .map(str::trim)
            .any(|tag| tag == "*" || tag.strip_prefix("W/").unwrap_or(tag) == etag)
    }) {
        reply::empty(304)
    } else {
        let mut response = reply::empty(200);
        *response.body_mut() = reply::body(file.data.into_owned());
        response
    };
    let headers = response.headers_mut();
    if let Ok(value) = HeaderValue::from_str(content_type(name)) {
        headers.insert(CONTENT_TYPE, value);
    }
    if let Ok(value) = HeaderValue::from_str(&etag) {
        headers.insert(ETAG, value);
    }
    headers.insert(CACHE_CONTROL, HeaderValue::from_static(cache_policy(name)));
    headers.insert("content-security-policy", HeaderValue::from_static(CSP));
    response
}

/// File names are not versioned, so every file is revalidated on each use;
/// the strong ETag makes that a cheap 304 and no mix of old and new modules
/// survives an upgrade.
fn cache_policy(_name: &str) -> &'static str {
    "no-cache"
}

fn content_type(name: &str) -> &'static str {
    match name.rsplit('.').next().unwrap_or("") {
        "html" => "text/html; charset=utf-8",
        "js" | "mjs" => "text/javascript; charset=utf-8",
        "css" => "text/css; charset=utf-8",
        "json" => "application/json",
        "svg" => "image/svg+xml",
        "png" => "image/png",
        "ico" => "image/x-icon",
        "webmanifest" => "application/manifest+json",
        "txt" => "text/plain; charset=utf-8",
        "woff2" => "font/woff2",
        _ => "application/octet-stream",
    }
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}
