// Binary payloads (phoenix-protocol.md §2.3; checklist 13, 50, 52) and image
// attachments:
// - over V2 WebSocket with the official client (binaryType arraybuffer):
//   `upload` of an image → ok {attachment}; anything else → unsupported_type;
//   a frame above max_frame_bytes closes that socket with 1009;
//   `attachment {id}` → a BINARY reply holding the bytes; `bin_*` pushes are
//   relayed as binary broadcasts to the topic's other V2 WebSocket
//   subscribers only (never the sender, LongPoll or V1);
// - `new_msg {attachment_id}` with an empty body, and its refusals;
// - REST upload and download with safe headers and membership checks;
// - LongPoll: binary pushes go up base64-encoded, nothing binary ever comes
//   back (`attachment` → binary_not_supported).
//
// Absence is asserted only after a later text message (a barrier) has
// arrived on the same connection: per-connection delivery is FIFO.

import { describe, test } from "node:test";
import assert from "node:assert/strict";
import { LongPoll } from "phoenix";
import { Collector, DEADLINE_MS, closeSocket, collect, join, push, suiteServer, unique } from "../harness.mjs";
import {
  PNG_1X1,
  RawLongPoll,
  binaryPushFrame,
  bytesOf,
  decodeServerBinary,
  fetchAttachment,
  gifBytes,
  toArrayBuffer,
  uploadRest,
} from "../longpoll-helpers.mjs";

const MAX_FRAME = 2048;
const LP = { transport: LongPoll };

const SAMPLES = {
  "image/png": PNG_1X1,
  "image/jpeg": Buffer.concat([Buffer.from([0xff, 0xd8, 0xff, 0xe0]), Buffer.alloc(20, 1)]),
  "image/gif": gifBytes(10),
  "image/webp": Buffer.concat([Buffer.from("RIFF"), Buffer.from([20, 0, 0, 0]), Buffer.from("WEBPVP8 "), Buffer.alloc(12, 2)]),
};
const HTML = Buffer.from("<!doctype html><html><body><script>alert(1)</script></body></html>");
const SVG = Buffer.from('<svg xmlns="http://www.w3.org/2000/svg" onload="alert(1)"><rect width="1" height="1"/></svg>');

/** Pushes `bytes` as a binary payload; resolves with `{status, response}`. */
function pushBinary(channel, event, bytes, timeout = DEADLINE_MS) {
  return push(channel, event, toArrayBuffer(bytes), timeout);
}

/** Sends a binary push that expects no reply (e.g. `bin_*`), without leaving a timer behind. */
function sendBinary(channel, event, bytes) {
  const p = channel.push(event, toArrayBuffer(bytes), DEADLINE_MS);
  // The push is written at once on a joined channel; no reply will come.
  setTimeout(() => p.cancelTimeout(), 0);
  return p;
}

function assertAttachment(attachment, contentType, size) {
  assert.deepEqual(Object.keys(attachment).sort(), ["content_type", "id", "size", "url"]);
  assert.equal(typeof attachment.id, "number");
  assert.equal(attachment.url, `/api/attachments/${attachment.id}`);
  assert.equal(attachment.content_type, contentType);
  assert.equal(attachment.size, size);
}

