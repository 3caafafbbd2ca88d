// RealtimeClient against a scripted server: a fake socket and a fake clock,
// so reconnect delays, timeouts and heartbeats are exact and instant.
import assert from "node:assert/strict";
import { test } from "node:test";

import { decode, encode } from "@msgpack/msgpack";

import {
  ConnectionClosedError,
  RealtimeClient,
  RequestTimeoutError,
  ServerError,
  type ClientOptions,
  type Message,
  type ServerFrame,
  type Status,
  type Timers,
  type WebSocketLike,
} from "../src/index.js";

// ----- a clock the test moves ----------------------------------------------------

class Clock implements Timers {
  private t = 0;
  private seq = 0;
  private readonly due = new Map<number, { at: number; fn: () => void }>();

  setTimeout(fn: () => void, ms: number): unknown {
    const id = ++this.seq;
    this.due.set(id, { at: this.t + ms, fn });
    return id;
  }

  clearTimeout(handle: unknown): void {
    this.due.delete(handle as number);
  }

  now(): number {
    return this.t;
  }

  /** Delays of the timers now pending, soonest first. */
  pending(): number[] {
    return [...this.due.values()].map((d) => d.at - this.t).sort((a, b) => a - b);
  }

  async advance(ms: number): Promise<void> {
    await flush();
    const end = this.t + ms;
    for (;;) {
      const next = [...this.due.entries()].sort((a, b) => a[1].at - b[1].at)[0];
      if (!next || next[1].at > end) break;
      this.due.delete(next[0]);
      this.t = next[1].at;
      next[1].fn();
      await flush();
    }
    this.t = end;
    await flush();
  }
}

async function flush(): Promise<void> {
  for (let i = 0; i < 5; i++) await new Promise((r) => setImmediate(r));
}

// ----- a socket the test plays the server on ---------------------------------------

type Frame = Record<string, unknown> & { t: string; id?: number; d?: Record<string, unknown> };

class Socket implements WebSocketLike {
  binaryType = "blob";
  readyState = 0;
  readonly sent: Frame[] = [];
  closedWith: number | null = null;
  onopen: ((ev: unknown) => void) | null = null;
  onmessage: ((ev: { readonly data: unknown }) => void) | null = null;
  onclose: ((ev: { readonly code: number; readonly reason: string }) => void) | null = null;
  onerror: ((ev: unknown) => void) | null = null;

  constructor(readonly url: string) {}

  send(data: Uint8Array): void {
    this.sent.push(decode(data) as Frame);
  }

  close(code = 1000): void {
    this.closedWith = code;
  }

  // server side
  open(): void {
    this.readyState = 1;
    this.onopen?.({});
  }

  push(frame: Record<string, unknown>): void {
    const bytes = encode(frame);
    this.onmessage?.({ data: bytes.buffer.slice(bytes.byteOffset, bytes.byteOffset + bytes.byteLength) });
  }

  serverClose(code: number, reason = ""): void {
    this.readyState = 3;
    this.onclose?.({ code, reason });
  }

  last(t: string): Frame {
    const found = this.sent.filter((f) => f.t === t).at(-1);
    assert.ok(found, `no ${t} sent; sent: ${this.sent.map((f) => f.t).join(", ")}`);
    return found;
  }

  welcome(heartbeat = 20): void {
    const hello = this.last("hello");
    this.push({
      t: "welcome",
      re: hello.id,
      d: { user: "u_1", session: "s_1", v: 1, heartbeat, max_frame: 65536, max_text: 4000, ts: 1 },
    });
  }
}

function message(room: string, seq: number, extra: Partial<Message> = {}): Message {
  return { id: `m${seq}`, room, seq, sender: "u_2", cid: `c${seq}`, text: `hello ${seq}`, ts: seq, ...extra };
}

interface Rig {
  client: RealtimeClient;
  clock: Clock;
  sockets: Socket[];
  statuses: Status[];
  socket(): Socket;
}

function rig(options: Partial<ClientOptions> = {}): Rig {
  const clock = new Clock();
  const sockets: Socket[] = [];
  const statuses: Status[] = [];
  const client = new RealtimeClient({
    url: "ws://server/ws",
    token: "tok",
    device: "tab-1",
    timers: clock,
    random: () => 0.5,
    webSocket: (url) => {
      const s = new Socket(url);
      sockets.push(s);
      return s;
    },
    ...options,
  });
  client.onStatus((s) => statuses.push(s));
  return {
    client,
    clock,
    sockets,
    statuses,
    socket: () => {
      const s = sockets.at(-1);
      assert.ok(s, "no socket opened");
      return s;
    },
  };
}

