// Per-socket push rate limit (api.md §3 limits): a token bucket; refused
// pushes get error `rate_limited`, the socket stays usable.

import { describe, test } from "node:test";
import assert from "node:assert/strict";
import { setTimeout as delay } from "node:timers/promises";
import { join, ping, push, suiteServer } from "../harness.mjs";

describe("rate limit", () => {
  let alice;
  const server = suiteServer(
    { name: "rate-limit", env: { CONFAB_PUSH_BURST: "5", CONFAB_PUSH_REFILL_PER_SEC: "1" } },
    1,
    (...users) => ([alice] = users),
  );

  test("10 quick pushes: some rate_limited; heartbeats still answered; pushes work again after refill", async () => {
    const socket = await server.connect(alice.token);
    const { channel } = await join(socket, "room:lobby");
    const results = await Promise.all(
      Array.from({ length: 10 }, (_, i) => push(channel, "new_msg", { body: `burst ${i}` })),
    );
    const limited = results.filter((r) => r.status === "error" && r.response.reason === "rate_limited");
    const ok = results.filter((r) => r.status === "ok");
    assert.ok(limited.length >= 1, `expected rate_limited errors: ${JSON.stringify(results)}`);
    assert.equal(ok.length + limited.length, 10, `only ok or rate_limited: ${JSON.stringify(results)}`);
    assert.ok(ok.length >= 5 && ok.length <= 6, `the burst (5, maybe one refill) passes: ${ok.length}`);
    // Stored seqs of the accepted pushes are gapless.
    assert.deepEqual(
      ok.map((r) => r.response.seq).sort((a, b) => a - b),
      ok.map((_, i) => i + 1),
    );

    // Heartbeats are not channel pushes: never limited.
    assert.equal(typeof (await ping(socket)), "number");

    // The bucket refills at 1/s: the server answers ok again within a few seconds.
    const started = Date.now();
    let answer;
    for (;;) {
      answer = await push(channel, "new_msg", { body: "later" });
      if (answer.status === "ok") break;
      assert.equal(answer.response.reason, "rate_limited");
      assert.ok(Date.now() - started < 3000, "no refill within 3 s");
      await delay(250); // waiting for the bucket to refill is the behaviour under test
    }
    assert.equal(answer.response.seq, ok.length + 1);
  });
});
