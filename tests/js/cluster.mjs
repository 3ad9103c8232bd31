// Cluster harness: several confab nodes on one PostgreSQL database and a
// NATS bus of three `nats-server` processes clustered through routes, so
// the phoenix-client scenarios can put each client on a different node.
//
//   node postgres.mjs node --test --test-concurrency=1 cluster/
//
// PostgreSQL: the server handed down by postgres.mjs (CONFAB_TEST_PG_URL,
// one per run) or, when a test file runs on its own, a private one started
// here the same way (`startPostgres`). Each cluster gets a fresh database.
//
// NATS: `nats-server -a 127.0.0.1 -p <client> --cluster nats://127.0.0.1:<route>
// --routes <the others> --cluster_name confab-test -m <monitor>` three
// times on free loopback ports; the cluster is up once every server's
// `/routez` lists the other two. Node i talks to NATS server i only, so
// every broadcast between nodes crosses a route.
//
// confab: harness `Server`s with CONFAB_NATS_URL, CONFAB_NODE_NAME,
// CONFAB_DATABASE_URL, one CONFAB_JWT_SECRET and
// CONFAB_CLUSTER_HEARTBEAT_MS=200. The cluster is ready once every node's
// `/metrics` counts the others as peers (each has heard the others'
// heartbeats, so their subscriptions reached every NATS server).
//
// Every child is started through `setpriv --pdeathsig` where available and
// killed on this process's exit, so nothing outlives a failed or killed
// run; `cleanup()` stops everything in order.

import { execFile, spawn, spawnSync } from "node:child_process";
import { after, before } from "node:test";
import { existsSync } from "node:fs";
import { createServer } from "node:net";
import { setTimeout as delay } from "node:timers/promises";
import { Server, unique } from "./harness.mjs";
import { startPostgres } from "./postgres.mjs";

/** Heartbeat between nodes in the tests (a node is down after 5 silent beats: 1 s). */
export const HEARTBEAT_MS = 200;
const NATS_READY_MS = 10000;
const CLUSTER_READY_MS = 15000;

const HAS_SETPRIV = spawnSync("setpriv", ["--version"], { stdio: "ignore" }).status === 0;
/** Debian installs nats-server in /usr/sbin, which is not on every user's PATH. */
const NATS_SERVER =
  spawnSync("nats-server", ["--version"], { stdio: "ignore" }).status === 0 || !existsSync("/usr/sbin/nats-server")
    ? "nats-server"
    : "/usr/sbin/nats-server";

/** Every child process of this module still running; killed when this process exits. */
const children = new Set();
process.on("exit", () => {
  for (const child of children) {
    try {
      child.kill("SIGKILL");
    } catch {}
  }
});
for (const signal of ["SIGINT", "SIGTERM"]) {
  process.once(signal, () => {
    for (const child of children) {
      try {
        child.kill("SIGKILL");
      } catch {}
    }
    process.exit(128 + (signal === "SIGINT" ? 2 : 15));
  });
}

function track(child) {
  if (!child) return;
  children.add(child);
  child.once("exit", () => children.delete(child));
}

function freePort() {
  return new Promise((resolve, reject) => {
    const probe = createServer();
    probe.once("error", reject);
    probe.listen(0, "127.0.0.1", () => {
      const { port } = probe.address();
      probe.close(() => resolve(port));
    });
  });
}

/** Spawns `program` so that it dies with this process (setpriv --pdeathsig). */
function spawnTied(program, args, options, signal = "KILL") {
  if (HAS_SETPRIV) return spawn("setpriv", ["--pdeathsig", signal, "--", program, ...args], options);
  return spawn(program, args, options);
}

// ------------------------------------------------------------ PostgreSQL

let privatePostgres = null;

/** The PostgreSQL server for this process: handed down, or started here once. */
async function postgres() {
  if (process.env.CONFAB_TEST_PG_URL) {
    return { url: process.env.CONFAB_TEST_PG_URL, bin: process.env.CONFAB_TEST_PG_BIN || "" };
  }
  if (!privatePostgres) {
    privatePostgres = startPostgres().then((pg) => {
      track(pg.child);
      return pg;
    });
  }
  return privatePostgres;
}

// A private server is stopped after every test of the file.
if (!process.env.CONFAB_TEST_PG_URL) {
  after(async () => {
    if (privatePostgres) await (await privatePostgres).stop();
  });
}

