/**
 * RealtimeClient: one session on the server's /ws, kept alive across drops.
 *
 * What it does for the app (docs/protocol.md is the contract):
 * - connects and says `hello` with the token and the cursors it holds;
 * - matches replies to requests by `id`/`re`, each with a timeout;
 * - reconnects after a drop or a 4000-4099 close with exponential backoff and
 *   jitter, resuming with the stored `cursors` and `evs`; stops for good on a
 *   4100-4199 close (after one token refresh for 4102, when it can refresh);
 * - drops duplicate `msg.new` by (room, seq) and duplicate change events by
 *   (room, ev), keeping the contiguous cursors to resume from;
 * - resends un-acknowledged idempotent requests (`msg.send`, `ai.ask`,
 *   `msg.forward`: they carry a `cid`) with the same `cid` after a reconnect,
 *   a request timeout or a retryable error, so nothing is lost or doubled;
 * - sends the `ping` frame when the socket has been silent for two heartbeats,
 *   and reconnects when its `pong` does not come.
 *
 * Everything time- or network-dependent (WebSocket, timers, random) can be
 * injected, which is how the unit tests drive it.
 */
import { decode, encode } from "@msgpack/msgpack";

import type {
  CallOk,
  ClientFrame,
  ClientFrameType,
  Err,
  Hello,
  Message,
  Ok,
  Pong,
  PresenceList,
  SendData,
  ServerFrame,
  ServerFrameOf,
  ServerFrameType,
  WelcomeData,
} from "./protocol.js";
import { PROTOCOL_VERSION } from "./protocol.js";
import { SeqTracker } from "./tracker.js";

// ----- public types -----------------------------------------------------------

/** The part of the WebSocket API the client uses (browsers' WebSocket fits). */
export interface WebSocketLike {
  binaryType: string;
  readonly readyState: number;
  send(data: Uint8Array): void;
  close(code?: number, reason?: string): void;
  onopen: ((ev: unknown) => void) | null;
  onmessage: ((ev: { readonly data: unknown }) => void) | null;
  onclose: ((ev: { readonly code: number; readonly reason: string }) => void) | null;
  onerror: ((ev: unknown) => void) | null;
}

export type WebSocketFactory = (url: string) => WebSocketLike;

export interface Timers {
  setTimeout(fn: () => void, ms: number): unknown;
  clearTimeout(handle: unknown): void;
  now(): number;
}

export interface Backoff {
  /** First delay, ms. */
  readonly initial: number;
  /** Largest delay, ms. */
  readonly max: number;
  /** Each delay is drawn from [delay × (1 − jitter), delay]. */
  readonly jitter: number;
}

export type ConnectionState = "idle" | "connecting" | "open" | "reconnecting" | "closed";

export interface Status {
  readonly state: ConnectionState;
  /** The close code that led here (reconnecting, closed). */
  readonly code?: number;
  readonly reason?: string;
  /** Ms until the next attempt, when reconnecting. */
  readonly retryIn?: number;
}

export interface Cursors {
  readonly cursors: { readonly [room: string]: number };
  readonly evs: { readonly [room: string]: number };
}

export interface ClientOptions {
  /** ws:// or wss:// URL of /ws. */
  readonly url: string;
  /** The access token, or a function asked before every connection (may refresh it). */
  readonly token: string | (() => string | Promise<string>);
  /**
   * Called once when the server closes with 4102 (token expired): return a
   * fresh token and the client reconnects with it. Without it, 4102 is terminal.
   */
  readonly refreshToken?: () => Promise<string>;
  readonly device?: string;
  /** Cursors persisted from an earlier session (see `onCursors`). */
  readonly cursors?: Cursors;
  /** Called whenever the cursors move: persist them to resume later. */
  readonly onCursors?: (cursors: Cursors) => void;
  /** Per-request timeout, ms (default 10 000). */
  readonly requestTimeout?: number;
  /** How long a `pong` may take before the socket counts as dead, ms (default 5 000). */
  readonly pongTimeout?: number;
  readonly backoff?: Partial<Backoff>;
  readonly webSocket?: WebSocketFactory;
  readonly timers?: Timers;
  readonly random?: () => number;
  readonly newCid?: () => string;
}

