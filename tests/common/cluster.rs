//! A confab cluster for the tests: one private PostgreSQL ([`PgServer`]),
//! a NATS cluster ([`NatsCluster`], three servers by default) and `n`
//! confab nodes ([`TestServer`]) on the same database, each with its own
//! data directory and its own name (`node<i>`).
//!
//! Node `i` is given only NATS server `i % servers` to connect to (it
//! learns the others from that server, for reconnecting), so killing one
//! NATS server cuts the bus of known nodes and not of the others. Every
//! node signs tokens with the same secret, so a token from one works on
//! all; heartbeats are every 200 ms and a node silent for 5 of them is
//! down. The push rate limit is lifted (not what these tests exercise).
//!
//! Helpers kill a node with SIGKILL and start it again (same name, data
//! directory and settings; a new address), read `/metrics` and `/readyz`,
//! and wait for `confab_cluster_peers` to reach a value. Dropping the
//! cluster kills the nodes, then the NATS servers, then PostgreSQL.

use std::net::SocketAddr;
use std::time::Duration;

use serde_json::Value;

use super::nats::NatsCluster;
use super::postgres::PgServer;
use super::{wait_for, Response, TestServer};

/// The JWT secret every node shares (32+ bytes, as cluster mode requires).
pub const JWT_SECRET: &str = "confab-cluster-test-secret-0123456789abcdef";

/// Heartbeat interval of every node, in ms.
pub const HEARTBEAT_MS: u64 = 200;

/// Heartbeats of silence after which a node counts as down.
pub const DOWN_AFTER: u64 = 5;

/// How long a node may take to see its peers after a start.
pub const FORM_TIMEOUT: Duration = Duration::from_secs(20);

/// How to start a [`TestCluster`].
#[derive(Clone, Debug)]
pub struct ClusterOptions {
    nodes: usize,
    nats_servers: usize,
    env: Vec<(String, String)>,
}

impl ClusterOptions {
    /// The number of NATS servers (default 3).
    pub fn nats_servers(mut self, n: usize) -> Self {
        self.nats_servers = n;
        self
    }

    /// An environment variable for every node (after the fixture's own,
    /// so it may override them).
    pub fn env(mut self, key: &str, value: &str) -> Self {
        self.env.push((key.to_owned(), value.to_owned()));
        self
    }

    /// Starts PostgreSQL, the NATS cluster and the nodes, and waits until
    /// every node sees every other.
    pub fn start(self) -> TestCluster {
        let pg = PgServer::start();
        let nats = NatsCluster::start(self.nats_servers);
        let mut cluster = TestCluster {
            nodes: Vec::new(),
            nats,
            pg,
            env: self.env,
        };
        // The first node makes the schema; the others find it.
        for i in 0..self.nodes {
            let node = cluster.node_options(i).start();
            cluster.nodes.push(node);
        }
        cluster.wait_formed();
        cluster
    }
}

/// A running cluster (see the module docs). Fields drop in order: the
/// nodes first, then NATS, then PostgreSQL.
pub struct TestCluster {
    nodes: Vec<TestServer>,
    pub nats: NatsCluster,
    pub pg: PgServer,
    env: Vec<(String, String)>,
}

impl TestCluster {
    /// Options for a cluster of `nodes` confab nodes.
    pub fn options(nodes: usize) -> ClusterOptions {
        ClusterOptions {
            nodes,
            nats_servers: 3,
            env: Vec::new(),
        }
    }

    /// A cluster of `nodes` nodes with the default settings.
    pub fn start(nodes: usize) -> TestCluster {
        TestCluster::options(nodes).start()
    }

