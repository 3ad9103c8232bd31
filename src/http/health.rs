//! Probes: `/healthz` says the process is up (no I/O); `/readyz` says the
//! store opens a read transaction (503 otherwise).

use super::call::Call;
use super::reply::{self, HttpResponse};

/// 200 `ok`, always.
pub fn healthz() -> HttpResponse {
    reply::text(200, "ok")
}

/// 200 `ready` when the store answers, 503 otherwise or while shutting down.
/// A node of a cluster adds the bus state (`ready; bus up`, else `not
/// ready; bus up` or `not ready; bus down`) and is not ready while the bus
/// is unreachable either: a load balancer then sends new clients to nodes
/// that have it. Open sockets stay, and their posts are still stored and
/// acknowledged; other nodes' sockets get them from the database later.
pub async fn readyz(call: &Call) -> HttpResponse {
    let store_ready = !call.state.shutdown.is_cancelled() && call.state.store.ready().await;
    let bus = call.state.cluster.as_ref().map(|c| c.bus_connected());
    let (status, text) = match (store_ready, bus) {
        (true, None) => (200, "ready"),
        (false, None) => (503, "not ready"),
        (true, Some(true)) => (200, "ready; bus up"),
        (false, Some(true)) => (503, "not ready; bus up"),
        (_, Some(false)) => (503, "not ready; bus down"),
    };
    reply::text(status, text)
}