/** A request frame as the app writes it: the client sets `id`. */
export type RequestFrame = ClientFrame extends infer F
  ? F extends { readonly t: infer T; readonly id: number }
    ? T extends "hello"
      ? never
      : Omit<F, "id">
    : never
  : never;

/** What a successful request of type T resolves to. */
export type ReplyTo<T extends ClientFrameType> = T extends "ping"
  ? Pong
  : T extends "presence.get"
    ? PresenceList
    : T extends "call.start" | "call.accept" | "call.join"
      ? CallOk
      : Ok;

export class ClientError extends Error {}

/** The server answered with `err`. */
export class ServerError extends ClientError {
  constructor(
    readonly code: string,
    readonly msg: string,
  ) {
    super(`${code}: ${msg}`);
    this.name = "ServerError";
  }
}

/** The connection ended before the reply came (for requests that are not resent). */
export class ConnectionClosedError extends ClientError {
  constructor(
    readonly code: number,
    readonly reason: string,
  ) {
    super(`connection closed with ${code}${reason ? `: ${reason}` : ""}`);
    this.name = "ConnectionClosedError";
  }
}

export class RequestTimeoutError extends ClientError {
  constructor(readonly t: string) {
    super(`no reply to ${t} in time`);
    this.name = "RequestTimeoutError";
  }
}

// ----- internals --------------------------------------------------------------

const ABNORMAL = 1006;
const NORMAL = 1000;
const TOKEN_EXPIRED = 4102;
/** Errors after which an idempotent request is resent (docs: Requests, errors and retries). */
const RETRYABLE = new Set(["timeout", "unavailable", "overloaded", "rate_limited"]);
const IDEMPOTENT = new Set<string>(["msg.send", "ai.ask", "msg.forward"]);
const CHANGES = new Set<string>(["msg.edited", "msg.deleted", "msg.reaction", "rcpt.update"]);

/** Terminal close codes (4100-4199): do not reconnect without the user or app acting. */
export function isTerminal(code: number): boolean {
  return code >= 4100 && code <= 4199;
}

interface Pending {
  readonly frame: RequestFrame;
  readonly idempotent: boolean;
  readonly resolve: (reply: ServerFrame) => void;
  readonly reject: (error: Error) => void;
  id: number | null;
  timer: unknown;
  attempt: number;
}

type Listener = (frame: ServerFrame) => void;

const defaultTimers: Timers = {
  setTimeout: (fn, ms) => globalThis.setTimeout(fn, ms),
  clearTimeout: (h) => globalThis.clearTimeout(h as ReturnType<typeof setTimeout>),
  now: () => Date.now(),
};

function defaultWebSocket(url: string): WebSocketLike {
  const ctor = (globalThis as { WebSocket?: new (url: string) => WebSocketLike }).WebSocket;
  if (!ctor) throw new ClientError("no WebSocket here: pass options.webSocket");
  return new ctor(url);
}

function isObject(x: unknown): x is Record<string, unknown> {
  return typeof x === "object" && x !== null && !Array.isArray(x);
}

export class RealtimeClient {
  /** The last `welcome`; undefined before the first one. */
  welcome: WelcomeData | undefined;

  private readonly opts: ClientOptions;
  private readonly timers: Timers;
  private readonly backoff: Backoff;
  private readonly random: () => number;
  private readonly newCid: () => string;
  private readonly seqs: SeqTracker;
  private readonly evs: SeqTracker;
  private readonly listeners = new Map<string, Set<Listener>>();
  private readonly statusListeners = new Set<(status: Status) => void>();
  private readonly gapListeners = new Set<(gap: { room: string; after: number; seq: number }) => void>();
  private readonly pending = new Set<Pending>();
  private readonly byId = new Map<number, Pending>();

  private ws: WebSocketLike | null = null;
  private nextId = 1;
  private helloId = 0;
  private attempt = 0;
  private refreshed = false;
  private stopped = false;
  private status: Status = { state: "idle" };
  private token: string | null = null;
  private reconnectTimer: unknown = null;
  private helloTimer: unknown = null;
  private beatTimer: unknown = null;
  private lastRx = 0;
  private pinging = false;

