//! The server side of the admin socket: binds `<data_dir>/admin.sock` with
//! mode 0600 (never reachable by anyone else, not even briefly), accepts
//! connections from the server's own OS user (or root) only, and runs each
//! request through the same functions the offline CLI uses, on the live
//! state, so changes take effect at once.

use std::io::{self, Write};
use std::os::unix::fs::{DirBuilderExt, PermissionsExt};
use std::path::{Path, PathBuf};
use std::time::Duration;

use tokio::io::{AsyncBufReadExt, AsyncReadExt, AsyncWriteExt, BufReader};
use tokio::net::unix::OwnedWriteHalf;
use tokio::net::{UnixListener, UnixStream};
use tokio::sync::mpsc;

use super::{socket_path, Frame, Reply, Request, MAX_REQUEST_BYTES};
use crate::state::State;

/// Longest wait for the request line after connecting.
const REQUEST_TIMEOUT: Duration = Duration::from_secs(10);
/// Export bytes gathered before a chunk is sent.
const CHUNK_BYTES: usize = 64 * 1024;

/// The socket file; removed when dropped (at shutdown).
pub struct SocketFile {
    path: PathBuf,
}

impl SocketFile {
    /// Where the socket is.
    pub fn path(&self) -> &Path {
        &self.path
    }
}

impl Drop for SocketFile {
    fn drop(&mut self) {
        let _ = std::fs::remove_file(&self.path);
    }
}