async function createDatabase() {
  const pg = await postgres();
  const url = new URL(pg.url);
  const name = unique("confab_cluster_");
  const createdb = pg.bin ? `${pg.bin}/createdb` : "createdb";
  await new Promise((resolve, reject) => {
    execFile(createdb, ["-h", url.hostname, "-p", url.port, "-U", url.username, name], (error, _stdout, stderr) => {
      if (error) reject(new Error(`createdb ${name} failed: ${error.message}\n${stderr}`));
      else resolve();
    });
  });
  return `postgres://${url.username}@${url.hostname}:${url.port}/${name}`;
}

// ------------------------------------------------------------------ NATS

/** One `nats-server` process of the bus. */
class NatsServer {
  constructor(name, ports) {
    this.name = name;
    this.ports = ports; // {client, route, monitor}
    this.output = [];
    this.proc = null;
  }

  get url() {
    return `nats://127.0.0.1:${this.ports.client}`;
  }

  get routeUrl() {
    return `nats://127.0.0.1:${this.ports.route}`;
  }

  tail(n = 3000) {
    const text = this.output.join("");
    return text.length > n ? text.slice(-n) : text;
  }

  /** Starts the server with routes to `peers`; resolves once it is ready for clients. */
  start(peers) {
    const args = [
      "-a", "127.0.0.1", "-p", String(this.ports.client),
      "-n", this.name,
      "--cluster", this.routeUrl,
      "--routes", peers.map((p) => p.routeUrl).join(","),
      "--cluster_name", "confab-test",
      "-m", String(this.ports.monitor),
    ];
    const proc = spawnTied(NATS_SERVER, args, { stdio: ["ignore", "pipe", "pipe"] });
    this.proc = proc;
    track(proc);
    proc.exited = new Promise((resolve) => proc.on("exit", (code, signal) => resolve({ code, signal })));
    return new Promise((resolve, reject) => {
      let done = false;
      const finish = (fn) => {
        if (done) return;
        done = true;
        clearTimeout(timer);
        fn();
      };
      const timer = setTimeout(
        () => finish(() => reject(new Error(`${this.name} not ready within ${NATS_READY_MS} ms\n${this.tail()}`))),
        NATS_READY_MS,
      );
      for (const stream of [proc.stdout, proc.stderr]) {
        stream.setEncoding("utf8");
        stream.on("data", (chunk) => {
          this.output.push(chunk);
          if (this.output.join("").includes("Server is ready")) finish(resolve);
        });
      }
      proc.on("error", (e) =>
        finish(() => reject(new Error(`cannot run nats-server (install Debian's nats-server): ${e.message}`))),
      );
      proc.exited.then(({ code, signal }) =>
        finish(() => reject(new Error(`${this.name} exited (code ${code}, signal ${signal})\n${this.tail()}`))),
      );
    });
  }

  /** The number of routes `/routez` reports (0 while the monitor is not up). */
  async routes() {
    try {
      const res = await fetch(`http://127.0.0.1:${this.ports.monitor}/routez`);
      if (res.status !== 200) return 0;
      return (await res.json()).num_routes ?? 0;
    } catch {
      return 0;
    }
  }

  /** Freezes the server (SIGSTOP): what its clients send waits in their connections. */
  pause() {
    this.proc.kill("SIGSTOP");
  }

  /** Lets a paused server run again (SIGCONT). */
  resume() {
    this.proc.kill("SIGCONT");
  }

  async stop() {
    const proc = this.proc;
    if (!proc || proc.exitCode !== null || proc.signalCode !== null) return;
    proc.kill("SIGTERM");
    const timer = setTimeout(() => proc.kill("SIGKILL"), 5000);
    await proc.exited;
    clearTimeout(timer);
  }
}

