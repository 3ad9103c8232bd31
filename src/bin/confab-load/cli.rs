//! Command-line arguments: the mode (subcommand), the options every mode
//! shares (server URL, credentials, topics, timing, process sampling) and
//! each mode's own knobs. Durations accept `500ms`, `10s`, `2m` or a plain
//! number of seconds.

use std::time::Duration;

use clap::{Args, Parser, Subcommand};

/// Load generator for Phoenix Channels V2 JSON servers (confab or any other).
#[derive(Parser, Debug)]
#[command(
    name = "confab-load",
    version,
    about = "Load generator for Phoenix Channels V2 JSON servers (confab or any other)",
    long_about = None
)]
pub struct Cli {
    #[command(subcommand)]
    pub mode: Mode,
}

/// What to measure.
#[derive(Subcommand, Debug)]
pub enum Mode {
    /// Open N sockets, join K topics each, hold them with heartbeats; report
    /// established/failed, connect and join latency, heartbeat RTT while held
    Connect(ConnectArgs),
    /// S subscribers on one topic, P publishers at a target rate: delivered
    /// messages/s, end-to-end latency, lost and duplicated messages
    Fanout(FanoutArgs),
    /// C publishers pushing as fast as acks come back: acknowledged (durable)
    /// messages/s and ack latency
    Publish(PublishArgs),
    /// Push -> reply round trips of an event that involves no persistence
    /// (default: the `phoenix` heartbeat)
    Rtt(RttArgs),
    /// N clients drop at once and rejoin with last_seq while publishing
    /// continues: time to recover, gaps and duplicates (must be zero)
    ReconnectStorm(StormArgs),
}

impl Mode {
    /// The options shared by every mode.
    pub fn common(&self) -> &Common {
        match self {
            Mode::Connect(a) => &a.common,
            Mode::Fanout(a) => &a.common,
            Mode::Publish(a) => &a.common,
            Mode::Rtt(a) => &a.common,
            Mode::ReconnectStorm(a) => &a.common,
        }
    }

    /// The mode's name as in the final JSON line.
    pub fn name(&self) -> &'static str {
        match self {
            Mode::Connect(_) => "connect",
            Mode::Fanout(_) => "fanout",
            Mode::Publish(_) => "publish",
            Mode::Rtt(_) => "rtt",
            Mode::ReconnectStorm(_) => "reconnect-storm",
        }
    }

    /// Extra time the mode may need beyond warmup + duration (connecting,
    /// draining) before the hard timeout stops the run.
    pub fn slack(&self) -> Duration {
        let c = self.common();
        let opens = |n: usize| {
            let waves = n.div_ceil(c.connect_concurrency.max(1)) as u32;
            c.op_timeout * 2 * waves.clamp(1, 20)
        };
        match self {
            Mode::Connect(a) => opens(a.sockets) + Duration::from_secs(30),
            Mode::Fanout(a) => opens(a.subscribers + a.publishers) + a.drain * 2,
            Mode::Publish(a) => opens(a.concurrency) + Duration::from_secs(30),
            Mode::Rtt(a) => opens(a.concurrency) + Duration::from_secs(30),
            Mode::ReconnectStorm(a) => {
                opens(a.clients) + a.reconnect_timeout + a.drain * 2 + Duration::from_secs(10)
            }
        }
    }
}