async function connected(options: Partial<ClientOptions> = {}): Promise<Rig> {
  const r = rig(options);
  const welcomed = r.client.connect();
  await flush();
  r.socket().open();
  r.socket().welcome();
  await welcomed;
  return r;
}

// ----- handshake and requests ----------------------------------------------------

test("connect says hello with token, version, device and stored cursors", async () => {
  const r = rig({ cursors: { cursors: { r1: 40 }, evs: { r1: 7 } } });
  const welcomed = r.client.connect();
  await flush();
  const s = r.socket();
  assert.equal(s.url, "ws://server/ws");
  s.open();
  assert.equal(s.binaryType, "arraybuffer");
  const hello = s.last("hello");
  assert.deepEqual(hello.d, { token: "tok", v: 1, device: "tab-1", cursors: { r1: 40 }, evs: { r1: 7 } });
  s.welcome();
  const welcome = await welcomed;
  assert.equal(welcome.user, "u_1");
  assert.equal(r.client.state, "open");
});

test("replies are matched by re, whatever their order", async () => {
  const { client, socket } = await connected();
  const a = client.request({ t: "msg.edit", d: { room: "r1", seq: 1, text: "a" } });
  const b = client.ping();
  await flush();
  const [edit, ping] = [socket().last("msg.edit"), socket().last("ping")];
  assert.notEqual(edit.id, ping.id);
  socket().push({ t: "pong", re: ping.id, ts: 99 });
  socket().push({ t: "ok", re: edit.id, ev: 3 });
  assert.equal(await b, 99);
  assert.equal((await a).ev, 3);
});

test("reauthenticate sends auth and the next hello carries the new token", async () => {
  const { client, socket, clock, statuses } = await connected();
  const renewed = client.reauthenticate("tok-2");
  await flush();
  const auth = socket().last("auth");
  assert.deepEqual(auth.d, { token: "tok-2" });
  socket().push({ t: "ok", re: auth.id });
  await renewed;
  const refused = client.reauthenticate("stale");
  await flush();
  socket().push({ t: "err", re: socket().last("auth").id, code: "token_expired", msg: "expired" });
  await assert.rejects(refused, (e: unknown) => e instanceof ServerError && e.code === "token_expired");
  socket().serverClose(1006);
  await clock.advance(statuses.at(-1)?.retryIn ?? 0);
  socket().open();
  assert.equal((socket().last("hello").d as { token: string }).token, "tok-2");
});

test("err rejects with the code; an unanswered request times out", async () => {
  const { client, socket, clock } = await connected({ requestTimeout: 1000 });
  const refused = client.request({ t: "msg.edit", d: { room: "r1", seq: 1, text: "a" } });
  await flush();
  socket().push({ t: "err", re: socket().last("msg.edit").id, code: "forbidden", msg: "not yours" });
  await assert.rejects(refused, (e: unknown) => e instanceof ServerError && e.code === "forbidden");

  const silent = client.request({ t: "typing.start", d: { room: "r1" } });
  const check = assert.rejects(silent, RequestTimeoutError);
  await clock.advance(999);
  await clock.advance(1);
  await check;
});

test("unknown frame types are ignored by typed listeners and reach onAny", async () => {
  const { client, socket } = await connected();
  const seen: string[] = [];
  client.onAny((f) => seen.push(f.t));
  client.on("msg.new", () => assert.fail("not a msg.new"));
  socket().push({ t: "future.thing", d: { x: 1 } });
  socket().push({ no: "t" });
  assert.deepEqual(seen, ["future.thing"]);
});

// ----- deduplication and cursors -------------------------------------------------

test("msg.new is deduplicated by (room, seq) and moves the room's cursor", async () => {
  const saved: unknown[] = [];
  const { client, socket } = await connected({ onCursors: (c) => saved.push(c) });
  const got: string[] = [];
  client.on("msg.new", (f) => got.push(`${f.d.room}:${f.d.seq}`));
  for (const [room, seq] of [["r1", 1], ["r1", 2], ["r1", 2], ["r2", 1], ["r1", 1], ["r2", 1], ["r1", 3]] as const) {
    socket().push({ t: "msg.new", d: message(room, seq) });
  }
  assert.deepEqual(got, ["r1:1", "r1:2", "r2:1", "r1:3"]);
  assert.deepEqual(client.cursors.cursors, { r1: 3, r2: 1 });
  assert.deepEqual(saved.at(-1), { cursors: { r1: 3, r2: 1 }, evs: {} });
});