  constructor(options: ClientOptions) {
    this.opts = options;
    this.timers = options.timers ?? defaultTimers;
    this.backoff = { initial: 500, max: 30_000, jitter: 0.5, ...options.backoff };
    this.random = options.random ?? Math.random;
    this.newCid = options.newCid ?? (() => globalThis.crypto.randomUUID());
    this.seqs = new SeqTracker(options.cursors?.cursors);
    this.evs = new SeqTracker(options.cursors?.evs);
  }

  // ----- lifecycle --------------------------------------------------------------

  get state(): ConnectionState {
    return this.status.state;
  }

  /** Connect (and keep reconnecting). Resolves on the first `welcome`; rejects on a terminal close. */
  connect(): Promise<WelcomeData> {
    this.stopped = false;
    return new Promise((resolve, reject) => {
      const off = this.onStatus((s) => {
        if (s.state === "open" && this.welcome) {
          off();
          resolve(this.welcome);
        } else if (s.state === "closed") {
          off();
          reject(new ConnectionClosedError(s.code ?? NORMAL, s.reason ?? ""));
        }
      });
      if (this.status.state === "idle" || this.status.state === "closed") void this.open();
    });
  }

  /** Close for good (1000). Pending requests fail with ConnectionClosedError. */
  close(): void {
    this.stopped = true;
    this.clearTimers();
    const ws = this.ws;
    this.ws = null;
    if (ws) {
      detach(ws);
      ws.close(NORMAL, "bye");
    }
    this.failAll(new ConnectionClosedError(NORMAL, "closed by the client"), true);
    this.setStatus({ state: "closed", code: NORMAL });
  }

  /** After a terminal close the app acted (signed in again, updated the token): try again. */
  reconnect(): Promise<WelcomeData> {
    this.close();
    this.refreshed = false;
    this.attempt = 0;
    return this.connect();
  }

  /** Drop the socket as if the network failed: the client reconnects on its own. */
  drop(reason = "dropped"): void {
    const ws = this.ws;
    if (!ws) return;
    detach(ws);
    this.ws = null;
    try {
      ws.close(4000, reason);
    } catch {
      // already closing
    }
    this.onClosed(ABNORMAL, reason);
  }

  // ----- events -------------------------------------------------------------------

  /** Listen to pushes of type `t` (after deduplication); returns the unsubscribe function. */
  on<T extends ServerFrameType>(t: T, fn: (frame: ServerFrameOf<T>) => void): () => void {
    const set = this.listeners.get(t) ?? new Set<Listener>();
    set.add(fn as Listener);
    this.listeners.set(t, set);
    return () => set.delete(fn as Listener);
  }

  /** Every push, whatever its type (unknown types included, as decoded maps). */
  onAny(fn: (frame: ServerFrame) => void): () => void {
    return this.on("*" as ServerFrameType, fn);
  }

  onStatus(fn: (status: Status) => void): () => void {
    this.statusListeners.add(fn);
    return () => this.statusListeners.delete(fn);
  }

  /** A `msg.new` arrived more than one above the room's cursor: fetch the hole over REST. */
  onGap(fn: (gap: { room: string; after: number; seq: number }) => void): () => void {
    this.gapListeners.add(fn);
    return () => this.gapListeners.delete(fn);
  }

  // ----- cursors ------------------------------------------------------------------

  get cursors(): Cursors {
    return { cursors: this.seqs.snapshot(), evs: this.evs.snapshot() };
  }

  /** The app loaded a room's history up to `seq` (and change events up to `ev`) over REST. */
  markLoaded(room: string, seq: number, ev?: number): void {
    this.seqs.advance(room, seq);
    if (ev !== undefined) this.evs.advance(room, ev);
    this.cursorsMoved();
  }

  // ----- requests -----------------------------------------------------------------

