//! The CLI side of the admin socket: connect if a server answers, send one
//! request, print the reply exactly as the offline command would, and exit
//! with its code. Plain blocking I/O: the CLI does one thing at a time.

use std::io::{BufRead, BufReader, ErrorKind, Write};
use std::os::unix::net::UnixStream;
use std::path::Path;
use std::time::Duration;

use super::{socket_path, Frame, Reply, Request};
use crate::commands::CommandResult;

/// Longest wait for the next line of an answer (hashing a password takes
/// about a second; an export streams continuously).
const READ_TIMEOUT: Duration = Duration::from_secs(120);

/// The running server's admin socket in `data_dir`, or `None` when no server
/// answers there (no socket file, or a stale one): then the store is used
/// directly. A socket this user may not use is an error, not a fallback.
pub fn connect(data_dir: &Path) -> Result<Option<UnixStream>, String> {
    let path = socket_path(data_dir);
    match UnixStream::connect(&path) {
        Ok(stream) => {
            stream
                .set_read_timeout(Some(READ_TIMEOUT))
                .map_err(|e| format!("admin socket {}: {e}", path.display()))?;
            Ok(Some(stream))
        }
        // No server (or a path too long for a socket, so none could bind).
        Err(e)
            if matches!(
                e.kind(),
                ErrorKind::NotFound | ErrorKind::ConnectionRefused | ErrorKind::InvalidInput
            ) =>
        {
            Ok(None)
        }
        Err(e) if e.kind() == ErrorKind::PermissionDenied => Err(format!(
            "cannot use the running server's admin socket {}: permission denied; \
             run this command as the user the server runs as",
            path.display()
        )),
        Err(e) => Err(format!(
            "cannot connect to the admin socket {}: {e}",
            path.display()
        )),
    }
}

/// Sends `request` and waits for the server's [`Reply`].
pub fn call(stream: UnixStream, request: &Request) -> Result<Reply, String> {
    let mut reader = send(stream, request)?;
    match next_frame(&mut reader)? {
        Frame::Reply(reply) => Ok(reply),
        Frame::Chunk { .. } => Err("the server answered with an unexpected export".into()),
    }
}

/// Streams the running server's export into `out`; returns the exit code
/// (a failure's `confab: ...` line is already on stderr).
pub fn export(stream: UnixStream, out: &mut dyn Write) -> Result<i32, String> {
    let mut reader = send(stream, &Request::Export)?;
    loop {
        match next_frame(&mut reader)? {
            Frame::Chunk { chunk } => out
                .write_all(chunk.as_bytes())
                .map_err(|e| format!("cannot write the export: {e}"))?,
            Frame::Reply(reply) => {
                if reply.exit != 0 {
                    eprint!("{}", reply.stderr);
                }
                return Ok(reply.exit);
            }
        }
    }
}

/// Prints a reply as the offline command would have, exiting with its code
/// if that is not 0.
pub fn print(reply: Reply) -> CommandResult {
    print!("{}", reply.stdout);
    eprint!("{}", reply.stderr);
    exit_if_failed(reply.exit);
    Ok(())
}

/// Exits the process with `code` (after flushing) unless it is 0.
pub fn exit_if_failed(code: i32) {
    if code != 0 {
        let _ = std::io::stdout().flush();
        let _ = std::io::stderr().flush();
        std::process::exit(code);
    }
}

fn send(mut stream: UnixStream, request: &Request) -> Result<BufReader<UnixStream>, String> {
    let mut line = serde_json::to_vec(request).map_err(|e| e.to_string())?;
    line.push(b'\n');
    match stream.write_all(&line) {
        Ok(()) => {}
        // The server may have answered (refused) and closed before reading:
        // its answer is still there to read.
        Err(e) if matches!(e.kind(), ErrorKind::BrokenPipe | ErrorKind::ConnectionReset) => {}
        Err(e) => return Err(format!("cannot send to the admin socket: {e}")),
    }
    Ok(BufReader::new(stream))
}

fn next_frame(reader: &mut BufReader<UnixStream>) -> Result<Frame, String> {
    let mut line = String::new();
    let read = reader
        .read_line(&mut line)
        .map_err(|e| format!("cannot read from the admin socket: {e}"))?;
    if read == 0 {
        return Err("the server closed the admin socket without an answer".into());
    }
    serde_json::from_str(&line).map_err(|e| format!("bad answer on the admin socket: {e}"))
}