test("own ok counts as seen, and the cursor waits for a hole below it", async () => {
  const { client, socket } = await connected({ cursors: { cursors: { r1: 4 }, evs: {} } });
  const gaps: unknown[] = [];
  client.onGap((g) => gaps.push(g));
  const sent = client.send("r1", "mine");
  await flush();
  socket().push({ t: "ok", re: socket().last("msg.send").id, d: message("r1", 6, { sender: "u_1" }) });
  assert.equal((await sent).seq, 6);
  assert.equal(client.cursors.cursors.r1, 4, "seq 5 is still missing");
  const got: number[] = [];
  client.on("msg.new", (f) => got.push(f.d.seq));
  socket().push({ t: "msg.new", d: message("r1", 5) });
  socket().push({ t: "msg.new", d: message("r1", 6) }); // replay of our own: a duplicate
  assert.deepEqual(got, [5]);
  assert.equal(client.cursors.cursors.r1, 6);
  socket().push({ t: "msg.new", d: message("r1", 9) });
  assert.deepEqual(gaps, [{ room: "r1", after: 8, seq: 9 }]);
});

test("change events are deduplicated by (room, ev); resume.done sets both cursors", async () => {
  const { client, socket } = await connected();
  const evs: number[] = [];
  client.on("msg.edited", (f) => evs.push(f.d.ev));
  client.on("msg.reaction", (f) => evs.push(f.d.ev));
  socket().push({ t: "resume.done", d: { rooms: { r1: 10 }, evs: { r1: 4 } } });
  const edit = { room: "r1", seq: 2, by: "u_2", text: "x", at: 1 };
  socket().push({ t: "msg.edited", d: { ...edit, ev: 4 } }); // already had it
  socket().push({ t: "msg.edited", d: { ...edit, ev: 5 } });
  socket().push({ t: "msg.reaction", d: { room: "r1", seq: 2, user: "u_2", emoji: "👍", ev: 6 } });
  socket().push({ t: "msg.edited", d: { ...edit, ev: 5 } });
  assert.deepEqual(evs, [5, 6]);
  assert.deepEqual(client.cursors, { cursors: { r1: 10 }, evs: { r1: 6 } });
});

// ----- reconnecting ---------------------------------------------------------------

test("a dropped socket reconnects with backoff and jitter, and resumes from the cursors", async () => {
  const { client, socket, sockets, clock, statuses } = await connected({
    backoff: { initial: 500, max: 4000, jitter: 0.5 },
  });
  socket().push({ t: "msg.new", d: message("r1", 1) });
  socket().push({ t: "msg.edited", d: { room: "r1", seq: 1, by: "u_2", text: "y", at: 2, ev: 1 } });
  const delays: number[] = [];
  for (let i = 0; i < 5; i++) {
    socket().serverClose(1006);
    const status = statuses.at(-1);
    assert.equal(status?.state, "reconnecting");
    delays.push(status?.retryIn ?? -1);
    await clock.advance(status?.retryIn ?? 0);
    socket().open();
  }
  // random() = 0.5 and jitter 0.5: each delay is 3/4 of 500, 1000, 2000, 4000, 4000 (capped).
  assert.deepEqual(delays, [375, 750, 1500, 3000, 3000]);
  assert.equal(sockets.length, 6);
  assert.deepEqual(socket().last("hello").d, {
    token: "tok",
    v: 1,
    device: "tab-1",
    cursors: { r1: 1 },
    evs: { r1: 1 },
  });
  socket().welcome();
  await flush();
  assert.equal(client.state, "open");
  socket().serverClose(4000, "slow consumer"); // 4000-4099: reconnect, backoff restarted
  assert.equal(statuses.at(-1)?.retryIn, 375);
});

test("an un-acked send is resent with the same cid after a reconnect, and resolves once", async () => {
  const { client, socket, clock, statuses } = await connected();
  const sent = client.send("r1", "survive");
  const ping = client.ping();
  await flush();
  const first = socket().last("msg.send");
  socket().serverClose(1001, "going away");
  await assert.rejects(ping, (e: unknown) => e instanceof ConnectionClosedError && e.code === 1001);
  await clock.advance(statuses.at(-1)?.retryIn ?? 0);
  socket().open();
  socket().welcome();
  await flush();
  const again = socket().last("msg.send");
  assert.equal((again.d as { cid: string }).cid, (first.d as { cid: string }).cid);
  assert.notEqual(again.id, first.id);
  socket().push({ t: "ok", re: again.id, d: message("r1", 1, { cid: (first.d as { cid: string }).cid }) });
  assert.equal((await sent).seq, 1);
});

