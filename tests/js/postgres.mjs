// Runs a command with a private PostgreSQL server, so the suites run
// confab on its PostgreSQL backend:
//
//   node postgres.mjs node --test --test-concurrency=1 protocol/
//
// Finds the server binaries (`pg_config --bindir`, else the newest
// /usr/lib/postgresql/*/bin), runs `initdb` into a temporary directory,
// starts `postgres` on 127.0.0.1 at a free port with fsync on, runs the
// command with CONFAB_TEST_PG_URL (the server, without a database) and
// CONFAB_TEST_PG_BIN (where `createdb` is) in its environment, then stops
// the server (fast shutdown) and removes the directory. The harness
// (harness.mjs) creates a fresh database per server from these.
//
// PostgreSQL refuses to run as root: then the directory belongs to uid/gid
// 65534 (nobody) and the server runs as that user. The postmaster is
// started through `setpriv --pdeathsig` where available, so it dies with
// this process even if this process is killed.
//
// `startPostgres()` does the same for a caller in this process (the
// cluster harness, cluster.mjs, when no server was handed down).

import { execFileSync, spawn, spawnSync } from "node:child_process";
import { chownSync, existsSync, mkdtempSync, readdirSync, rmSync } from "node:fs";
import { createServer } from "node:net";
import { tmpdir } from "node:os";
import path from "node:path";
import { fileURLToPath } from "node:url";

const NOBODY = 65534;
const SUPERUSER = "postgres";
const READY_LINE = "database system is ready to accept connections";
const READY_MS = 60000;
const STOP_MS = 30000;

function binDir() {
  const candidates = [];
  try {
    candidates.push(execFileSync("pg_config", ["--bindir"], { encoding: "utf8", stdio: ["ignore", "pipe", "ignore"] }).trim());
  } catch {}
  try {
    const versions = readdirSync("/usr/lib/postgresql")
      .filter((v) => /^\d+$/.test(v))
      .sort((a, b) => Number(b) - Number(a));
    for (const v of versions) candidates.push(`/usr/lib/postgresql/${v}/bin`);
  } catch {}
  const found = candidates.find((dir) => existsSync(path.join(dir, "initdb")) && existsSync(path.join(dir, "postgres")));
  if (!found) {
    throw new Error(
      "PostgreSQL is not installed (no initdb and postgres via `pg_config --bindir` or in " +
        "/usr/lib/postgresql/*/bin): install Debian's `postgresql` package (apt-get install postgresql)",
    );
  }
  return found;
}

const asRoot = process.getuid && process.getuid() === 0;
const user = asRoot ? { uid: NOBODY, gid: NOBODY } : {};
const hasSetpriv = spawnSync("setpriv", ["--version"], { stdio: "ignore" }).status === 0;

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

/** Starts the postmaster; resolves with the child once it is ready, rejects with its log. */
function launch(bin, dir, port) {
  let program = path.join(bin, "postgres");
  let args = [
    "-D", path.join(dir, "data"), "-p", String(port), "-k", dir,
    "-c", "listen_addresses=127.0.0.1", "-c", "fsync=on",
    "-c", "shared_buffers=16MB", "-c", "max_connections=300",
  ];
  let options = { ...user };
  if (hasSetpriv) {
    // setpriv arms the death signal after switching user, then execs.
    const switchUser = asRoot ? [`--reuid=${NOBODY}`, `--regid=${NOBODY}`, "--clear-groups"] : [];
    args = [...switchUser, "--pdeathsig", "QUIT", "--", program, ...args];
    program = "setpriv";
    options = {};
  }
  const env = { ...process.env, LC_ALL: "C" };
  delete env.PGDATA;
  const child = spawn(program, args, {
    ...options,
    env,
    stdio: ["ignore", "ignore", "pipe"],
  });
  child.exited = new Promise((resolve) => child.on("exit", resolve));
  return new Promise((resolve, reject) => {
    let log = "";
    let ready = false;
    const timer = setTimeout(() => {
      child.kill("SIGKILL");
      reject(new Error(`PostgreSQL did not start within ${READY_MS} ms:\n${log}`));
    }, READY_MS);
    child.stderr.setEncoding("utf8");
    child.stderr.on("data", (chunk) => {
      if (ready) return;
      log += chunk;
      if (log.includes(READY_LINE)) {
        ready = true;
        clearTimeout(timer);
        resolve(child);
      }
    });
    child.on("error", (e) => {
      clearTimeout(timer);
      reject(new Error(`cannot run postgres: ${e.message}`));
    });
    child.exited.then((code) => {
      if (ready) return;
      clearTimeout(timer);
      reject(new Error(`PostgreSQL exited (${code}) before it was ready:\n${log}`));
    });
  });
}