/// Options shared by every mode.
#[derive(Args, Debug, Clone)]
pub struct Common {
    /// WebSocket endpoint; `vsn=2.0.0` is added to the query unless present.
    /// Several (repeat the option or separate with commas, e.g. the nodes of
    /// a cluster): sockets are spread over them round robin, and the report
    /// counts the connections each one received
    #[arg(
        long = "url",
        value_name = "URL",
        value_delimiter = ',',
        default_value = "ws://127.0.0.1:4000/socket/websocket"
    )]
    pub urls: Vec<String>,
    /// fanout and reconnect-storm: publisher sockets connect round robin to
    /// these URLs instead of the --url list (repeatable or comma-separated)
    #[arg(long = "publisher-url", value_name = "URL", value_delimiter = ',')]
    pub publisher_urls: Vec<String>,
    /// Token sent as the `token` connect param (repeat for several users;
    /// socket i uses token i mod count)
    #[arg(long = "token", value_name = "T")]
    pub tokens: Vec<String>,
    /// Register (or log in) accounts `<prefix>-0`, `<prefix>-1`, ... over
    /// HTTP (`POST /api/register`, then `/api/login` if taken) and use their tokens
    #[arg(long, value_name = "PREFIX", conflicts_with = "tokens")]
    pub register_prefix: Option<String>,
    /// Number of accounts for --register-prefix
    #[arg(long, default_value_t = 1)]
    pub users: usize,
    /// Password of the registered accounts
    #[arg(long, default_value = "loadgen-password")]
    pub password: String,
    /// HTTP base URL for registration and --create-rooms (default: from the
    /// first --url)
    #[arg(long, value_name = "URL")]
    pub http: Option<String>,
    /// Offer permessage-deflate (RFC 7692) in the handshake, and inflate
    /// the messages the server sends compressed (the server must answer
    /// with server_no_context_takeover, as confab does)
    #[arg(long)]
    pub deflate: bool,
    /// Extra connect param added to the URL query (repeatable)
    #[arg(long = "param", value_name = "K=V")]
    pub params: Vec<String>,
    /// Topic used when no --topic-pattern is given
    #[arg(long, default_value = "room:bench")]
    pub topic: String,
    /// Topic pattern; `{i}` is replaced by an index in 0..--rooms
    #[arg(long, value_name = "PATTERN")]
    pub topic_pattern: Option<String>,
    /// Number of distinct topics the pattern expands to
    #[arg(long, default_value_t = 1)]
    pub rooms: usize,
    /// confab only: create every `room:<name>` topic used with `POST /api/rooms`
    /// (an existing room is fine) before connecting
    #[arg(long)]
    pub create_rooms: bool,
    /// Measured window
    #[arg(long, default_value = "10s", value_parser = parse_duration)]
    pub duration: Duration,
    /// Load before the measured window (not counted)
    #[arg(long, default_value = "2s", value_parser = parse_duration)]
    pub warmup: Duration,
    /// Runtime threads: 1 = current-thread runtime (leaves CPU to the server)
    #[arg(long, default_value_t = 1)]
    pub threads: usize,
    /// Spread client source addresses over 127.0.0.1..=127.0.0.N (loopback
    /// targets only; 0 = let the kernel choose)
    #[arg(long, default_value_t = 250, value_parser = clap::value_parser!(u32).range(0..=250))]
    pub source_ips: u32,
    /// Most WebSocket handshakes (and joins) in flight at once. The default
    /// stays below the listen backlog of 128 that Rust servers get from
    /// std/mio, so the kernel does not drop SYNs (each drop costs the client
    /// a 1 s retransmit); raise it to open connections truly at once
    #[arg(long, default_value_t = 100)]
    pub connect_concurrency: usize,
    /// Timeout of one connect, join or request
    #[arg(long, default_value = "10s", value_parser = parse_duration)]
    pub op_timeout: Duration,
    /// Heartbeat interval of every held socket
    #[arg(long, default_value = "30s", value_parser = parse_duration)]
    pub heartbeat_interval: Duration,
    /// Sample this process's CPU (utime+stime) and RSS from /proc
    #[arg(long, value_name = "PID")]
    pub server_pid: Option<u32>,
    /// Also report the CPU of process PID, with its live children and the
    /// children it has reaped (e.g. a database server and its backends),
    /// over the measured window, under NAME (repeatable)
    #[arg(long = "watch", value_name = "NAME=PID", value_parser = parse_watch)]
    pub watch: Vec<(String, u32)>,
    /// Hard limit for the whole run (default: warmup + duration + a mode-specific slack)
    #[arg(long, value_parser = parse_duration)]
    pub timeout: Option<Duration>,
    /// Free text copied into the JSON line
    #[arg(long)]
    pub label: Option<String>,
}

impl Common {
    /// The --url list as given, comma-separated (one URL: that URL).
    pub fn url_label(&self) -> String {
        self.urls.join(",")
    }

    /// The first --url: set-up requests (registration, rooms) go there.
    pub fn first_url(&self) -> &str {
        self.urls.first().map_or("", String::as_str)
    }

    /// The topic of index `i` (pattern index `i mod rooms`).
    pub fn topic_for(&self, i: usize) -> String {
        match &self.topic_pattern {
            Some(pattern) => pattern.replace("{i}", &(i % self.rooms.max(1)).to_string()),
            None => self.topic.clone(),
        }
    }