    /// The server options of node `i`.
    fn node_options(&self, i: usize) -> super::ServerOptions {
        let nats = self.nats.url(i % self.nats.len());
        TestServer::options()
            .env("CONFAB_DATABASE_URL", &self.pg.url())
            .env("CONFAB_DATABASE_POOL_SIZE", "8")
            .env("CONFAB_NATS_URL", &nats)
            .env("CONFAB_JWT_SECRET", JWT_SECRET)
            .env("CONFAB_NODE_NAME", &format!("node{i}"))
            .env("CONFAB_CLUSTER_HEARTBEAT_MS", &HEARTBEAT_MS.to_string())
            .env("CONFAB_CLUSTER_DOWN_AFTER", &DOWN_AFTER.to_string())
            .env("CONFAB_PUSH_BURST", "1000000")
            .env("CONFAB_PUSH_REFILL_PER_SEC", "1000000")
            .env("CONFAB_LOG", "warn,confab::cluster=info")
            .envs(
                &self
                    .env
                    .iter()
                    .map(|(k, v)| (k.as_str(), v.as_str()))
                    .collect::<Vec<_>>(),
            )
    }

    /// How many nodes the cluster has (running or not).
    pub fn len(&self) -> usize {
        self.nodes.len()
    }

    /// Node `i`.
    pub fn node(&self, i: usize) -> &TestServer {
        &self.nodes[i]
    }

    /// Node `i`, mutably (to stop or signal it).
    pub fn node_mut(&mut self, i: usize) -> &mut TestServer {
        &mut self.nodes[i]
    }

    /// The address node `i` listens on now.
    pub fn addr(&self, i: usize) -> SocketAddr {
        self.nodes[i].addr()
    }

    /// Whether node `i` runs.
    pub fn is_running(&mut self, i: usize) -> bool {
        self.nodes[i].is_running()
    }

    /// Kills node `i` with SIGKILL (no goodbye, no flush).
    pub fn kill(&mut self, i: usize) {
        self.nodes[i].kill();
    }

    /// Starts the killed (or stopped) node `i` again: same name, data
    /// directory and settings, a new run and a new address.
    pub fn restart(&mut self, i: usize) {
        self.nodes[i].restart();
    }

    /// Node `i`'s `/metrics` text.
    pub fn metrics(&self, i: usize) -> String {
        let response = self.nodes[i].get("/metrics", None);
        response.assert_status(200, &format!("GET /metrics of node {i}"));
        response.body
    }

    /// The value of the unlabelled metric `name` on node `i`.
    pub fn metric(&self, i: usize, name: &str) -> Option<f64> {
        metric_value(&self.metrics(i), name)
    }

    /// Node `i`'s `/readyz`: status and text.
    pub fn readyz(&self, i: usize) -> Response {
        self.nodes[i].get("/readyz", None)
    }

    /// Waits until node `i` reports `confab_cluster_peers` = `peers`.
    #[track_caller]
    pub fn wait_peers(&self, i: usize, peers: usize, within: Duration) {
        wait_for(within, &format!("node {i} to see {peers} peers"), || {
            (self.metric(i, "confab_cluster_peers") == Some(peers as f64)).then_some(())
        });
    }

    /// Waits until every running node sees every other running node.
    #[track_caller]
    pub fn wait_formed(&mut self) {
        let running: Vec<usize> = (0..self.nodes.len())
            .filter(|&i| self.nodes[i].is_running())
            .collect();
        for &i in &running {
            self.wait_peers(i, running.len() - 1, FORM_TIMEOUT);
        }
    }

    /// Registers `username` through node 0; returns `(token, user)`.
    #[track_caller]
    pub fn register(&self, username: &str, password: &str) -> (String, Value) {
        self.nodes[0].register(username, password)
    }

    /// Every node's output so far, for failure messages.
    pub fn logs(&self) -> String {
        self.nodes
            .iter()
            .enumerate()
            .map(|(i, node)| format!("--- node{i}:\n{}", node.logs()))
            .collect::<Vec<_>>()
            .join("\n")
    }
}

/// The value of the unlabelled metric `name` in Prometheus text.
pub fn metric_value(text: &str, name: &str) -> Option<f64> {
    text.lines().find_map(|line| {
        let rest = line.strip_prefix(name)?.strip_prefix(' ')?;
        rest.trim().parse().ok()
    })
}
