//! A webhook receiver for tests: a real HTTP/1.1 server on loopback that
//! reports every request it gets ([`Hit`]) on a channel and answers as its
//! script says ([`Action`]) — a status and body, or never.

use std::io::{BufRead, BufReader, Read, Write};
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{mpsc, Arc};
use std::thread;
use std::time::Duration;

use serde_json::Value;

/// How long [`Receiver::next`] waits for a request.
pub const WAIT: Duration = Duration::from_secs(20);

/// One request a receiver got.
#[derive(Debug)]
pub struct Hit {
    pub headers: Vec<(String, String)>,
    pub body: String,
}

impl Hit {
    /// The value of header `name` (any case).
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(k, _)| k.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_str())
    }

    /// The body as JSON.
    pub fn json(&self) -> Value {
        serde_json::from_str(&self.body).expect("event body is JSON")
    }
}

/// What a receiver does with its n-th request (0-based).
#[derive(Clone)]
pub enum Action {
    Answer(u16, String),
    /// Never answer (the connection stays open).
    Hang,
}

/// A real HTTP/1.1 server on loopback that reports each request.
pub struct Receiver {
    pub addr: SocketAddr,
    pub hits: mpsc::Receiver<Hit>,
}

impl Receiver {
    /// A receiver on a fresh loopback port.
    pub fn start(script: impl Fn(usize) -> Action + Send + Sync + 'static) -> Receiver {
        let listener = TcpListener::bind("127.0.0.1:0").expect("bind receiver");
        Self::on(listener, script)
    }

    /// A receiver on `listener` (e.g. a port that was closed before).
    pub fn on(
        listener: TcpListener,
        script: impl Fn(usize) -> Action + Send + Sync + 'static,
    ) -> Receiver {
        let addr = listener.local_addr().expect("receiver address");
        let (tx, hits) = mpsc::channel();
        let script = Arc::new(script);
        let count = Arc::new(AtomicUsize::new(0));
        thread::spawn(move || {
            for stream in listener.incoming() {
                let Ok(stream) = stream else { continue };
                let (tx, script, count) = (tx.clone(), script.clone(), count.clone());
                thread::spawn(move || serve(stream, tx, &*script, &count));
            }
        });
        Receiver { addr, hits }
    }

    /// `http://ADDR/hook`.
    pub fn url(&self) -> String {
        format!("http://{}/hook", self.addr)
    }

    /// The next request, or a panic saying `what` did not come.
    pub fn next(&self, what: &str) -> Hit {
        self.hits
            .recv_timeout(WAIT)
            .unwrap_or_else(|_| panic!("the receiver got no request: {what}"))
    }
}

fn serve(
    stream: TcpStream,
    tx: mpsc::Sender<Hit>,
    script: &(dyn Fn(usize) -> Action + Send + Sync),
    count: &AtomicUsize,
) {
    let mut reader = BufReader::new(stream.try_clone().expect("clone stream"));
    let mut headers = Vec::new();
    let mut line = String::new();
    if reader.read_line(&mut line).unwrap_or(0) == 0 {
        return;
    }
    loop {
        line.clear();
        if reader.read_line(&mut line).unwrap_or(0) == 0 {
            return;
        }
        let trimmed = line.trim_end();
        if trimmed.is_empty() {
            break;
        }
        if let Some((k, v)) = trimmed.split_once(':') {
            headers.push((k.trim().to_ascii_lowercase(), v.trim().to_string()));
        }
    }
    let length: usize = headers
        .iter()
        .find(|(k, _)| k == "content-length")
        .and_then(|(_, v)| v.parse().ok())
        .unwrap_or(0);
    let mut body = vec![0; length];
    if reader.read_exact(&mut body).is_err() {
        return;
    }
    let n = count.fetch_add(1, Ordering::SeqCst);
    let action = script(n);
    let _ = tx.send(Hit {
        headers,
        body: String::from_utf8_lossy(&body).into_owned(),
    });
    let mut stream = stream;
    match action {
        Action::Answer(status, body) => {
            let _ = write!(
                stream,
                "HTTP/1.1 {status} X\r\nContent-Type: application/json\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}",
                body.len()
            );
        }
        Action::Hang => thread::sleep(Duration::from_secs(60)),
    }
}
