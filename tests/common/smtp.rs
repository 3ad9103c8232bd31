//! A tiny SMTP server for tests: enough of RFC 5321 for a client without
//! TLS (greeting, EHLO/HELO, MAIL FROM, RCPT TO, DATA, RSET, NOOP, QUIT).
//! It records every message it accepts. A port can be reserved while
//! nothing listens on it ("the mail server is down") and a sink started on
//! it later.

use std::io::{BufRead, BufReader, Write};
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Condvar, Mutex};
use std::thread;
use std::time::{Duration, Instant};

/// One accepted message.
#[derive(Clone, Debug)]
pub struct Mail {
    pub from: String,
    pub to: Vec<String>,
    /// The message as sent (headers and body), dot-unstuffed.
    pub data: String,
}

impl Mail {
    /// The value of header `name` (first occurrence, unfolded).
    pub fn header(&self, name: &str) -> Option<String> {
        let head = self.data.split("\r\n\r\n").next()?;
        let mut found: Option<String> = None;
        for line in head.split("\r\n") {
            if let Some(value) = found.as_mut() {
                if line.starts_with([' ', '\t']) {
                    value.push_str(line.trim_start());
                    continue;
                }
                break;
            }
            if let Some((key, value)) = line.split_once(':') {
                if key.eq_ignore_ascii_case(name) {
                    found = Some(value.trim().to_string());
                }
            }
        }
        found
    }

    /// The body, decoded from quoted-printable if it was sent so.
    pub fn body(&self) -> String {
        let body = self.data.split_once("\r\n\r\n").map_or("", |(_, b)| b);
        let qp = self
            .header("Content-Transfer-Encoding")
            .is_some_and(|e| e.eq_ignore_ascii_case("quoted-printable"));
        if qp {
            decode_quoted_printable(body)
        } else {
            body.to_string()
        }
    }

    /// The first `http(s)://…` link in the body.
    pub fn link(&self) -> Option<String> {
        let body = self.body();
        let start = body.find("http")?;
        let link: String = body[start..]
            .chars()
            .take_while(|c| !c.is_whitespace())
            .collect();
        Some(link)
    }
}

fn decode_quoted_printable(text: &str) -> String {
    let joined = text.replace("=\r\n", "");
    let bytes = joined.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        let hex = bytes
            .get(i + 1..i + 3)
            .and_then(|h| std::str::from_utf8(h).ok())
            .and_then(|h| u8::from_str_radix(h, 16).ok());
        match (bytes[i], hex) {
            (b'=', Some(byte)) => {
                out.push(byte);
                i += 3;
            }
            (byte, _) => {
                out.push(byte);
                i += 1;
            }
        }
    }
    String::from_utf8_lossy(&out).into_owned()
}

#[derive(Default)]
struct Inbox {
    mails: Mutex<Vec<Mail>>,
    arrived: Condvar,
}

/// A running sink; stops accepting when dropped.
pub struct SmtpSink {
    addr: SocketAddr,
    inbox: Arc<Inbox>,
    stopped: Arc<AtomicBool>,
}

/// A loopback port nothing listens on (bound, then released).
pub fn reserve_port() -> u16 {
    let listener = TcpListener::bind("127.0.0.1:0").expect("bind a free port");
    listener.local_addr().expect("local addr").port()
}

/// The `smtp_url` of a sink on `port`.
pub fn url_for(port: u16) -> String {
    format!("smtp+plain://127.0.0.1:{port}")
}

impl SmtpSink {
    /// A sink on a fresh loopback port.
    pub fn start() -> SmtpSink {
        SmtpSink::start_on(0)
    }

    /// A sink on `port` (0 = any).
    pub fn start_on(port: u16) -> SmtpSink {
        let listener = TcpListener::bind(("127.0.0.1", port)).expect("bind the SMTP sink");
        let addr = listener.local_addr().expect("local addr");
        let inbox = Arc::new(Inbox::default());
        let stopped = Arc::new(AtomicBool::new(false));
        let (inbox2, stopped2) = (inbox.clone(), stopped.clone());
        thread::spawn(move || {
            for stream in listener.incoming() {
                if stopped2.load(Ordering::SeqCst) {
                    break;
                }
                let Ok(stream) = stream else { continue };
                let inbox = inbox2.clone();
                thread::spawn(move || {
                    let _ = serve(stream, &inbox);
                });
            }
        });
        SmtpSink {
            addr,
            inbox,
            stopped,
        }
    }