describe("binary payloads over WebSocket", () => {
  let alice;
  let bob;
  const server = suiteServer({ name: "binary", env: { CONFAB_MAX_FRAME_BYTES: String(MAX_FRAME) } }, 2, (...users) => ([alice, bob] = users));

  test("upload of each image type → ok {attachment}; attachment {id} → a binary reply with the same bytes", async () => {
    const room = (await server.createRoom(alice.token)).name;
    const socket = await server.connect(alice.token);
    const { channel } = await join(socket, `room:${room}`);
    for (const [type, bytes] of Object.entries(SAMPLES)) {
      const up = await pushBinary(channel, "upload", bytes);
      assert.equal(up.status, "ok", `${type}: ${JSON.stringify(up)}`);
      assertAttachment(up.response.attachment, type, bytes.length);

      const back = await push(channel, "attachment", { id: up.response.attachment.id });
      assert.equal(back.status, "ok");
      assert.ok(back.response instanceof ArrayBuffer, `${type}: the reply payload is an ArrayBuffer`);
      assert.deepEqual(bytesOf(back.response), bytes);
    }
    closeSocket(socket);
  });

  test("upload of non-image bytes (text, HTML, SVG, empty) → error unsupported_type", async () => {
    const socket = await server.connect(alice.token);
    const { channel } = await join(socket, "room:lobby");
    for (const bytes of [Buffer.from("just some text"), HTML, SVG, Buffer.from("GIF8"), Buffer.alloc(0)]) {
      const up = await pushBinary(channel, "upload", bytes);
      assert.deepEqual(up, { status: "error", response: { reason: "unsupported_type" } }, bytes.toString().slice(0, 20));
    }
    // A binary push with another event is refused, not stored.
    const other = await pushBinary(channel, "new_msg", PNG_1X1);
    assert.deepEqual(other, { status: "error", response: { reason: "binary_not_supported" } });
    closeSocket(socket);
  });

  test("attachment {id}: another topic's id → not_found; a missing id → invalid_payload", async () => {
    const roomA = (await server.createRoom(alice.token)).name;
    const roomB = (await server.createRoom(alice.token)).name;
    const socket = await server.connect(alice.token);
    const { channel: a } = await join(socket, `room:${roomA}`);
    const { channel: b } = await join(socket, `room:${roomB}`);
    const up = await pushBinary(a, "upload", PNG_1X1);
    assert.equal(up.status, "ok");
    assert.deepEqual(await push(b, "attachment", { id: up.response.attachment.id }), {
      status: "error",
      response: { reason: "not_found" },
    });
    assert.deepEqual(await push(a, "attachment", { id: 987654 }), { status: "error", response: { reason: "not_found" } });
    assert.deepEqual(await push(a, "attachment", {}), { status: "error", response: { reason: "invalid_payload" } });
    closeSocket(socket);
  });

  test(`a binary frame above max_frame_bytes (${MAX_FRAME}) closes that socket with 1009; others are fine; one just under is accepted`, async () => {
    const room = (await server.createRoom(alice.token)).name;
    const topic = `room:${room}`;
    const big = await server.connect(alice.token);
    const closes = new Collector("close codes");
    const opens = new Collector("opens");
    big.onClose((e) => closes.add(e.code));
    big.onOpen(() => opens.add(true));
    const { channel: bigChan } = await join(big, topic);
    const other = await server.connect(bob.token);
    const { channel: otherChan } = await join(other, topic);

    // Just under the limit (header ~30 bytes + payload) is fine.
    const under = await pushBinary(bigChan, "upload", gifBytes(MAX_FRAME - 100));
    assert.equal(under.status, "ok", JSON.stringify(under));

    const p = bigChan.push("upload", toArrayBuffer(gifBytes(MAX_FRAME + 500)), DEADLINE_MS);
    const [code] = await closes.count(1);
    assert.equal(code, 1009, `closed with ${code}`);
    p.cancelTimeout();

    // The other socket is unaffected.
    const ack = await push(otherChan, "new_msg", { body: "still here" });
    assert.equal(ack.status, "ok");
    // The closed client reconnects and rejoins by itself.
    await opens.count(1);
    const again = await push(bigChan, "new_msg", { body: "back again" });
    assert.equal(again.status, "ok");
    closeSocket(big);
    closeSocket(other);
  });

  test("bin_draw reaches other V2 WebSocket subscribers intact — not the sender, not LongPoll, not V1", async () => {
    const carol = await server.register();
    const dave = await server.register();
    const erin = await server.register();
    const room = (await server.createRoom(alice.token)).name;
    const topic = `room:${room}`;
    const bytes = Buffer.from(Array.from({ length: 256 }, (_, i) => i));

    const sender = await server.connect(alice.token);
    const { channel: senderChan } = await join(sender, topic);
    const senderOwn = await server.connect(alice.token); // the sender's other socket
    const { channel: ownChan } = await join(senderOwn, topic);
    const receiver = await server.connect(bob.token);
    const { channel: recvChan } = await join(receiver, topic);
    const lp = await server.connect(carol.token, LP);
    const { channel: lpChan } = await join(lp, topic);
    const v1 = server.raw({ token: dave.token, vsn: "1.0.0" });
    await v1.opened;
    v1.send({ topic, event: "phx_join", payload: {}, ref: "1" });
    const v1Join = await v1.frames.find((f) => f.ref === "1" && f.event === "phx_reply");
    assert.equal(v1Join.payload.status, "ok");
    const rawLp = new RawLongPoll(server, { token: erin.token });
    await rawLp.open();
    await rawLp.join(topic);

    const draws = new Map();
    const messages = new Map();
    for (const [name, channel] of [
      ["sender", senderChan],
      ["sender's other socket", ownChan],
      ["receiver", recvChan],
      ["longpoll", lpChan],
    ]) {
      draws.set(name, collect(channel, "bin_draw"));
      messages.set(name, collect(channel, "new_msg"));
    }

    sendBinary(senderChan, "bin_draw", bytes);
    const barrier = `barrier ${unique()}`;
    const ack = await push(senderChan, "new_msg", { body: barrier });
    assert.equal(ack.status, "ok");
    for (const [name, collector] of messages) await collector.find((m) => m.body === barrier, DEADLINE_MS, `${name}: the barrier`);
    await v1.frames.find((f) => f.event === "new_msg" && f.payload.body === barrier, DEADLINE_MS, "v1: the barrier");
    await rawLp.pollUntil((fs) => fs.some((f) => f[3] === "new_msg" && f[4].body === barrier), DEADLINE_MS, "raw longpoll: the barrier");

    for (const name of ["receiver", "sender's other socket"]) {
      const got = draws.get(name).items;
      assert.equal(got.length, 1, `${name} got the draw once`);
      assert.ok(got[0] instanceof ArrayBuffer, `${name}: an ArrayBuffer`);
      assert.deepEqual(bytesOf(got[0]), bytes, `${name}: intact bytes`);
    }
    assert.equal(draws.get("sender").items.length, 0, "the sending socket does not get its own draw");
    assert.equal(draws.get("longpoll").items.length, 0, "LongPoll never gets binary broadcasts");
    assert.ok(!v1.frames.items.some((f) => f.binary), "a V1 client never receives binary frames");
    assert.ok(!v1.frames.items.some((f) => f.event === "bin_draw"));
    for (const m of rawLp.rawMessages) {
      assert.equal(typeof m, "string");
      assert.ok(Array.isArray(JSON.parse(m)), `every LongPoll message is a V2 text frame: ${m.slice(0, 80)}`);
    }
    assert.ok(!rawLp.frames.items.some((f) => f[3] === "bin_draw"));
    for (const s of [sender, senderOwn, receiver, lp]) closeSocket(s);
  });

  test("raw V2: binary reply and binary broadcast use the §2.3 layouts", async () => {
    const room = (await server.createRoom(alice.token)).name;
    const topic = `room:${room}`;
    const a = server.raw({ token: alice.token, vsn: "2.0.0" });
    const b = server.raw({ token: bob.token, vsn: "2.0.0" });
    await Promise.all([a.opened, b.opened]);
    const { joinRef } = await a.join(topic);
    await b.join(topic);

    a.ws.send(binaryPushFrame(joinRef, "u1", topic, "upload", PNG_1X1));
    const up = await a.reply("u1");
    assert.deepEqual(up.slice(0, 4), [joinRef, "u1", topic, "phx_reply"]);
    assert.equal(up[4].status, "ok", JSON.stringify(up));
    const id = up[4].response.attachment.id;

    a.send([joinRef, "a1", topic, "attachment", { id }]);
    const bin = await a.frames.find((f) => f.binary, DEADLINE_MS, "a binary reply");
    assert.deepEqual(decodeServerBinary(bin.binary), {
      kind: 1,
      joinRef,
      ref: "a1",
      topic,
      status: "ok",
      payload: PNG_1X1,
    });

    a.ws.send(binaryPushFrame(joinRef, "d1", topic, "bin_x", Buffer.from([9, 9, 0, 255])));
    const bcast = await b.frames.find((f) => f.binary, DEADLINE_MS, "a binary broadcast");
    assert.deepEqual(decodeServerBinary(bcast.binary), {
      kind: 2,
      topic,
      event: "bin_x",
      payload: Buffer.from([9, 9, 0, 255]),
    });
    // No reply to a bin_* push; the sender gets nothing for it (barrier: a heartbeat).
    await a.heartbeat();
    assert.ok(!a.frames.items.some((f) => Array.isArray(f) && f[1] === "d1"));
    assert.equal(a.frames.items.filter((f) => f.binary).length, 1, "only the attachment reply");
  });

  test("V1: attachment {id} → binary_not_supported (never a binary frame)", async () => {
    const room = (await server.createRoom(alice.token)).name;
    const topic = `room:${room}`;
    const socket = await server.connect(alice.token);
    const { channel } = await join(socket, topic);
    const up = await pushBinary(channel, "upload", PNG_1X1);
    const v1 = server.raw({ token: alice.token, vsn: "1.0.0" });
    await v1.opened;
    v1.send({ topic, event: "phx_join", payload: {}, ref: "1" });
    await v1.frames.find((f) => f.ref === "1" && f.event === "phx_reply");
    v1.send({ topic, event: "attachment", payload: { id: up.response.attachment.id }, ref: "2" });
    const reply = await v1.frames.find((f) => f.ref === "2");
    assert.deepEqual(reply.payload, { status: "error", response: { reason: "binary_not_supported" } });
    assert.ok(!v1.frames.items.some((f) => f.binary));
    closeSocket(socket);
  });

  test("new_msg {attachment_id} with an empty body → ok; the broadcast and history carry the attachment", async () => {
    const room = (await server.createRoom(alice.token)).name;
    const topic = `room:${room}`;
    const socket = await server.connect(alice.token);
    const { channel } = await join(socket, topic);
    const watcher = await server.connect(bob.token);
    const { channel: watchChan } = await join(watcher, topic);
    const seen = collect(watchChan, "new_msg");

    const up = await pushBinary(channel, "upload", PNG_1X1);
    const attachment = up.response.attachment;
    const ack = await push(channel, "new_msg", { body: "", attachment_id: attachment.id });
    assert.equal(ack.status, "ok", JSON.stringify(ack));
    const msg = await seen.find((m) => m.seq === ack.response.seq);
    assert.equal(msg.body, "");
    assert.deepEqual(msg.attachment, attachment);
    assertAttachment(msg.attachment, "image/png", PNG_1X1.length);

    // No body key at all works too.
    const up2 = await pushBinary(channel, "upload", SAMPLES["image/gif"]);
    const ack2 = await push(channel, "new_msg", { attachment_id: up2.response.attachment.id });
    assert.equal(ack2.status, "ok", JSON.stringify(ack2));
    // With a caption.
    const up3 = await pushBinary(channel, "upload", SAMPLES["image/jpeg"]);
    const ack3 = await push(channel, "new_msg", { body: "caption", attachment_id: up3.response.attachment.id });
    assert.equal(ack3.status, "ok");

    const page = await server.messages(alice.token, room);
    const stored = page.messages.find((m) => m.seq === ack.response.seq);
    assert.deepEqual(stored.attachment, attachment);
    assert.equal(page.messages.find((m) => m.seq === ack3.response.seq).attachment.content_type, "image/jpeg");
    // The joiner's recovery reply carries it too.
    const late = await server.connect(bob.token);
    const { response } = await join(late, topic, { last_seq: 0 });
    assert.deepEqual(response.messages.find((m) => m.seq === ack.response.seq).attachment, attachment);
    // The download matches.
    const dl = await fetchAttachment(server, bob.token, attachment.id);
    assert.equal(dl.status, 200);
    assert.deepEqual(dl.bytes, PNG_1X1);
    for (const s of [socket, watcher, late]) closeSocket(s);
  });

  test("new_msg refusals: another user's / another topic's / used / unknown / bad attachment_id → invalid_attachment; empty body alone → empty_body", async () => {
    const room = (await server.createRoom(alice.token)).name;
    const other = (await server.createRoom(alice.token)).name;
    const topic = `room:${room}`;
    const a = await server.connect(alice.token);
    const { channel: aChan } = await join(a, topic);
    const { channel: aOther } = await join(a, `room:${other}`);
    const b = await server.connect(bob.token);
    const { channel: bChan } = await join(b, topic);

    const mine = (await pushBinary(aChan, "upload", PNG_1X1)).response.attachment.id;
    const elsewhere = (await pushBinary(aOther, "upload", PNG_1X1)).response.attachment.id;
    const invalid = { status: "error", response: { reason: "invalid_attachment" } };

    assert.deepEqual(await push(bChan, "new_msg", { body: "", attachment_id: mine }), invalid, "another user's attachment");
    assert.deepEqual(await push(aChan, "new_msg", { body: "x", attachment_id: elsewhere }), invalid, "another topic's");
    assert.deepEqual(await push(aChan, "new_msg", { body: "", attachment_id: 999999 }), invalid, "unknown id");
    assert.deepEqual(await push(aChan, "new_msg", { body: "", attachment_id: "abc" }), invalid, "not a number");
    assert.deepEqual(await push(aChan, "new_msg", { body: "" }), { status: "error", response: { reason: "empty_body" } });

    const ok = await push(aChan, "new_msg", { body: "", attachment_id: mine });
    assert.equal(ok.status, "ok");
    assert.deepEqual(await push(aChan, "new_msg", { body: "again", attachment_id: mine }), invalid, "already used");
    // None of the refusals stored anything.
    const page = await server.messages(alice.token, room);
    assert.deepEqual(
      page.messages.map((m) => m.seq),
      [ok.response.seq],
    );
    closeSocket(a);
    closeSocket(b);
  });

  test("deleting a message erases its attachment", async () => {
    const room = (await server.createRoom(alice.token)).name;
    const socket = await server.connect(alice.token);
    const { channel } = await join(socket, `room:${room}`);
    const id = (await pushBinary(channel, "upload", PNG_1X1)).response.attachment.id;
    const ack = await push(channel, "new_msg", { body: "", attachment_id: id });
    assert.equal((await fetchAttachment(server, alice.token, id)).status, 200);
    const del = await push(channel, "delete_msg", { seq: ack.response.seq });
    assert.equal(del.status, "ok");
    assert.equal((await fetchAttachment(server, alice.token, id)).status, 404);
    assert.deepEqual(await push(channel, "attachment", { id }), { status: "error", response: { reason: "not_found" } });
    closeSocket(socket);
  });
});