/// Binds the admin socket in `data_dir`. Call only while holding the store
/// lock: a leftover socket file there is then stale and is replaced.
///
/// The socket is bound inside a fresh 0700 directory, set to 0600, then
/// renamed into place, so it is never reachable with looser permissions and
/// no process-wide umask is touched.
pub fn bind(data_dir: &Path) -> io::Result<(UnixListener, SocketFile)> {
    let path = socket_path(data_dir);
    match std::fs::remove_file(&path) {
        Ok(()) => tracing::info!(path = %path.display(), "removed a stale admin socket"),
        Err(e) if e.kind() == io::ErrorKind::NotFound => {}
        Err(e) => return Err(e),
    }
    let staging = data_dir.join(format!(".admin.sock.{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&staging);
    std::fs::DirBuilder::new().mode(0o700).create(&staging)?;
    let bound = (|| {
        let temporary = staging.join("s");
        let listener = std::os::unix::net::UnixListener::bind(&temporary)?;
        std::fs::set_permissions(&temporary, std::fs::Permissions::from_mode(0o600))?;
        std::fs::rename(&temporary, &path)?;
        listener.set_nonblocking(true)?;
        Ok::<_, io::Error>(listener)
    })();
    let _ = std::fs::remove_dir_all(&staging);
    let listener = UnixListener::from_std(bound?)?;
    Ok((listener, SocketFile { path }))
}

/// Accepts admin connections until shutdown begins.
pub async fn serve(state: State, listener: UnixListener) {
    // SAFETY: geteuid has no preconditions and cannot fail.
    let server_uid = unsafe { libc::geteuid() };
    loop {
        let stream = tokio::select! {
            accepted = listener.accept() => match accepted {
                Ok((stream, _)) => stream,
                Err(e) => {
                    tracing::warn!(error = %e, "admin socket accept failed");
                    tokio::time::sleep(Duration::from_millis(100)).await;
                    continue;
                }
            },
            () = state.shutdown.cancelled() => return,
        };
        let st = state.clone();
        state.sessions.spawn(async move {
            if let Err(e) = handle(st, stream, server_uid).await {
                tracing::debug!(error = %e, "admin connection ended early");
            }
        });
    }
}

async fn handle(state: State, stream: UnixStream, server_uid: u32) -> io::Result<()> {
    let peer_uid = stream.peer_cred()?.uid();
    let (read, mut write) = stream.into_split();
    if peer_uid != server_uid && peer_uid != 0 {
        tracing::warn!(peer_uid, server_uid, "admin socket: refused another user");
        let line = format!(
            "the admin socket serves only uid {server_uid} (the server's user); you are uid {peer_uid}"
        );
        return send(&mut write, &Frame::Reply(Reply::failure(&line))).await;
    }
    let mut line = String::new();
    let mut reader = BufReader::new(read.take(MAX_REQUEST_BYTES as u64 + 1));
    let read = tokio::select! {
        read = tokio::time::timeout(REQUEST_TIMEOUT, reader.read_line(&mut line)) => {
            read.map_err(|_| io::Error::new(io::ErrorKind::TimedOut, "no request"))??
        }
        () = state.shutdown.cancelled() => {
            let reply = Reply::failure("the server is shutting down");
            return send(&mut write, &Frame::Reply(reply)).await;
        }
    };
    if read > MAX_REQUEST_BYTES || !line.ends_with('\n') {
        let reply = Reply::failure("the admin request is too long or incomplete");
        return send(&mut write, &Frame::Reply(reply)).await;
    }
    let request: Request = match serde_json::from_str(&line) {
        Ok(request) => request,
        Err(e) => {
            let reply = Reply::failure(&format!("bad admin request: {e}"));
            return send(&mut write, &Frame::Reply(reply)).await;
        }
    };
    tracing::info!(command = request.name(), "admin command");
    match request {
        Request::Export => export(&state, &mut write).await,
        other => {
            let reply = Reply::from_outcome(crate::commands::execute(&state, other).await);
            send(&mut write, &Frame::Reply(reply)).await
        }
    }
}

/// Streams the export from one read transaction, chunk by chunk; a client
/// that goes away ends the read.
async fn export(state: &State, write: &mut OwnedWriteHalf) -> io::Result<()> {
    let (tx, mut rx) = mpsc::channel::<String>(4);
    let store = state.store.clone();
    let job = tokio::spawn(async move {
        let out = ChunkWriter {
            pending: Vec::with_capacity(CHUNK_BYTES),
            tx,
        };
        let mut out = store.export_into(out).await.map_err(|e| e.to_string())?;
        tokio::task::spawn_blocking(move || out.send(true))
            .await
            .map_err(|e| e.to_string())?
            .map_err(|e| e.to_string())
    });
    let outcome = loop {
        tokio::select! {
            chunk = rx.recv() => match chunk {
                Some(chunk) => send(write, &Frame::Chunk { chunk }).await?,
                None => break job.await.map_err(|e| e.to_string()).and_then(|r| r),
            },
            () = state.shutdown.cancelled() => {
                job.abort();
                let reply = Reply::failure("the server is shutting down; export again later");
                return send(write, &Frame::Reply(reply)).await;
            }
        }
    };
    let reply = Reply::from_outcome(outcome.map(|()| String::new()));
    send(write, &Frame::Reply(reply)).await
}

/// Gathers export bytes and hands whole lines to the connection task.
struct ChunkWriter {
    pending: Vec<u8>,
    tx: mpsc::Sender<String>,
}

impl ChunkWriter {
    /// Sends the pending whole lines (everything if `all`).
    fn send(&mut self, all: bool) -> io::Result<()> {
        let cut = if all {
            self.pending.len()
        } else {
            match self.pending.iter().rposition(|&b| b == b'\n') {
                Some(i) => i + 1,
                None => return Ok(()),
            }
        };
        if cut == 0 {
            return Ok(());
        }
        let rest = self.pending.split_off(cut);
        let chunk = std::mem::replace(&mut self.pending, rest);
        let text =
            String::from_utf8(chunk).map_err(|e| io::Error::new(io::ErrorKind::InvalidData, e))?;
        self.tx
            .blocking_send(text)
            .map_err(|_| io::Error::new(io::ErrorKind::BrokenPipe, "the admin client went away"))
    }
}

impl Write for ChunkWriter {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        self.pending.extend_from_slice(buf);
        if self.pending.len() >= CHUNK_BYTES {
            self.send(false)?;
        }
        Ok(buf.len())
    }

    fn flush(&mut self) -> io::Result<()> {
        Ok(())
    }
}

async fn send(write: &mut OwnedWriteHalf, frame: &Frame) -> io::Result<()> {
    let mut line = serde_json::to_vec(frame).map_err(io::Error::other)?;
    line.push(b'\n');
    write.write_all(&line).await?;
    write.flush().await
}
