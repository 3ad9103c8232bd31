//! The accept loop: HTTP/1.1 connections (with upgrades, for WebSockets)
//! served by hyper, a header-read timeout against slow clients, and a
//! bounded graceful drain when shutdown begins.

use std::time::Duration;

use hyper::server::conn::http1;
use hyper::service::service_fn;
use hyper_util::rt::{TokioIo, TokioTimer};
use tokio::net::TcpListener;
use tokio_util::task::TaskTracker;

use crate::state::State;

/// Serves connections from `listener` until `state.shutdown` is cancelled,
/// then stops accepting and lets in-flight requests and socket sessions
/// finish within one grace period.
pub async fn serve(state: State, listener: TcpListener) {
    // Plain HTTP/1 (no protocol sniffing wrapper), so an upgraded connection
    // hands back the TcpStream itself and sockets own their buffers.
    let connections = TaskTracker::new();
    let mut builder = http1::Builder::new();
    builder
        .timer(TokioTimer::new())
        .header_read_timeout(Duration::from_secs(state.cfg.header_read_timeout_secs))
        .max_buf_size(64 * 1024);
    loop {
        tokio::select! {
            accepted = listener.accept() => match accepted {
                Ok((stream, peer)) => {
                    let _ = stream.set_nodelay(true);
                    let st = state.clone();
                    let builder = builder.clone();
                    let first_byte = Duration::from_secs(state.cfg.header_read_timeout_secs);
                    connections.spawn(async move {
                        // A connection that sends nothing is cut off by the
                        // same timeout as one that dribbles its headers.
                        // HTTP/2 is not served, so a connection opening with its
                        // preface ("PRI * HTTP/2.0") is closed rather than left
                        // waiting for the rest of it.
                        let mut probe = [0u8; 3];
                        let deadline = tokio::time::Instant::now() + first_byte;
                        loop {
                            let peeked = tokio::select! {
                                peeked = tokio::time::timeout_at(deadline, stream.peek(&mut probe)) => peeked,
                                () = st.shutdown.cancelled() => return,
                            };
                            let n = match peeked {
                                Ok(Ok(n)) if n > 0 => n,
                                _ => return,
                            };
                            if &probe[..n] == b"PRI" {
                                return;
                            }
                            if n >= 3 || !b"PRI".starts_with(&probe[..n]) {
                                break;
                            }
                            // Too short to tell a request from a preface yet.
                            if tokio::time::Instant::now() >= deadline {
                                return;
                            }
                            tokio::time::sleep(Duration::from_millis(20)).await;
                        }
                        let shutdown = st.shutdown.clone();
                        let service =
                            service_fn(move |req| crate::http::handle(st.clone(), peer, req));
                        let conn = builder.serve_connection(TokioIo::new(stream), service).with_upgrades();
                        tokio::pin!(conn);
                        let result = tokio::select! {
                            result = conn.as_mut() => result,
                            () = shutdown.cancelled() => {
                                // Finish the request in flight, then close.
                                conn.as_mut().graceful_shutdown();
                                conn.await
                            }
                        };
                        if let Err(e) = result {
                            tracing::debug!(error = %e, %peer, "connection ended with an error");
                        }
                    });
                }
                Err(e) => {
                    // Typically EMFILE: out of file descriptors. Existing
                    // connections are unharmed; try again shortly.
                    tracing::warn!(error = %e, "accept failed");
                    tokio::time::sleep(Duration::from_millis(50)).await;
                }
            },
            () = state.shutdown.cancelled() => break,
        }
    }
    drop(listener);
    // One deadline for everything: in-flight requests finish and sockets,
    // told to close by the hub, send their close frames.
    state.hub.shut_down();
    let grace = Duration::from_secs(state.cfg.shutdown_grace_secs);
    let deadline = tokio::time::Instant::now() + grace;
    state.sessions.close();
    connections.close();
    let drained = async {
        connections.wait().await;
        state.sessions.wait().await;
    };
    if tokio::time::timeout_at(deadline, drained).await.is_err() {
        tracing::warn!(
            grace_secs = grace.as_secs(),
            sessions = state.sessions.len(),
            "not everything finished within the grace period; stopping anyway"
        );
    }
}

/// Pending connections the kernel queues before `accept` (tokio's default
/// of 128 drops SYNs when a crowd reconnects at once; the kernel caps it at
/// `net.core.somaxconn`).
const LISTEN_BACKLOG: u32 = 4096;

/// Binds the listening socket with a backlog sized for reconnect storms.
pub fn bind(addr: std::net::SocketAddr) -> std::io::Result<TcpListener> {
    let socket = if addr.is_ipv4() {
        tokio::net::TcpSocket::new_v4()?
    } else {
        tokio::net::TcpSocket::new_v6()?
    };
    socket.set_reuseaddr(true)?;
    socket.bind(addr)?;
    socket.listen(LISTEN_BACKLOG)
}

/// Raises the soft open-files limit to the hard limit; returns the new soft limit.
pub fn raise_open_files_limit() -> u64 {
    // SAFETY: getrlimit/setrlimit only read and write the struct we pass.
    unsafe {
        let mut limit = libc::rlimit {
            rlim_cur: 0,
            rlim_max: 0,
        };
        if libc::getrlimit(libc::RLIMIT_NOFILE, &mut limit) != 0 {
            return 1024;
        }
        if limit.rlim_cur < limit.rlim_max {
            let raised = libc::rlimit {
                rlim_cur: limit.rlim_max,
                rlim_max: limit.rlim_max,
            };
            if libc::setrlimit(libc::RLIMIT_NOFILE, &raised) == 0 {
                limit = raised;
            }
        }
        limit.rlim_cur
    }
}
