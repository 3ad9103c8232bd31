// Bytes on the wire per delivered chat message, with permessage-deflate and
// without: one publisher and one subscriber in a room, MESSAGES typical chat
// lines pushed one after another; the subscriber's TCP bytes read while they
// arrive, divided by the messages. Uses the test harness (tests/js) and its
// `ws` client.
//
//   CONFAB_BIN=$PWD/target/release/confab node bench/deflate-bytes.mjs [MESSAGES]

import { createRequire } from "node:module";
import { Server, collect, join, push } from "../tests/js/harness.mjs";

const require = createRequire(new URL("../tests/js/package.json", import.meta.url));
const WebSocket = require("ws");
const MESSAGES = Number(process.argv[2] || 500);

const LINES = [
  "morning! anyone looked at the deploy from last night?",
  "yes, the migration ran fine, took about four minutes",
  "ok great, thanks",
  "I think the dashboard is still showing the old numbers though",
  "can you refresh? the cache expires every 5 minutes",
  "ah right, now it shows up",
  "lunch at 12:30?",
  "sure, the usual place",
  "@sam the review is waiting on you, no rush",
  "looking at it now; left two small comments about the error messages",
  "the build is red again because of the flaky websocket test, retrying",
  "👍",
  "meeting moved to 3pm, same room",
  "does anyone know where the on-call schedule for next week lives?",
  "it's pinned in #ops",
  "thanks!",
];

class Deflating extends WebSocket {
  constructor(url, protocols) {
    super(url, protocols, { perMessageDeflate: true });
  }
}
class Plain extends WebSocket {
  constructor(url, protocols) {
    super(url, protocols, { perMessageDeflate: false });
  }
}

async function measure(compression) {
  const server = new Server({
    name: `deflate-${compression}`,
    env: {
      CONFAB_WEBSOCKET_COMPRESSION: String(compression),
      CONFAB_PUSH_BURST: "1000000",
      CONFAB_PUSH_REFILL_PER_SEC: "1000000",
      CONFAB_LOG_LEVEL: "warn",
    },
  });
  await server.start();
  try {
    const alice = await server.register();
    const bob = await server.register();
    const room = (await server.createRoom(alice.token)).name;
    await server.addMember(alice.token, room, bob.user.username);
    const transport = compression ? Deflating : Plain;
    const publisher = await server.connect(alice.token, { transport });
    const subscriber = await server.connect(bob.token, { transport });
    const { channel: pub } = await join(publisher, `room:${room}`);
    const { channel: sub } = await join(subscriber, `room:${room}`);
    const received = collect(sub, "new_msg");
    let textBytes = 0;
    const before = subscriber.conn._socket.bytesRead;
    for (let i = 0; i < MESSAGES; i++) {
      const body = LINES[i % LINES.length];
      const reply = await push(pub, "new_msg", { body });
      if (reply.status !== "ok") throw new Error(JSON.stringify(reply));
    }
    const items = await received.until((xs) => xs.length >= MESSAGES, 60000, "every message");
    const read = subscriber.conn._socket.bytesRead - before;
    for (const payload of items) textBytes += JSON.stringify([null, null, `room:${room}`, "new_msg", payload]).length;
    return {
      compression,
      extensions: subscriber.conn.extensions || "none",
      bytesPerMessage: read / MESSAGES,
      framePayloadPerMessage: textBytes / MESSAGES,
    };
  } finally {
    await server.cleanup();
  }
}

for (const compression of [false, true]) {
  const r = await measure(compression);
  console.log(
    `compression=${r.compression} extensions=${r.extensions}: ${r.bytesPerMessage.toFixed(1)} bytes read per delivered message ` +
      `(broadcast frame text about ${r.framePayloadPerMessage.toFixed(1)} bytes, re-serialized)`,
  );
}
process.exit(0);