    /// How many distinct topics [`Common::topic_for`] yields.
    pub fn topic_count(&self) -> usize {
        if self.topic_pattern.is_some() {
            self.rooms.max(1)
        } else {
            1
        }
    }
}

#[derive(Args, Debug, Clone)]
pub struct ConnectArgs {
    #[command(flatten)]
    pub common: Common,
    /// Sockets to open
    #[arg(long, default_value_t = 1000)]
    pub sockets: usize,
    /// Topics each socket joins (socket s joins topics s*K .. s*K+K-1, mod --rooms)
    #[arg(long, default_value_t = 1)]
    pub topics_per_socket: usize,
    /// New sockets per second (0 = as fast as --connect-concurrency allows)
    #[arg(long, default_value_t = 0.0)]
    pub connect_rate: f64,
}

#[derive(Args, Debug, Clone)]
pub struct FanoutArgs {
    #[command(flatten)]
    pub common: Common,
    /// Subscriber sockets on the topic
    #[arg(long, default_value_t = 1000)]
    pub subscribers: usize,
    /// Publisher sockets (each also joins the topic)
    #[arg(long, default_value_t = 1)]
    pub publishers: usize,
    /// Total messages per second over all publishers
    #[arg(long, default_value_t = 100.0)]
    pub rate: f64,
    /// Length of each message body in bytes (at least the stamp)
    #[arg(long, default_value_t = 100)]
    pub body_bytes: usize,
    /// After publishing stops, wait at most this long for deliveries
    #[arg(long, default_value = "5s", value_parser = parse_duration)]
    pub drain: Duration,
    /// Read this Prometheus endpoint (`http://host:port`, `/metrics` unless
    /// a path is given) at the start and end of the measured window and
    /// report the increase of every counter (`*_total`, and `*_count` and
    /// `*_sum` of histograms) (repeatable)
    #[arg(long = "scrape", value_name = "URL")]
    pub scrape: Vec<String>,
}

#[derive(Args, Debug, Clone)]
pub struct PublishArgs {
    #[command(flatten)]
    pub common: Common,
    /// Concurrent publisher sockets (publisher j uses topic j of the pattern)
    #[arg(long, default_value_t = 8)]
    pub concurrency: usize,
    /// Unacknowledged pushes each publisher keeps in flight
    #[arg(long, default_value_t = 1)]
    pub inflight: usize,
    /// Messages per second per publisher (0 = as fast as acks come back)
    #[arg(long, default_value_t = 0.0)]
    pub rate: f64,
    /// Length of each message body in bytes
    #[arg(long, default_value_t = 100)]
    pub body_bytes: usize,
    /// Stop after this many messages in total (also bounded by --duration)
    #[arg(long)]
    pub count: Option<u64>,
}

#[derive(Args, Debug, Clone)]
pub struct RttArgs {
    #[command(flatten)]
    pub common: Common,
    /// Concurrent sockets, each with one request in flight
    #[arg(long, default_value_t = 1)]
    pub concurrency: usize,
    /// Requests per second per socket (0 = back to back)
    #[arg(long, default_value_t = 0.0)]
    pub rate: f64,
    /// Stop after this many round trips in total (also bounded by --duration)
    #[arg(long)]
    pub count: Option<u64>,
    /// Topic of the request (joined first unless it is `phoenix`)
    #[arg(long, default_value = "phoenix")]
    pub rtt_topic: String,
    /// Event of the request
    #[arg(long, default_value = "heartbeat")]
    pub rtt_event: String,
    /// Payload of the request (a JSON object)
    #[arg(long, default_value = "{}")]
    pub rtt_payload: String,
}

#[derive(Args, Debug, Clone)]
pub struct StormArgs {
    #[command(flatten)]
    pub common: Common,
    /// Clients that drop and reconnect (client i joins topic i of the pattern)
    #[arg(long, default_value_t = 1000)]
    pub clients: usize,
    /// Total messages per second (one publisher socket per topic, never dropped)
    #[arg(long, default_value_t = 50.0)]
    pub rate: f64,
    /// Length of each message body in bytes
    #[arg(long, default_value_t = 60)]
    pub body_bytes: usize,
    /// How long one client keeps retrying to reconnect and rejoin
    #[arg(long, default_value = "30s", value_parser = parse_duration)]
    pub reconnect_timeout: Duration,
    /// After publishing stops, wait at most this long for clients to catch up
    #[arg(long, default_value = "5s", value_parser = parse_duration)]
    pub drain: Duration,
}

