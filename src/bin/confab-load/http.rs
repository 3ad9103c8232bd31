//! A minimal HTTP/1.1 client for the few set-up requests (register, log
//! in, create rooms): one request per connection (`Connection: close`),
//! JSON in and out, `Content-Length` or chunked responses. Not used on any
//! measured path.

use std::net::SocketAddr;
use std::time::Duration;

use serde_json::Value;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

/// Where HTTP requests go.
#[derive(Clone, Debug)]
pub struct HttpBase {
    addr: SocketAddr,
    host: String,
    prefix: String,
}

impl HttpBase {
    /// Parses `http://host:port[/prefix]` and resolves the host.
    pub async fn parse(url: &str) -> Result<HttpBase, String> {
        let rest = url
            .strip_prefix("http://")
            .ok_or_else(|| format!("{url}: only http:// URLs are supported"))?;
        let (host, prefix) = match rest.find('/') {
            Some(i) => (&rest[..i], rest[i..].trim_end_matches('/')),
            None => (rest, ""),
        };
        let with_port = if host
            .rsplit_once(':')
            .is_some_and(|(_, p)| p.parse::<u16>().is_ok())
        {
            host.to_string()
        } else {
            format!("{host}:80")
        };
        let addr = tokio::net::lookup_host(&with_port)
            .await
            .map_err(|e| format!("{url}: {e}"))?
            .next()
            .ok_or_else(|| format!("{url}: no address"))?;
        Ok(HttpBase {
            addr,
            host: host.to_string(),
            prefix: prefix.to_string(),
        })
    }

    /// The HTTP base that serves the same host as a `ws://` URL.
    pub fn url_for_ws(ws_url: &str) -> Result<String, String> {
        let rest = ws_url
            .strip_prefix("ws://")
            .ok_or_else(|| format!("{ws_url}: only ws:// URLs are supported"))?;
        let host = rest.split('/').next().unwrap_or(rest);
        Ok(format!("http://{host}"))
    }

    /// Sends one request; returns the status and the body parsed as JSON
    /// (`Null` when empty or not JSON).
    pub async fn request(
        &self,
        method: &str,
        path: &str,
        bearer: Option<&str>,
        body: Option<&Value>,
    ) -> Result<(u16, Value), String> {
        let raw = self.exchange(method, path, bearer, body).await?;
        parse_response(&raw)
    }

    /// `GET path`; returns the status and the body as text.
    pub async fn get_text(&self, path: &str) -> Result<(u16, String), String> {
        let raw = self.exchange("GET", path, None, None).await?;
        let (status, body) = split_response(&raw)?;
        Ok((status, String::from_utf8_lossy(&body).into_owned()))
    }

    /// Sends one request and reads the whole response.
    async fn exchange(
        &self,
        method: &str,
        path: &str,
        bearer: Option<&str>,
        body: Option<&Value>,
    ) -> Result<Vec<u8>, String> {
        let exchange = async {
            let mut stream = TcpStream::connect(self.addr)
                .await
                .map_err(|e| format!("connect {}: {e}", self.addr))?;
            let body = body.map(|b| b.to_string()).unwrap_or_default();
            let mut head = format!(
                "{method} {}{path} HTTP/1.1\r\nHost: {}\r\nConnection: close\r\nAccept: application/json\r\nContent-Length: {}\r\n",
                self.prefix,
                self.host,
                body.len()
            );
            if !body.is_empty() {
                head.push_str("Content-Type: application/json\r\n");
            }
            if let Some(token) = bearer {
                head.push_str(&format!("Authorization: Bearer {token}\r\n"));
            }
            head.push_str("\r\n");
            head.push_str(&body);
            stream
                .write_all(head.as_bytes())
                .await
                .map_err(|e| e.to_string())?;
            let mut raw = Vec::new();
            stream
                .read_to_end(&mut raw)
                .await
                .map_err(|e| e.to_string())?;
            Ok(raw)
        };
        tokio::time::timeout(Duration::from_secs(30), exchange)
            .await
            .map_err(|_| format!("{method} {path}: no answer within 30 s"))?
    }
}

fn parse_response(raw: &[u8]) -> Result<(u16, Value), String> {
    let (status, body) = split_response(raw)?;
    let value = serde_json::from_slice(&body).unwrap_or(Value::Null);
    Ok((status, value))
}

/// The status and the (de-chunked) body of a response.
fn split_response(raw: &[u8]) -> Result<(u16, Vec<u8>), String> {
    let split = raw
        .windows(4)
        .position(|w| w == b"\r\n\r\n")
        .ok_or("truncated HTTP response")?;
    let head = String::from_utf8_lossy(&raw[..split]);
    let mut body = raw[split + 4..].to_vec();
    let status: u16 = head
        .split_whitespace()
        .nth(1)
        .and_then(|s| s.parse().ok())
        .ok_or("bad HTTP status line")?;
    let chunked = head.lines().any(|l| {
        let l = l.to_ascii_lowercase();
        l.starts_with("transfer-encoding:") && l.contains("chunked")
    });
    if chunked {
        body = dechunk(&body);
    }
    Ok((status, body))
}

fn dechunk(mut data: &[u8]) -> Vec<u8> {
    let mut out = Vec::new();
    while let Some(line_end) = data.windows(2).position(|w| w == b"\r\n") {
        let size_text = String::from_utf8_lossy(&data[..line_end]);
        let size = usize::from_str_radix(size_text.split(';').next().unwrap_or("").trim(), 16)
            .unwrap_or(0);
        data = &data[line_end + 2..];
        if size == 0 || size > data.len() {
            break;
        }
        out.extend_from_slice(&data[..size]);
        data = data.get(size + 2..).unwrap_or(&[]);
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn responses() {
        let (status, body) =
            parse_response(b"HTTP/1.1 201 Created\r\ncontent-length: 13\r\n\r\n{\"token\":\"a\"}")
                .unwrap();
        assert_eq!(status, 201);
        assert_eq!(body["token"], "a");
        let (status, body) = parse_response(
            b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n4\r\n{\"a\"\r\n3\r\n:1}\r\n0\r\n\r\n",
        )
        .unwrap();
        assert_eq!(status, 200);
        assert_eq!(body["a"], 1);
        assert_eq!(
            HttpBase::url_for_ws("ws://127.0.0.1:4000/socket/websocket").unwrap(),
            "http://127.0.0.1:4000"
        );
    }
}