test("a send answered unavailable, or not at all, goes again with the same cid", async () => {
  const { client, socket, clock } = await connected({ requestTimeout: 1000 });
  const sent = client.send("r1", "retry me");
  await flush();
  const first = socket().last("msg.send");
  socket().push({ t: "err", re: first.id, code: "unavailable", msg: "storage down" });
  await clock.advance(1000);
  const second = socket().last("msg.send");
  assert.notEqual(second.id, first.id);
  await clock.advance(1000); // no answer: timed out, resent after backoff
  await clock.advance(1000);
  const third = socket().last("msg.send");
  assert.notEqual(third.id, second.id);
  const cids = socket().sent.filter((f) => f.t === "msg.send").map((f) => (f.d as { cid: string }).cid);
  assert.equal(new Set(cids).size, 1);
  socket().push({ t: "ok", re: third.id, d: message("r1", 1) });
  assert.equal((await sent).seq, 1);
  // A refusal that would fail again is not retried.
  const refused = client.send("r2", "nope");
  await flush();
  socket().push({ t: "err", re: socket().last("msg.send").id, code: "not_member", msg: "no" });
  await assert.rejects(refused, ServerError);
});

test("a terminal close (4100-4199) stops reconnecting and fails what waits", async () => {
  const r = rig();
  const welcomed = r.client.connect();
  await flush();
  r.socket().open();
  r.socket().serverClose(4101, "The token in hello is not valid; sign in again.");
  await assert.rejects(welcomed, (e: unknown) => e instanceof ConnectionClosedError && e.code === 4101);
  assert.equal(r.client.state, "closed");
  await r.clock.advance(60_000);
  assert.equal(r.sockets.length, 1, "no reconnect after 4101");
  await assert.rejects(r.client.send("r1", "x"), ConnectionClosedError);
});

test("4102 asks for a fresh token once and reconnects with it", async () => {
  let refreshes = 0;
  const r = await connected({
    refreshToken: async () => {
      refreshes += 1;
      return `fresh-${refreshes}`;
    },
  });
  r.socket().serverClose(4102, "expired");
  await flush();
  assert.equal(r.sockets.length, 2);
  r.socket().open();
  assert.equal((r.socket().last("hello").d as { token: string }).token, "fresh-1");
  r.socket().serverClose(4102, "expired again"); // before any welcome: give up
  await flush();
  assert.equal(refreshes, 1);
  assert.equal(r.client.state, "closed");
});

test("silence for two heartbeats sends a ping; no pong drops and reconnects", async () => {
  const { client, socket, sockets, clock } = await connected({ pongTimeout: 3000 });
  void client;
  await clock.advance(39_000);
  assert.equal(socket().sent.filter((f) => f.t === "ping").length, 0);
  await clock.advance(1_000); // 40 s = 2 × heartbeat (20 s)
  const ping = socket().last("ping");
  socket().push({ t: "pong", re: ping.id, ts: 1 }); // alive: nothing happens
  await clock.advance(30_000);
  assert.equal(sockets.length, 1);
  await clock.advance(10_000); // silent again: another ping, unanswered this time
  assert.equal(socket().sent.filter((f) => f.t === "ping").length, 2);
  await clock.advance(3_000);
  assert.equal(socket().closedWith, 4000);
  assert.equal(client.state, "reconnecting");
  await clock.advance(1_000);
  assert.equal(sockets.length, 2);
});

test("close() is final: no reconnect, pending requests fail", async () => {
  const { client, sockets, clock } = await connected();
  const sent = client.send("r1", "x");
  client.close();
  await assert.rejects(sent, ConnectionClosedError);
  await clock.advance(60_000);
  assert.equal(sockets.length, 1);
  assert.equal(sockets[0]?.closedWith, 1000);
});

test("typed listeners get narrowed frames", async () => {
  const { client, socket } = await connected();
  let text = "";
  client.on("ai.delta", (f) => {
    text += f.d.text; // f is AiDelta: d.text is a string
  });
  const frames: ServerFrame[] = [
    { t: "ai.delta", d: { gen: "g", room: "r", i: 0, text: "Hel" } },
    { t: "ai.delta", d: { gen: "g", room: "r", i: 1, text: "lo" } },
  ];
  for (const f of frames) socket().push(f as unknown as Record<string, unknown>);
  assert.equal(text, "Hello");
});