/// Parses `NAME=PID` of `--watch`.
fn parse_watch(text: &str) -> Result<(String, u32), String> {
    let (name, pid) = text
        .split_once('=')
        .ok_or_else(|| format!("{text:?}: expected NAME=PID"))?;
    let pid = pid
        .trim()
        .parse()
        .map_err(|_| format!("{text:?}: {pid:?} is not a process id"))?;
    if name.is_empty() {
        return Err(format!("{text:?}: the name is empty"));
    }
    Ok((name.to_string(), pid))
}

/// Parses `250ms`, `1.5s`, `2m`, `1h` or a plain number of seconds.
pub fn parse_duration(text: &str) -> Result<Duration, String> {
    let text = text.trim();
    let split = text
        .find(|c: char| !(c.is_ascii_digit() || c == '.'))
        .unwrap_or(text.len());
    let (number, unit) = text.split_at(split);
    let value: f64 = number
        .parse()
        .map_err(|_| format!("{text:?}: expected a duration like 500ms, 10s or 2m"))?;
    let seconds = match unit.trim() {
        "" | "s" => value,
        "ms" => value / 1000.0,
        "us" => value / 1_000_000.0,
        "m" | "min" => value * 60.0,
        "h" => value * 3600.0,
        other => return Err(format!("{text:?}: unknown unit {other:?} (ms, s, m, h)")),
    };
    if !seconds.is_finite() || seconds < 0.0 {
        return Err(format!("{text:?}: not a valid duration"));
    }
    Ok(Duration::from_secs_f64(seconds))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn durations() {
        assert_eq!(parse_duration("10s").unwrap(), Duration::from_secs(10));
        assert_eq!(parse_duration("3").unwrap(), Duration::from_secs(3));
        assert_eq!(parse_duration("250ms").unwrap(), Duration::from_millis(250));
        assert_eq!(parse_duration("1.5s").unwrap(), Duration::from_millis(1500));
        assert_eq!(parse_duration("2m").unwrap(), Duration::from_secs(120));
        assert!(parse_duration("x").is_err());
        assert!(parse_duration("3 days").is_err());
    }

    #[test]
    fn topics() {
        let cli = Cli::parse_from([
            "confab-load",
            "connect",
            "--topic-pattern",
            "room:b-{i}",
            "--rooms",
            "3",
        ]);
        let c = cli.mode.common();
        assert_eq!(c.topic_for(4), "room:b-1");
        assert_eq!(c.topic_count(), 3);
        let cli = Cli::parse_from(["confab-load", "rtt"]);
        assert_eq!(cli.mode.common().topic_for(7), "room:bench");
    }

    #[test]
    fn several_urls_and_watched_processes() {
        let cli = Cli::parse_from(["confab-load", "rtt"]);
        let c = cli.mode.common();
        assert_eq!(c.urls, ["ws://127.0.0.1:4000/socket/websocket"]);
        assert_eq!(c.url_label(), "ws://127.0.0.1:4000/socket/websocket");
        assert!(c.publisher_urls.is_empty() && c.watch.is_empty());
        let cli = Cli::parse_from([
            "confab-load",
            "fanout",
            "--url",
            "ws://a:1/s,ws://b:2/s",
            "--url",
            "ws://c:3/s",
            "--publisher-url",
            "ws://a:1/s",
            "--watch",
            "pg=42",
            "--watch",
            "node 2=7",
            "--scrape",
            "http://a:1",
        ]);
        let c = cli.mode.common();
        assert_eq!(c.urls, ["ws://a:1/s", "ws://b:2/s", "ws://c:3/s"]);
        assert_eq!(c.first_url(), "ws://a:1/s");
        assert_eq!(c.url_label(), "ws://a:1/s,ws://b:2/s,ws://c:3/s");
        assert_eq!(c.publisher_urls, ["ws://a:1/s"]);
        assert_eq!(c.watch, [("pg".to_string(), 42), ("node 2".to_string(), 7)]);
        let Mode::Fanout(args) = &cli.mode else {
            panic!("not fanout")
        };
        assert_eq!(args.scrape, ["http://a:1"]);
        assert!(parse_watch("x").is_err());
        assert!(parse_watch("=3").is_err());
        assert!(parse_watch("a=b").is_err());
    }
}
