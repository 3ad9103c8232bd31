// permessage-deflate (RFC 7692) with the official phoenix client over `ws`
// (perMessageDeflate on) against a server started with
// websocket_compression on: the extension is negotiated without context
// takeover, and join, push and broadcast work through it. The bytes a
// subscriber reads for a long, repetitive broadcast show it came compressed.

import { after, before, describe, test } from "node:test";
import assert from "node:assert/strict";
import WebSocket from "ws";
import { Server, collect, join, push } from "../harness.mjs";

/** The `ws` transport with permessage-deflate offered explicitly. */
class DeflateWebSocket extends WebSocket {
  constructor(url, protocols) {
    // threshold 0: `ws` compresses every message it sends, not only long ones.
    super(url, protocols, { perMessageDeflate: { threshold: 0 } });
  }
}

describe("permessage-deflate", () => {
  const server = new Server({ name: "deflate", env: { CONFAB_WEBSOCKET_COMPRESSION: "true" } });
  let alice;
  let bob;

  before(async () => {
    await server.start();
    alice = await server.register();
    bob = await server.register();
  });
  after(() => server.cleanup());

  test("negotiated without context takeover; join, push and broadcast work", async () => {
    const a = await server.connect(alice.token, { transport: DeflateWebSocket });
    const b = await server.connect(bob.token, { transport: DeflateWebSocket });
    for (const socket of [a, b]) {
      assert.equal(socket.conn.extensions, "permessage-deflate");
      // The parameters the server answered with, as `ws` accepted them.
      const params = socket.conn._extensions["permessage-deflate"].params;
      assert.equal(params.server_no_context_takeover, true, JSON.stringify(params));
      assert.equal(params.client_no_context_takeover, true, JSON.stringify(params));
    }
    const room = (await server.createRoom(alice.token)).name;
    await server.addMember(alice.token, room, bob.user.username);
    const topic = `room:${room}`;
    const { channel: ca, response } = await join(a, topic);
    assert.equal(response.last_seq, 0);
    const { channel: cb } = await join(b, topic);
    const received = collect(cb, "new_msg");

    const body = "the quick brown fox jumps over the lazy dog; ".repeat(60);
    const before = b.conn._socket.bytesRead;
    const reply = await push(ca, "new_msg", { body });
    assert.equal(reply.status, "ok", JSON.stringify(reply));
    const [message] = await received.until((items) => items.length >= 1);
    assert.equal(message.body, body);
    const read = b.conn._socket.bytesRead - before;
    assert.ok(read < body.length / 4, `the broadcast came compressed: ${read} bytes for a ${body.length}-character body`);
  });

  test("a client that does not offer it gets plain frames", async () => {
    class PlainWebSocket extends WebSocket {
      constructor(url, protocols) {
        super(url, protocols, { perMessageDeflate: false });
      }
    }
    const socket = await server.connect(alice.token, { transport: PlainWebSocket });
    assert.equal(socket.conn.extensions, "");
    const { response } = await join(socket, "room:lobby");
    assert.equal(typeof response.epoch, "string");
  });
});
