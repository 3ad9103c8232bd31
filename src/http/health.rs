//! Probes: `/healthz` says the process is up (no I/O); `/readyz` says the
//! store opens a read transaction (503 otherwise).

use super::call::Call;
use super::reply::{self, HttpResponse};

/// 200 `ok`, always.
pub fn healthz() -> HttpResponse {
    reply::text(200, "ok")
}

/// 200 `ready` when the store answers, 503 otherwise or while shutting down.
pub async fn readyz(call: &Call) -> HttpResponse {
    if !call.state.shutdown.is_cancelled() && call.state.store.ready().await {
        reply::text(200, "ready")
    } else {
        reply::text(503, "not ready")
    }
}