describe("attachments over REST", () => {
  let alice;
  let bob;
  const server = suiteServer({ name: "attachments-rest" }, 2, (...users) => ([alice, bob] = users));

  test("POST /api/rooms/lobby/attachments → 201 {attachment}; GET as a member → the bytes with safe headers", async () => {
    const up = await uploadRest(server, alice.token, "lobby", PNG_1X1, "image/png");
    assert.equal(up.status, 201, JSON.stringify(up.body));
    assertAttachment(up.body.attachment, "image/png", PNG_1X1.length);
    const id = up.body.attachment.id;

    const dl = await fetchAttachment(server, bob.token, id);
    assert.equal(dl.status, 200);
    assert.equal(dl.headers.get("content-type"), "image/png");
    assert.equal(dl.headers.get("content-disposition"), `inline; filename="attachment-${id}.png"`);
    assert.equal(dl.headers.get("content-security-policy"), "default-src 'none'; sandbox");
    assert.equal(dl.headers.get("x-content-type-options"), "nosniff");
    assert.deepEqual(dl.bytes, PNG_1X1);

    // The declared content type does not matter: the bytes are sniffed.
    const gif = await uploadRest(server, alice.token, "lobby", SAMPLES["image/gif"], "text/html");
    assert.equal(gif.status, 201);
    assert.equal(gif.body.attachment.content_type, "image/gif");
    const gifDl = await fetchAttachment(server, alice.token, gif.body.attachment.id);
    assert.equal(gifDl.headers.get("content-type"), "image/gif");
    assert.match(gifDl.headers.get("content-disposition"), /^inline; filename="attachment-\d+\.gif"$/);

    // A message posted over REST can carry it; WebSocket clients see it.
    const watcher = await server.connect(bob.token);
    const { channel } = await join(watcher, "room:lobby");
    const seen = collect(channel, "new_msg");
    const res = await server.request("POST", "/api/rooms/lobby/messages", {
      token: alice.token,
      body: { attachment_id: gif.body.attachment.id },
    });
    assert.equal(res.status, 201, JSON.stringify(res.body));
    assert.deepEqual(res.body.message.attachment, gif.body.attachment);
    const msg = await seen.find((m) => m.seq === res.body.message.seq);
    assert.deepEqual(msg.attachment, gif.body.attachment);
    closeSocket(watcher);
  });

  test("HTML, SVG and empty uploads → 422 in the error shape; unauthenticated → 401", async () => {
    for (const [label, bytes, type] of [
      ["html", HTML, "text/html"],
      ["svg", SVG, "image/svg+xml"],
      ["empty", Buffer.alloc(0), "image/png"],
    ]) {
      const res = await uploadRest(server, alice.token, "lobby", bytes, type);
      assert.equal(res.status, 422, `${label}: ${JSON.stringify(res.body)}`);
      assert.equal(typeof res.body.error, "string", label);
      assert.equal(typeof res.body.message, "string", label);
    }
    const anon = await fetch(`${server.url}/api/rooms/lobby/attachments`, { method: "POST", body: PNG_1X1 });
    assert.equal(anon.status, 401);
    const up = await uploadRest(server, alice.token, "lobby", PNG_1X1);
    assert.equal((await fetchAttachment(server, null, up.body.attachment.id)).status, 401);
    assert.equal((await fetchAttachment(server, alice.token, 99999999)).status, 404);
    assert.equal((await fetchAttachment(server, alice.token, "abc")).status, 404);
  });

  test("a private room's attachment: 404 for a non-member, 200 once a member; non-members cannot upload", async () => {
    const room = (await server.createRoom(alice.token, unique("p"), true)).name;
    const up = await uploadRest(server, alice.token, room, PNG_1X1);
    assert.equal(up.status, 201);
    const id = up.body.attachment.id;
    const denied = await fetchAttachment(server, bob.token, id);
    assert.equal(denied.status, 404, "a non-member cannot even learn it exists");
    assert.ok(!denied.bytes.includes(PNG_1X1.subarray(0, 8)), "no image bytes leak");
    const upload = await uploadRest(server, bob.token, room, PNG_1X1);
    assert.ok([403, 404].includes(upload.status), `non-member upload: ${upload.status}`);

    await server.addMember(alice.token, room, bob.user.username);
    assert.equal((await fetchAttachment(server, bob.token, id)).status, 200);
    await server.removeMember(alice.token, room, bob.user.username);
    assert.equal((await fetchAttachment(server, bob.token, id)).status, 404, "removal revokes access");
  });
});

