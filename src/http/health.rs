//! Probes: `/healthz` says the process is up (no I/O); `/readyz` says the
//! store opens a read transaction (503 otherwise).

use super::call::Call;
use super::reply::{self, HttpResponse};

/// 200 `ok`, always.
pub fn healthz() -> HttpResponse {
    reply::text(200, "ok")
}

/// 200 `ready` when the store answers, 503 otherwise or while shutting down.
/// A node of a cluster adds the bus state (`ready; bus up` or `ready; bus
/// down`): without the bus it still stores and serves, and its sockets
/// still get every message, later (read from the database).
pub async fn readyz(call: &Call) -> HttpResponse {
    let ready = !call.state.shutdown.is_cancelled() && call.state.store.ready().await;
    let bus = call.state.cluster.as_ref().map(|c| c.bus_connected());
    let text = match (ready, bus) {
        (true, None) => "ready",
        (true, Some(true)) => "ready; bus up",
        (true, Some(false)) => "ready; bus down",
        (false, None) => "not ready",
        (false, Some(true)) => "not ready; bus up",
        (false, Some(false)) => "not ready; bus down",
    };
    reply::text(if ready { 200 } else { 503 }, text)
}