  /**
   * Send a request and wait for its reply. `err` rejects with ServerError.
   * Idempotent requests (with a `cid`) are resent until answered; the others
   * reject with RequestTimeoutError or ConnectionClosedError.
   */
  request<F extends RequestFrame>(frame: F): Promise<ReplyTo<F["t"]>> {
    if (this.stopped || this.status.state === "closed") {
      return Promise.reject(new ConnectionClosedError(this.status.code ?? NORMAL, "not connected"));
    }
    return new Promise<ReplyTo<F["t"]>>((resolve, reject) => {
      const entry: Pending = {
        frame,
        idempotent: IDEMPOTENT.has(frame.t),
        resolve: resolve as (reply: ServerFrame) => void,
        reject,
        id: null,
        timer: null,
        attempt: 0,
      };
      this.pending.add(entry);
      if (this.status.state === "open") this.transmit(entry);
      else if (!entry.idempotent && this.status.state !== "connecting" && this.status.state !== "reconnecting") {
        this.settle(entry);
        reject(new ConnectionClosedError(this.status.code ?? ABNORMAL, "not connected"));
      }
      // Otherwise it waits for the next welcome (see onWelcome).
    });
  }

  /** Post a message; resolves with the stored message (seq, ts) once durably stored. */
  async send(room: string, text: string, extra: Partial<Omit<SendData, "room" | "text">> = {}): Promise<Message> {
    const d: SendData = { room, text, ...extra, cid: extra.cid ?? this.newCid() };
    const reply = await this.request({ t: "msg.send", d });
    if (!reply.d) throw new ClientError("msg.send answered without the message");
    return reply.d;
  }

  async ping(): Promise<number> {
    return (await this.request({ t: "ping" })).ts;
  }

  /**
   * Give the open session a fresh access token (`auth`) before the current
   * one expires, so the server does not close it with 4004. Later reconnects
   * say hello with this token too. Rejects with the server's `err`
   * (`token_expired`, `unauthorized`, `forbidden`); the old token then stays.
   */
  async reauthenticate(token: string): Promise<void> {
    await this.request({ t: "auth", d: { token } });
    this.token = token;
  }

  // ----- connection internals -------------------------------------------------------

  private async open(): Promise<void> {
    if (this.stopped) return;
    this.setStatus({ state: this.attempt === 0 ? "connecting" : "reconnecting" });
    try {
      if (this.token === null) {
        const t = this.opts.token;
        this.token = typeof t === "string" ? t : await t();
      }
    } catch (error) {
      this.scheduleReconnect(ABNORMAL, `token: ${String(error)}`);
      return;
    }
    if (this.stopped) return;
    let ws: WebSocketLike;
    try {
      ws = (this.opts.webSocket ?? defaultWebSocket)(this.opts.url);
    } catch (error) {
      this.scheduleReconnect(ABNORMAL, String(error));
      return;
    }
    this.ws = ws;
    ws.binaryType = "arraybuffer";
    ws.onopen = () => {
      this.helloId = this.nextId++;
      const { cursors, evs } = this.cursors;
      const hello: Hello = {
        t: "hello",
        id: this.helloId,
        d: { token: this.token ?? "", v: PROTOCOL_VERSION, device: this.opts.device ?? "web", cursors, evs },
      };
      ws.send(encode(hello));
    };
    ws.onmessage = (ev) => this.onData(ev.data);
    ws.onclose = (ev) => {
      if (this.ws !== ws) return;
      detach(ws);
      this.ws = null;
      this.onClosed(ev.code, ev.reason);
    };
    ws.onerror = () => undefined; // onclose follows with the code
    this.helloTimer = this.timers.setTimeout(() => this.drop("no welcome in time"), this.requestTimeout);
  }

  private get requestTimeout(): number {
    return this.opts.requestTimeout ?? 10_000;
  }

  private onData(data: unknown): void {
    this.lastRx = this.timers.now();
    if (typeof data === "string") return; // the server only sends binary frames
    let frame: unknown;
    try {
      frame = decode(data instanceof ArrayBuffer ? new Uint8Array(data) : (data as Uint8Array));
    } catch {
      this.drop("undecodable frame");
      return;
    }
    if (!isObject(frame) || typeof frame.t !== "string") return; // ignore what we cannot read
    const f = frame as unknown as ServerFrame;
    if (f.t === "welcome" && f.re === this.helloId) {
      this.onWelcome(f.d);
      return;
    }
    const re = (frame as { re?: unknown }).re;
    if (typeof re === "number") {
      const entry = this.byId.get(re);
      if (entry) {
        this.onReply(entry, f);
        return;
      }
    }
    this.onPush(f);
  }