describe("binary payloads over LongPoll", () => {
  let alice;
  let bob;
  const server = suiteServer({ name: "binary-longpoll" }, 2, (...users) => ([alice, bob] = users));

  test("the official LongPoll client uploads (base64 line) → ok; attachment → binary_not_supported; bytes intact over REST", async () => {
    const room = (await server.createRoom(alice.token)).name;
    const lp = await server.connect(alice.token, LP);
    assert.ok(lp.connection.transport instanceof LongPoll);
    const { channel } = await join(lp, `room:${room}`);
    const up = await pushBinary(channel, "upload", PNG_1X1);
    assert.equal(up.status, "ok", JSON.stringify(up));
    assertAttachment(up.response.attachment, "image/png", PNG_1X1.length);
    const bad = await pushBinary(channel, "upload", Buffer.from("plain text"));
    assert.deepEqual(bad, { status: "error", response: { reason: "unsupported_type" } });

    const back = await push(channel, "attachment", { id: up.response.attachment.id });
    assert.deepEqual(back, { status: "error", response: { reason: "binary_not_supported" } });
    const dl = await fetchAttachment(server, alice.token, up.response.attachment.id);
    assert.deepEqual(dl.bytes, PNG_1X1);
    const ack = await push(channel, "new_msg", { attachment_id: up.response.attachment.id });
    assert.equal(ack.status, "ok");
    closeSocket(lp);
  });

  test("raw LongPoll: a base64 binary upload line → ok reply as text; a LongPoll bin_draw reaches a V2 WebSocket", async () => {
    const room = (await server.createRoom(alice.token)).name;
    const topic = `room:${room}`;
    const ws = await server.connect(bob.token);
    const { channel } = await join(ws, topic);
    const draws = collect(channel, "bin_draw");
    const msgs = collect(channel, "new_msg");

    const lp = new RawLongPoll(server, { token: alice.token });
    await lp.open();
    const { joinRef } = await lp.join(topic);
    const post = await lp.post([binaryPushFrame(joinRef, "u1", topic, "upload", PNG_1X1).toString("base64")]);
    assert.deepEqual(post.body, { status: 200 });
    const reply = await lp.reply("u1");
    assert.deepEqual(reply.slice(0, 4), [joinRef, "u1", topic, "phx_reply"]);
    assert.equal(reply[4].status, "ok");
    assertAttachment(reply[4].response.attachment, "image/png", PNG_1X1.length);

    const bytes = Buffer.from([1, 2, 3, 0, 250]);
    const ref = lp.nextRef();
    const both = await lp.post([
      binaryPushFrame(joinRef, "d1", topic, "bin_draw", bytes).toString("base64"),
      [joinRef, ref, topic, "new_msg", { body: "after the draw" }],
    ]);
    assert.deepEqual(both.body, { status: 200 });
    await msgs.find((m) => m.body === "after the draw");
    assert.equal(draws.items.length, 1);
    assert.deepEqual(bytesOf(draws.items[0]), bytes);
    await lp.reply(ref);
    for (const m of lp.rawMessages) assert.equal(typeof m, "string");
    assert.ok(!lp.frames.items.some((f) => f[3] === "bin_draw"), "the LongPoll sender gets no binary echo");
    closeSocket(ws);
  });
});