async function stop(child) {
  if (child.exitCode !== null || child.signalCode !== null) return;
  // SIGINT: a fast shutdown, as `pg_ctl stop -m fast` sends.
  child.kill("SIGINT");
  const timer = setTimeout(() => child.kill("SIGKILL"), STOP_MS);
  await child.exited;
  clearTimeout(timer);
}

/**
 * Starts a private PostgreSQL server; resolves with `{url, bin, stop}`:
 * `url` is the server without a database (superuser, trust auth), `bin`
 * where `createdb` is, `stop()` a fast shutdown that removes the directory.
 */
export async function startPostgres() {
  const bin = binDir();
  const dir = mkdtempSync(path.join(tmpdir(), "confab-pg-"));
  const cleanupDir = () => rmSync(dir, { recursive: true, force: true });
  if (asRoot) chownSync(dir, NOBODY, NOBODY);
  const initdb = spawnSync(
    path.join(bin, "initdb"),
    ["-D", path.join(dir, "data"), "-U", SUPERUSER, "--auth=trust", "-E", "UTF8", "--locale=C", "--no-sync"],
    { ...user, env: { ...process.env, LC_ALL: "C" }, encoding: "utf8" },
  );
  if (initdb.status !== 0) {
    cleanupDir();
    throw new Error(`initdb failed (${initdb.status}):\n${initdb.stdout}\n${initdb.stderr}`);
  }
  // A port found free may be taken before the server binds it: retry.
  let server;
  let port;
  for (let attempt = 1; !server; attempt++) {
    port = await freePort();
    try {
      server = await launch(bin, dir, port);
    } catch (e) {
      if (attempt >= 3) {
        cleanupDir();
        throw e;
      }
    }
  }
  return {
    url: `postgres://${SUPERUSER}@127.0.0.1:${port}`,
    bin,
    child: server,
    async stop() {
      await stop(server);
      cleanupDir();
    },
  };
}

async function main() {
  const command = process.argv.slice(2);
  if (command.length === 0) {
    console.error("usage: node postgres.mjs COMMAND [ARGS...]");
    process.exit(2);
  }
  const postgres = await startPostgres();
  const env = {
    ...process.env,
    CONFAB_TEST_PG_URL: postgres.url,
    CONFAB_TEST_PG_BIN: postgres.bin,
  };
  const child = spawn(command[0], command.slice(1), { env, stdio: "inherit" });
  const forward = (signal) => child.kill(signal);
  process.on("SIGINT", forward);
  process.on("SIGTERM", forward);
  const [code, signal] = await new Promise((resolve) => {
    child.on("exit", (c, s) => resolve([c, s]));
    child.on("error", (e) => {
      console.error(`cannot run ${command[0]}: ${e.message}`);
      resolve([1, null]);
    });
  });
  await postgres.stop();
  process.exitCode = code ?? (signal ? 1 : 0);
}

if (process.argv[1] && path.resolve(process.argv[1]) === fileURLToPath(import.meta.url)) {
  main().catch((e) => {
    console.error(e.message);
    process.exitCode = 1;
  });
}