/** Starts `count` NATS servers routed to each other; resolves once every one has a route to every other. */
async function startNats(count) {
  for (let attempt = 1; ; attempt++) {
    const servers = [];
    for (let i = 0; i < count; i++) {
      servers.push(new NatsServer(`nats-${i + 1}`, { client: await freePort(), route: await freePort(), monitor: await freePort() }));
    }
    try {
      await Promise.all(servers.map((s) => s.start(servers.filter((p) => p !== s))));
      const until = Date.now() + NATS_READY_MS;
      // Polling /routez is the only way to see routes come up.
      while ((await Promise.all(servers.map((s) => s.routes()))).some((n) => n < count - 1)) {
        if (Date.now() > until) {
          throw new Error(`the NATS routes did not come up within ${NATS_READY_MS} ms\n${servers.map((s) => s.tail()).join("\n")}`);
        }
        await delay(20);
      }
      return servers;
    } catch (e) {
      await Promise.all(servers.map((s) => s.stop()));
      // A port found free may be taken before the server binds it: retry.
      if (attempt >= 3 || !/address already in use|exited/i.test(e.message)) throw e;
    }
  }
}

// --------------------------------------------------------------- cluster

/** The value of a plain (unlabelled) metric line of `/metrics`, or null. */
export async function metric(node, name) {
  const res = await fetch(`${node.url}/metrics`);
  const text = await res.text();
  const m = text.match(new RegExp(`^${name} (\\d+)$`, "m"));
  return m ? Number(m[1]) : null;
}

/**
 * Several confab nodes on one database and a three-server NATS bus.
 * `nodes[i]` is a harness `Server` (REST helpers, `connect`, `socket`, ...)
 * connected to `nats[i % nats.length]`.
 */
export class Cluster {
  constructor({ nodes = 3, env = {}, name = "cluster" } = {}) {
    this.size = nodes;
    this.env = env;
    this.name = name;
    this.nats = [];
    this.nodes = [];
    this.databaseUrl = null;
  }

  /** Output of every node and NATS server, for failure messages. */
  tail(n = 3000) {
    return [...this.nodes, ...this.nats].map((s) => `--- ${s.name} ---\n${s.tail(n)}`).join("\n");
  }

  async start() {
    const [databaseUrl, nats] = await Promise.all([createDatabase(), startNats(3)]);
    this.databaseUrl = databaseUrl;
    this.nats = nats;
    const secret = `cluster-test-secret-${"x".repeat(32)}`;
    for (let i = 0; i < this.size; i++) {
      const name = `node-${i + 1}`;
      this.nodes.push(
        new Server({
          name: `${this.name} ${name}`,
          dieWithParent: true,
          env: {
            CONFAB_DATABASE_URL: databaseUrl,
            CONFAB_DATABASE_POOL_SIZE: "8",
            CONFAB_NATS_URL: nats[i % nats.length].url,
            CONFAB_NODE_NAME: name,
            CONFAB_JWT_SECRET: secret,
            CONFAB_CLUSTER_HEARTBEAT_MS: String(HEARTBEAT_MS),
            ...this.env,
          },
        }),
      );
    }
    await Promise.all(this.nodes.map((node) => node.start()));
    for (const node of this.nodes) track(node.proc);
    await this.ready();
    return this;
  }

  /** Resolves once every running node counts every other running node as a peer. */
  async ready(ms = CLUSTER_READY_MS) {
    const running = this.nodes.filter((n) => n.running);
    const until = Date.now() + ms;
    for (;;) {
      const peers = await Promise.all(running.map((n) => metric(n, "confab_cluster_peers").catch(() => null)));
      if (peers.every((p) => p === running.length - 1)) return;
      if (Date.now() > until) {
        throw new Error(`the nodes did not all see each other within ${ms} ms: peers ${JSON.stringify(peers)}\n${this.tail()}`);
      }
      // Polling /metrics is the only way to see the heartbeats arrive.
      await delay(20);
    }
  }

  /** Starts node `i` again (same data directory and port) and waits until the cluster is whole. */
  async restart(i) {
    const node = this.nodes[i];
    await node.restart();
    track(node.proc);
    await this.ready();
  }

  async cleanup() {
    await Promise.all(this.nodes.map((node) => node.cleanup()));
    await Promise.all(this.nats.map((s) => s.stop()));
  }
}

/**
 * The cluster of a `describe` block: started before its tests with `users`
 * freshly registered accounts (handed to `ready` with the cluster), stopped
 * after them.
 */
export function suiteCluster(options, users = 0, ready = () => {}) {
  const cluster = new Cluster(options);
  before(async () => {
    await cluster.start();
    const accounts = [];
    for (let i = 0; i < users; i++) accounts.push(await cluster.nodes[i % cluster.size].register());
    await ready(...accounts);
  });
  after(() => cluster.cleanup());
  return cluster;
}