    pub fn port(&self) -> u16 {
        self.addr.port()
    }

    /// The `smtp_url` for this sink.
    pub fn url(&self) -> String {
        url_for(self.port())
    }

    /// Every message accepted so far.
    pub fn mails(&self) -> Vec<Mail> {
        self.inbox
            .mails
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .clone()
    }

    /// Waits until at least `count` messages have arrived (panicking after
    /// `within`); returns them all.
    #[track_caller]
    pub fn wait_for(&self, count: usize, within: Duration) -> Vec<Mail> {
        let deadline = Instant::now() + within;
        let mut mails = self.inbox.mails.lock().unwrap_or_else(|p| p.into_inner());
        while mails.len() < count {
            let left = deadline.saturating_duration_since(Instant::now());
            if left.is_zero() {
                panic!(
                    "expected {count} mails within {within:?}, got {}: {mails:#?}",
                    mails.len()
                );
            }
            mails = self
                .inbox
                .arrived
                .wait_timeout(mails, left)
                .unwrap_or_else(|p| p.into_inner())
                .0;
        }
        mails.clone()
    }
}

impl Drop for SmtpSink {
    fn drop(&mut self) {
        self.stopped.store(true, Ordering::SeqCst);
        // Wake the accept loop so it sees the flag.
        let _ = TcpStream::connect_timeout(&self.addr, Duration::from_secs(1));
    }
}

/// One SMTP session.
fn serve(stream: TcpStream, inbox: &Inbox) -> std::io::Result<()> {
    stream.set_read_timeout(Some(Duration::from_secs(30)))?;
    let mut out = stream.try_clone()?;
    let mut reader = BufReader::new(stream);
    out.write_all(b"220 sink ESMTP ready\r\n")?;
    let (mut from, mut to) = (String::new(), Vec::new());
    let mut line = String::new();
    loop {
        line.clear();
        if reader.read_line(&mut line)? == 0 {
            return Ok(());
        }
        let command = line.trim_end().to_string();
        let upper = command.to_ascii_uppercase();
        let reply: &[u8] = if upper.starts_with("EHLO") {
            b"250-sink\r\n250 8BITMIME\r\n"
        } else if upper.starts_with("HELO") || upper.starts_with("NOOP") {
            b"250 OK\r\n"
        } else if upper.starts_with("RSET") {
            from.clear();
            to.clear();
            b"250 OK\r\n"
        } else if upper.starts_with("MAIL FROM:") {
            from = address(&command["MAIL FROM:".len()..]);
            to.clear();
            b"250 OK\r\n"
        } else if upper.starts_with("RCPT TO:") {
            to.push(address(&command["RCPT TO:".len()..]));
            b"250 OK\r\n"
        } else if upper == "DATA" {
            out.write_all(b"354 end with <CRLF>.<CRLF>\r\n")?;
            let mut data = String::new();
            loop {
                line.clear();
                if reader.read_line(&mut line)? == 0 {
                    return Ok(());
                }
                if line == ".\r\n" || line == ".\n" {
                    break;
                }
                data.push_str(line.strip_prefix('.').unwrap_or(&line));
            }
            let mail = Mail {
                from: from.clone(),
                to: std::mem::take(&mut to),
                data,
            };
            let mut mails = inbox.mails.lock().unwrap_or_else(|p| p.into_inner());
            mails.push(mail);
            inbox.arrived.notify_all();
            drop(mails);
            b"250 OK queued\r\n"
        } else if upper.starts_with("QUIT") {
            out.write_all(b"221 bye\r\n")?;
            return Ok(());
        } else {
            b"502 command not implemented\r\n"
        };
        out.write_all(reply)?;
    }
}

/// `<a@b>` (with optional parameters after it) → `a@b`.
fn address(text: &str) -> String {
    let text = text.trim();
    match (text.find('<'), text.find('>')) {
        (Some(start), Some(end)) if start < end => text[start + 1..end].to_string(),
        _ => text.split_whitespace().next().unwrap_or("").to_string(),
    }
}