  private onWelcome(welcome: WelcomeData): void {
    this.timers.clearTimeout(this.helloTimer);
    this.welcome = welcome;
    this.attempt = 0;
    this.refreshed = false;
    this.setStatus({ state: "open" });
    this.emit({ t: "welcome", re: this.helloId, d: welcome });
    for (const entry of [...this.pending]) if (entry.id === null) this.transmit(entry);
    this.scheduleBeat();
  }

  private onReply(entry: Pending, reply: ServerFrame): void {
    this.byId.delete(entry.id ?? -1);
    this.timers.clearTimeout(entry.timer);
    entry.id = null;
    if (reply.t === "err") {
      const err = reply as Err;
      if (entry.idempotent && RETRYABLE.has(err.code)) {
        this.retryLater(entry);
        return;
      }
      this.settle(entry);
      entry.reject(new ServerError(err.code, err.msg));
      return;
    }
    this.settle(entry);
    if (reply.t === "ok") this.noteOwn(entry.frame, reply);
    entry.resolve(reply);
  }

  /** Our own stored messages and changes count as seen: their replay is a duplicate. */
  private noteOwn(frame: RequestFrame, ok: Ok): void {
    for (const m of [...(ok.d ? [ok.d] : []), ...(ok.ms ?? [])]) this.seqs.see(m.room, m.seq);
    if (typeof ok.ev === "number" && "d" in frame && isObject(frame.d) && typeof frame.d.room === "string") {
      this.evs.see(frame.d.room, ok.ev);
    }
    this.cursorsMoved();
  }

  private onPush(frame: ServerFrame): void {
    switch (frame.t) {
      case "msg.new": {
        const { room, seq } = frame.d;
        const ahead = this.seqs.isAhead(room, seq);
        if (!this.seqs.see(room, seq)) return; // duplicate
        if (ahead) for (const fn of this.gapListeners) fn({ room, after: seq - 1, seq });
        this.cursorsMoved();
        break;
      }
      case "resume.gap":
        this.seqs.advance(frame.d.room, frame.d.last_seq);
        if (frame.d.last_ev) this.evs.advance(frame.d.room, frame.d.last_ev);
        this.cursorsMoved();
        break;
      case "resume.done":
        for (const [room, n] of Object.entries(frame.d.rooms ?? {})) this.seqs.advance(room, n);
        for (const [room, n] of Object.entries(frame.d.evs ?? {})) this.evs.advance(room, n);
        this.cursorsMoved();
        break;
      default:
        if (CHANGES.has(frame.t)) {
          const d = (frame as { d: { room: string; ev?: number } }).d;
          if (d.ev) {
            if (!this.evs.see(d.room, d.ev)) return; // duplicate
            this.cursorsMoved();
          }
        }
    }
    this.emit(frame);
  }

  private emit(frame: ServerFrame): void {
    for (const key of [frame.t, "*"]) {
      for (const fn of [...(this.listeners.get(key) ?? [])]) {
        try {
          fn(frame);
        } catch (error) {
          console.error("realtime client listener failed", error);
        }
      }
    }
  }

  private onClosed(code: number, reason: string): void {
    this.clearTimers();
    this.pinging = false;
    // Requests that were on the wire: idempotent ones go again after the next
    // welcome (same cid), the others fail now: we cannot know if they ran.
    for (const entry of [...this.pending]) {
      if (entry.id === null) continue;
      this.byId.delete(entry.id);
      this.timers.clearTimeout(entry.timer);
      entry.id = null;
      if (!entry.idempotent) {
        this.settle(entry);
        entry.reject(new ConnectionClosedError(code, reason));
      }
    }
    if (this.stopped) return;
    if (code === TOKEN_EXPIRED && this.opts.refreshToken && !this.refreshed) {
      this.refreshed = true;
      this.setStatus({ state: "reconnecting", code, reason, retryIn: 0 });
      this.opts.refreshToken().then(
        (token) => {
          this.token = token;
          void this.open();
        },
        () => this.terminal(code, reason),
      );
      return;
    }
    if (isTerminal(code)) {
      this.terminal(code, reason);
      return;
    }
    this.scheduleReconnect(code, reason);
  }

