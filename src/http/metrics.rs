//! `GET /metrics`: the Prometheus text exposition, behind a bearer token
//! when `metrics_token` is configured.

use hyper::header::{HeaderValue, CONTENT_TYPE};

use super::call::Call;
use super::reply::{self, HttpResponse};
use crate::error::{Error, Result};

/// Renders the metrics.
pub fn serve(call: &Call) -> Result<HttpResponse> {
    let required = &call.state.cfg.metrics_token;
    if !required.is_empty() && call.bearer_token() != Some(required.as_str()) {
        return Err(Error::Unauthorized);
    }
    let mut text = call.state.metrics.render(&call.state.hub);
    if let Some(cluster) = &call.state.cluster {
        cluster.render_metrics(&mut text);
        crate::socket::longpoll_route::render_metrics(&call.state, &mut text);
    }
    let mut response = reply::empty(200);
    *response.body_mut() = reply::body(text);
    response.headers_mut().insert(
        CONTENT_TYPE,
        HeaderValue::from_static("text/plain; version=0.0.4; charset=utf-8"),
    );
    Ok(response)
}