  private terminal(code: number, reason: string): void {
    this.stopped = true;
    this.failAll(new ConnectionClosedError(code, reason), true);
    this.setStatus({ state: "closed", code, reason });
  }

  private scheduleReconnect(code: number, reason: string): void {
    const { initial, max, jitter } = this.backoff;
    const delay = Math.min(max, initial * 2 ** this.attempt);
    const retryIn = Math.round(delay * (1 - jitter * this.random()));
    this.attempt += 1;
    if (typeof this.opts.token !== "string") this.token = null; // ask the provider again
    this.setStatus({ state: "reconnecting", code, reason, retryIn });
    this.reconnectTimer = this.timers.setTimeout(() => void this.open(), retryIn);
  }

  private transmit(entry: Pending): void {
    const ws = this.ws;
    if (!ws || this.status.state !== "open") return;
    const id = this.nextId++;
    entry.id = id;
    entry.attempt += 1;
    this.byId.set(id, entry);
    entry.timer = this.timers.setTimeout(() => this.onTimeout(entry, id), this.requestTimeout);
    ws.send(encode({ ...entry.frame, id }));
  }

  private onTimeout(entry: Pending, id: number): void {
    if (entry.id !== id) return;
    this.byId.delete(id);
    entry.id = null;
    if (entry.idempotent) {
      this.retryLater(entry); // a late ok for the old id lands in the pushes, harmlessly
      return;
    }
    this.settle(entry);
    entry.reject(new RequestTimeoutError(entry.frame.t));
  }

  private retryLater(entry: Pending): void {
    const { initial, max, jitter } = this.backoff;
    const delay = Math.min(max, initial * 2 ** (entry.attempt - 1));
    entry.timer = this.timers.setTimeout(
      () => {
        if (this.pending.has(entry) && entry.id === null) this.transmit(entry);
      },
      Math.round(delay * (1 - jitter * this.random())),
    );
  }

  private settle(entry: Pending): void {
    this.pending.delete(entry);
    if (entry.id !== null) this.byId.delete(entry.id);
    this.timers.clearTimeout(entry.timer);
  }

  private failAll(error: Error, idempotentToo: boolean): void {
    for (const entry of [...this.pending]) {
      if (!entry.idempotent || idempotentToo) {
        this.settle(entry);
        entry.reject(error);
      }
    }
  }

  // ----- heartbeats -------------------------------------------------------------

  private scheduleBeat(): void {
    const heartbeat = (this.welcome?.heartbeat ?? 20) * 1000;
    this.lastRx = this.timers.now();
    const check = (): void => {
      if (this.status.state !== "open") return;
      const silent = this.timers.now() - this.lastRx;
      if (!this.pinging && silent >= 2 * heartbeat) {
        this.pinging = true;
        this.pingWithin(this.opts.pongTimeout ?? 5_000);
      }
      this.beatTimer = this.timers.setTimeout(check, heartbeat / 2);
    };
    this.beatTimer = this.timers.setTimeout(check, heartbeat / 2);
  }

  private pingWithin(ms: number): void {
    const ws = this.ws;
    let answered = false;
    const timer = this.timers.setTimeout(() => {
      if (!answered && this.ws === ws) this.drop("no pong");
    }, ms);
    this.ping().then(
      () => {
        answered = true;
        this.pinging = false;
        this.timers.clearTimeout(timer);
      },
      () => {
        this.pinging = false;
        this.timers.clearTimeout(timer);
      },
    );
  }

  // ----- helpers ----------------------------------------------------------------

  private clearTimers(): void {
    for (const t of [this.reconnectTimer, this.helloTimer, this.beatTimer]) this.timers.clearTimeout(t);
    this.reconnectTimer = this.helloTimer = this.beatTimer = null;
  }

  private setStatus(status: Status): void {
    this.status = status;
    for (const fn of [...this.statusListeners]) fn(status);
  }

  private cursorsMoved(): void {
    this.opts.onCursors?.(this.cursors);
  }
}

function detach(ws: WebSocketLike): void {
  ws.onopen = ws.onmessage = ws.onclose = ws.onerror = null;
}
