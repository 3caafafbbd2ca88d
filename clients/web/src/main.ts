// The web app at /app: plain DOM on top of the TypeScript client package.
import {
  RealtimeClient,
  type Cursors,
  type Message,
  type Reaction,
  type Status,
} from "../../typescript/src/index.js";
import { Api, ApiError, authenticate, loadSession, saveSession, type Session, type User } from "./api.js";
import { Calls } from "./call.js";

// ----- tiny DOM helpers -----------------------------------------------------------

function $<T extends HTMLElement = HTMLElement>(id: string): T {
  const el = document.getElementById(id);
  if (!el) throw new Error(`#${id} missing`);
  return el as T;
}

function h<K extends keyof HTMLElementTagNameMap>(
  tag: K,
  attrs: Record<string, string> = {},
  ...children: (Node | string)[]
): HTMLElementTagNameMap[K] {
  const el = document.createElement(tag);
  for (const [k, v] of Object.entries(attrs)) {
    if (k === "class") el.className = v;
    else el.setAttribute(k, v);
  }
  el.append(...children);
  return el;
}

// ----- state -----------------------------------------------------------------------

interface RoomSummary {
  id: string;
  kind: "direct" | "group" | "ai";
  name: string;
  members: { user_id: string }[];
  unread: number;
  last_seq: number;
  last_message: Message | null;
}

interface Shown {
  msg: Message;
  reactions: Map<string, { n: number; me: boolean }>;
}

let api: Api;
let client: RealtimeClient;
let calls: Calls;
let me: User;
const rooms = new Map<string, RoomSummary>();
const names = new Map<string, string>();
const online = new Map<string, { online: boolean; last_seen?: number | null }>();
let current: string | null = null;
let shown = new Map<number, Shown>();
let oldest = 0;
const peerRead = new Map<string, Map<string, { read: number; dlv: number }>>();
const typingNow = new Map<string, Map<string, number>>(); // room -> user -> expires (ms)
const streams = new Map<string, { room: string; el: HTMLElement; n: number }>(); // gen -> bubble
let replyTo: Message | null = null;
let editing: Message | null = null;
let lastTyping = 0;

const cursorKey = (user: string): string => `rt.cursors.${user}`;

// ----- boot ------------------------------------------------------------------------

window.addEventListener("DOMContentLoaded", () => {
  bindAuth();
  const session = loadSession();
  if (session) void start(session);
  else showAuth();
});

function showAuth(): void {
  $("auth").hidden = false;
  $("main").hidden = true;
}

function bindAuth(): void {
  const form = $<HTMLFormElement>("auth-form");
  form.addEventListener("submit", (ev) => {
    ev.preventDefault();
    const mode = ((ev as SubmitEvent).submitter as HTMLButtonElement | null)?.value === "register" ? "register" : "login";
    const data = Object.fromEntries(new FormData(form)) as Record<string, string>;
    $("auth-error").textContent = "";
    authenticate(mode, data).then(
      (s) => void start(s),
      (e: unknown) => ($("auth-error").textContent = e instanceof Error ? e.message : String(e)),
    );
  });
  $("sign-out").addEventListener("click", () => {
    void api.json("/auth/logout", { refresh_token: api.session.refresh }).catch(() => undefined);
    client.close();
    saveSession(null);
    location.reload();
  });
}

async function start(session: Session): Promise<void> {
  api = new Api(session);
  me = session.user;
  names.set(me.id, me.display_name || me.username || me.id);
  $("auth").hidden = true;
  $("main").hidden = false;
  $("me").textContent = names.get(me.id) ?? "";
  const saved = localStorage.getItem(cursorKey(me.id));
  const wsUrl = `${location.protocol === "https:" ? "wss" : "ws"}://${location.host}/ws`;
  client = new RealtimeClient({
    url: wsUrl,
    token: () => api.session.access,
    refreshToken: () => api.refresh(),
    device: `web-${Math.random().toString(36).slice(2, 8)}`,
    ...(saved ? { cursors: JSON.parse(saved) as Cursors } : {}),
    onCursors: (c) => localStorage.setItem(cursorKey(me.id), JSON.stringify(c)),
  });
  calls = new Calls(client, () => me.id, {
    status: (text) => ($("call-status").textContent = text),
    ringing: (call) => {
      $("incoming").hidden = call === null;
      if (!call) return;
      const show = (): string => ($("incoming-text").textContent = `${nameOf(call.caller)} is calling…`);
      show();
      if (!names.has(call.caller)) void loadName(call.caller).then(show);
      if (!rooms.has(call.room)) void loadRooms();
    },
    inCall: (active) => {
      $("hangup").hidden = !active;
      $("call").hidden = active;
    },
    remoteStream: (stream) => ($<HTMLAudioElement>("remote-audio").srcObject = stream),
  });
  bindChat();
  listen();
  client.onStatus(showStatus);
  try {
    await client.connect();
  } catch (e) {
    if (e instanceof Error && /410[14]/.test(e.message)) {
      saveSession(null);
      showAuth();
    }
  }
}

function showStatus(s: Status): void {
  const el = $("conn");
  el.className = `conn ${s.state}`;
  el.textContent = s.state === "reconnecting" ? "reconnecting…" : s.state === "open" ? "online" : s.state;
}

// ----- socket events ---------------------------------------------------------------------

function listen(): void {
  client.on("welcome", () => void onWelcome());
  client.on("msg.new", (f) => onMessage(f.d, false));
  client.on("msg.edited", (f) => {
    const s = f.d.room === current ? shown.get(f.d.seq) : undefined;
    if (s) {
      s.msg = { ...s.msg, text: f.d.text, edited: f.d.at };
      render(s);
    }
  });
  client.on("msg.deleted", (f) => {
    if (f.d.room !== current) return;
    const s = shown.get(f.d.seq);
    if (!s) return;
    if (f.d.me) {
      shown.delete(f.d.seq);
      document.querySelector(`[data-seq="${f.d.seq}"]`)?.remove();
    } else {
      s.msg = { ...s.msg, deleted: true, text: "" };
      render(s);
    }
  });
  client.on("msg.reaction", (f) => {
    const s = f.d.room === current ? shown.get(f.d.seq) : undefined;
    if (!s) return;
    applyReaction(s, f.d.emoji, f.d.user, !f.d.off);
    render(s);
  });
  client.on("rcpt.update", (f) => {
    const d = f.d;
    if (d.user === me.id) {
      const room = rooms.get(d.room);
      if (room && typeof d.unread === "number") {
        room.unread = d.unread;
        renderRooms();
      }
      return;
    }
    const byUser = peerRead.get(d.room) ?? new Map<string, { read: number; dlv: number }>();
    byUser.set(d.user, { read: d.read, dlv: Math.max(d.dlv, d.read) });
    peerRead.set(d.room, byUser);
    if (d.room === current) for (const s of shown.values()) if (s.msg.sender === me.id) render(s);
  });
  client.on("typing", (f) => {
    const byUser = typingNow.get(f.d.room) ?? new Map<string, number>();
    if (f.d.on) byUser.set(f.d.user, Date.now() + 6000);
    else byUser.delete(f.d.user);
    typingNow.set(f.d.room, byUser);
    renderTyping();
  });
  client.on("presence", (f) => {
    online.set(f.d.user, f.d);
    renderPresence();
    renderRooms();
  });
  client.on("ai.start", (f) => {
    if (streams.has(f.d.gen)) return;
    const el = h("li", { class: "msg ai", "data-testid": "ai-stream" }, h("div", { class: "who" }, f.d.model), h("div", { class: "body" }));
    streams.set(f.d.gen, { room: f.d.room, el, n: 0 });
    if (f.d.room === current) {
      $("messages").append(el);
      $("stop").hidden = false;
      $("stop").dataset.gen = f.d.gen;
      scrollDown();
    }
  });
  client.on("ai.delta", (f) => {
    const s = streams.get(f.d.gen);
    if (!s || f.d.i < s.n) return; // a delta we already have
    s.n = f.d.i + 1;
    s.el.querySelector(".body")?.append(f.d.text);
    scrollDown();
  });
  for (const t of ["ai.done", "ai.error"] as const) {
    client.on(t, (f) => {
      const s = streams.get(f.d.gen);
      streams.delete(f.d.gen);
      s?.el.remove();
      if ($("stop").dataset.gen === f.d.gen) $("stop").hidden = true;
      if (f.d.msg) onMessage(f.d.msg, false);
      if (f.t === "ai.error") alertLine(`AI: ${f.d.text}`);
    });
  }
  client.onGap((g) => {
    if (g.room === current) void loadAfter(g.room, g.after - 1);
  });
  setInterval(renderTyping, 1000);
}

async function onWelcome(): Promise<void> {
  await loadRooms();
  const users = new Set<string>();
  for (const r of rooms.values()) for (const m of r.members) if (m.user_id !== me.id) users.add(m.user_id);
  if (users.size) {
    const reply = await client.request({ t: "presence.get", d: { users: [...users].slice(0, 100) } });
    for (const s of reply.d.users ?? []) online.set(s.user, s);
    renderRooms();
    renderPresence();
  }
  // Anything that arrived in the open room while we were away and was not replayed.
  if (current) await loadAfter(current, Math.max(0, ...shown.keys()));
}

function onMessage(msg: Message, fromHistory: boolean): void {
  const room = rooms.get(msg.room);
  if (room) {
    room.last_message = msg;
    room.last_seq = Math.max(room.last_seq, msg.seq);
  }
  if (msg.room === current) {
    if (!shown.has(msg.seq)) {
      const s: Shown = { msg, reactions: new Map() };
      shown.set(msg.seq, s);
      insert(s);
      scrollDown();
    }
    if (!fromHistory && msg.sender !== me.id && document.visibilityState === "visible") markRead(msg.room, msg.seq);
  } else if (!fromHistory && msg.sender !== me.id) {
    if (room) room.unread += 1;
    else void loadRooms(); // a room we did not know: its unread count comes with it
    void client.request({ t: "rcpt", d: { room: msg.room, dlv: msg.seq } }).catch(() => undefined);
  }
  renderRooms();
}

function markRead(room: string, seq: number): void {
  const r = rooms.get(room);
  if (r) r.unread = 0;
  void client.request({ t: "rcpt", d: { room, read: seq } }).catch(() => undefined);
}

// ----- rooms -----------------------------------------------------------------------

async function loadRooms(): Promise<void> {
  const list = await api.json<{ rooms: RoomSummary[] }>("/rooms?limit=200");
  for (const r of list.rooms) rooms.set(r.id, r);
  await Promise.all(
    list.rooms.flatMap((r) => r.members.map((m) => m.user_id)).filter((u) => !names.has(u)).map(loadName),
  );
  renderRooms();
}

async function loadName(user: string): Promise<void> {
  try {
    const u = await api.json<User>(`/users/${encodeURIComponent(user)}`);
    names.set(user, u.display_name || u.username || user);
  } catch {
    names.set(user, user);
  }
}

function nameOf(user: string): string {
  if (user.startsWith("ai:")) return user.slice(3);
  return names.get(user) ?? user;
}

function titleOf(r: RoomSummary): string {
  if (r.kind === "ai") return r.name || "AI conversation";
  if (r.kind === "group") return r.name;
  const other = r.members.find((m) => m.user_id !== me.id);
  return other ? nameOf(other.user_id) : "Just you";
}

function renderRooms(): void {
  const list = $("rooms");
  list.replaceChildren();
  const sorted = [...rooms.values()].sort((a, b) => (b.last_message?.ts ?? 0) - (a.last_message?.ts ?? 0));
  for (const r of sorted) {
    const other = r.kind === "direct" ? r.members.find((m) => m.user_id !== me.id) : undefined;
    const dot = h("span", { class: `dot${other && online.get(other.user_id)?.online ? " on" : ""}` });
    const last = r.last_message ? preview(r.last_message) : "";
    const li = h(
      "li",
      { "data-testid": "room", "data-room": r.id, class: r.id === current ? "active" : "" },
      dot,
      h("span", { class: "name" }, titleOf(r), h("span", { class: "last" }, last)),
    );
    if (r.unread > 0 && r.id !== current) li.append(h("span", { class: "unread", "data-testid": "unread" }, String(r.unread)));
    li.addEventListener("click", () => void openRoom(r.id));
    list.append(li);
  }
}

function preview(m: Message): string {
  if (m.deleted) return "deleted";
  if (m.kind === "image") return "📷 Photo";
  return m.text.slice(0, 60);
}

// ----- the open room ------------------------------------------------------------------

async function openRoom(id: string): Promise<void> {
  current = id;
  shown = new Map();
  replyTo = editing = null;
  $("replying").hidden = true;
  $("messages").replaceChildren();
  $("empty").hidden = true;
  $("chat").hidden = false;
  const room = rooms.get(id);
  $("room-title").textContent = room ? titleOf(room) : id;
  $("call").hidden = room?.kind !== "direct";
  $("stop").hidden = true;
  renderPresence();
  renderTyping();
  const page = await api.json<{ messages: Message[]; has_more: boolean }>(`/rooms/${id}/history?limit=30`);
  if (current !== id) return;
  showPage(page.messages);
  $("older").hidden = !page.has_more;
  const last = page.messages.at(-1);
  if (last) {
    client.markLoaded(id, last.seq);
    markRead(id, last.seq);
  }
  for (const s of streams.values()) if (s.room === id) $("messages").append(s.el);
  renderRooms();
  scrollDown();
  // A generation running in this room that this session did not see start.
  if (room?.kind === "ai") void client.request({ t: "ai.attach", d: { room: id, from: 0 } }).catch(() => undefined);
  $("text").focus();
}

function showPage(messages: Message[]): void {
  for (const m of messages) {
    const s: Shown = { msg: m, reactions: new Map() };
    for (const r of (m.reactions ?? []) as Reaction[]) s.reactions.set(r.e, { n: r.n, me: r.me ?? false });
    shown.set(m.seq, s);
    insert(s);
  }
  oldest = Math.min(...shown.keys());
}

async function loadOlder(): Promise<void> {
  if (!current) return;
  const page = await api.json<{ messages: Message[]; has_more: boolean }>(
    `/rooms/${current}/history?limit=30&before=${oldest}`,
  );
  showPage(page.messages);
  $("older").hidden = !page.has_more;
}

async function loadAfter(room: string, after: number): Promise<void> {
  const page = await api.json<{ messages: Message[] }>(`/rooms/${room}/history?limit=200&after=${after}`);
  for (const m of page.messages) onMessage(m, true);
  const last = page.messages.at(-1);
  if (last && room === current) markRead(room, last.seq);
}

function insert(s: Shown): void {
  const list = $("messages");
  const el = render(s);
  const after = [...list.children].find((c) => Number((c as HTMLElement).dataset.seq) > s.msg.seq);
  if (!el.isConnected) list.insertBefore(el, after ?? null);
}

function receipt(m: Message): string {
  const byUser = peerRead.get(m.room);
  let state = "sent";
  for (const c of byUser?.values() ?? []) {
    if (c.read >= m.seq) return "read";
    if (c.dlv >= m.seq) state = "delivered";
  }
  return state;
}

function render(s: Shown): HTMLElement {
  const m = s.msg;
  const existing = document.querySelector<HTMLElement>(`#messages [data-seq="${m.seq}"]`);
  const mine = m.sender === me.id;
  const kind = m.kind ?? "text";
  const el = h("li", {
    class: `msg${mine ? " mine" : ""}${kind === "ai" ? " ai" : ""}${kind === "system" ? " system" : ""}`,
    "data-seq": String(m.seq),
    "data-testid": "message",
  });
  if (!mine && kind !== "system") el.append(h("div", { class: "who" }, nameOf(m.sender)));
  if (m.reply) el.append(h("div", { class: "quote" }, `${nameOf(m.reply.sender)}: ${m.reply.deleted ? "deleted" : m.reply.text}`));
  const body = h("div", { class: "body", "data-testid": "text" });
  if (m.deleted) body.append(h("span", { class: "deleted" }, "This message was deleted"));
  else {
    if (kind === "image" && m.media) {
      const img = h("img", { alt: "image", "data-testid": "image" });
      void api.blobUrl(`/media/${m.media}/thumbnail`).then(
        (url) => (img.src = url),
        () => api.blobUrl(`/media/${m.media}`).then((url) => (img.src = url)),
      );
      body.append(img);
    }
    if (kind === "system") body.append(systemText(m.text));
    else body.append(m.text);
  }
  el.append(body);
  const reactions = h("div", { class: "reactions", "data-testid": "reactions" });
  for (const [e, r] of s.reactions) if (r.n > 0) reactions.append(h("span", { title: r.me ? "you reacted" : "" }, `${e} ${r.n}`));
  el.append(reactions);
  const meta = h("div", { class: "meta" }, new Date(m.ts).toLocaleTimeString([], { hour: "2-digit", minute: "2-digit" }));
  if (m.edited && !m.deleted) meta.append(h("span", { "data-testid": "edited" }, "edited"));
  if (mine && kind !== "system") meta.append(h("span", { "data-testid": "receipt" }, receipt(m)));
  if (!m.deleted && kind !== "system") {
    const actions = h("span", { class: "actions" });
    const button = (label: string, testid: string, fn: () => void): void => {
      const b = h("button", { type: "button", "data-testid": testid, title: testid }, label);
      b.addEventListener("click", fn);
      actions.append(b);
    };
    button("👍", "react", () => void react(s, "👍"));
    button("↩", "reply", () => startReply(m));
    if (mine && kind === "text") button("✎", "edit", () => startEdit(m));
    if (mine) button("🗑", "delete", () => void remove(m));
    meta.append(actions);
  }
  el.append(meta);
  if (existing) existing.replaceWith(el);
  return el;
}

function systemText(text: string): string {
  try {
    const ev = JSON.parse(text) as { ev?: string };
    return ev.ev ? ev.ev.replace(".", " ") : text;
  } catch {
    return text;
  }
}

function applyReaction(s: Shown, emoji: string, user: string, on: boolean): void {
  const r = s.reactions.get(emoji) ?? { n: 0, me: false };
  r.n = Math.max(0, r.n + (on ? 1 : -1));
  if (user === me.id) r.me = on;
  s.reactions.set(emoji, r);
}

async function react(s: Shown, emoji: string): Promise<void> {
  const off = s.reactions.get(emoji)?.me ?? false;
  const ok = await client.request({ t: "msg.react", d: { room: s.msg.room, seq: s.msg.seq, emoji, off } });
  if (ok.ev) applyReaction(s, emoji, me.id, !off);
  render(s);
}

function startReply(m: Message): void {
  replyTo = m;
  editing = null;
  $("replying").hidden = false;
  $("replying-text").textContent = `Replying to ${nameOf(m.sender)}: ${m.text.slice(0, 60)}`;
  $("text").focus();
}

function startEdit(m: Message): void {
  editing = m;
  replyTo = null;
  $("replying").hidden = false;
  $("replying-text").textContent = "Editing your message";
  $<HTMLInputElement>("text").value = m.text;
  $("text").focus();
}

async function remove(m: Message): Promise<void> {
  await client.request({ t: "msg.delete", d: { room: m.room, seq: m.seq, all: true } });
  const s = shown.get(m.seq);
  if (s) {
    s.msg = { ...s.msg, deleted: true, text: "" };
    render(s);
  }
}

function renderTyping(): void {
  const now = Date.now();
  const byUser = current ? typingNow.get(current) : undefined;
  const who = [...(byUser?.entries() ?? [])].filter(([u, exp]) => exp > now && u !== me.id).map(([u]) => nameOf(u));
  $("typing").textContent = who.length ? `${who.join(", ")} ${who.length > 1 ? "are" : "is"} typing…` : "";
}

function renderPresence(): void {
  const room = current ? rooms.get(current) : undefined;
  const other = room?.kind === "direct" ? room.members.find((m) => m.user_id !== me.id) : undefined;
  const p = other ? online.get(other.user_id) : undefined;
  $("room-presence").textContent = !p
    ? ""
    : p.online
      ? "online"
      : p.last_seen
        ? `last seen ${new Date(p.last_seen).toLocaleTimeString()}`
        : "offline";
}

function alertLine(text: string): void {
  $("messages").append(h("li", { class: "msg system" }, text));
}

function scrollDown(): void {
  const list = $("messages");
  list.scrollTop = list.scrollHeight;
}

// ----- composing ---------------------------------------------------------------------

function bindChat(): void {
  const text = $<HTMLInputElement>("text");
  $("composer").addEventListener("submit", (ev) => {
    ev.preventDefault();
    void submit(text.value);
  });
  text.addEventListener("input", () => {
    if (!current || rooms.get(current)?.kind === "ai") return;
    const now = Date.now();
    if (text.value && now - lastTyping > 3000) {
      lastTyping = now;
      void client.request({ t: "typing.start", d: { room: current } }).catch(() => undefined);
    } else if (!text.value && lastTyping) {
      lastTyping = 0;
      void client.request({ t: "typing.stop", d: { room: current } }).catch(() => undefined);
    }
  });
  $("cancel-reply").addEventListener("click", () => {
    replyTo = editing = null;
    $("replying").hidden = true;
  });
  $("older").addEventListener("click", () => void loadOlder());
  $<HTMLInputElement>("file").addEventListener("change", (ev) => void sendImage(ev.target as HTMLInputElement));
  $("stop").addEventListener("click", () => {
    const gen = $("stop").dataset.gen;
    if (gen) void client.request({ t: "ai.stop", d: { gen } }).catch(() => undefined);
  });
  $("new-chat").addEventListener("submit", (ev) => {
    ev.preventDefault();
    void newChat($<HTMLInputElement>("new-chat").querySelector("input")?.value ?? "");
  });
  $("new-ai").addEventListener("click", () => void newAi());
  $("call").addEventListener("click", () => current && void calls.start(current).catch((e: unknown) => ($("call-status").textContent = String(e))));
  $("hangup").addEventListener("click", () => void calls.hangup());
  $("accept-call").addEventListener("click", () => void acceptCall());
  $("decline-call").addEventListener("click", () => void calls.decline());
  document.addEventListener("visibilitychange", () => {
    const last = Math.max(0, ...shown.keys());
    if (current && last && document.visibilityState === "visible") markRead(current, last);
  });
}

async function acceptCall(): Promise<void> {
  const room = calls.call?.room;
  if (room && room !== current) await openRoom(room);
  await calls.accept();
}

async function submit(value: string): Promise<void> {
  const room = current;
  const text = value.trim();
  if (!room || !text) return;
  $<HTMLInputElement>("text").value = "";
  if (lastTyping) {
    lastTyping = 0;
    void client.request({ t: "typing.stop", d: { room } }).catch(() => undefined);
  }
  if (editing) {
    const m = editing;
    editing = null;
    $("replying").hidden = true;
    await client.request({ t: "msg.edit", d: { room, seq: m.seq, text } });
    const s = shown.get(m.seq);
    if (s) {
      s.msg = { ...s.msg, text, edited: Date.now() };
      render(s);
    }
    return;
  }
  const reply = replyTo?.seq;
  replyTo = null;
  $("replying").hidden = true;
  if (rooms.get(room)?.kind === "ai") {
    const ok = await client.request({ t: "ai.ask", d: { room, cid: crypto.randomUUID(), text } });
    if (ok.d) onMessage(ok.d, false);
    return;
  }
  const msg = await client.send(room, text, reply ? { reply } : {});
  onMessage(msg, false);
}

async function sendImage(input: HTMLInputElement): Promise<void> {
  const file = input.files?.[0];
  input.value = "";
  const room = current;
  if (!file || !room) return;
  const media = await api.upload(file);
  const msg = await client.send(room, "", { kind: "image", media });
  onMessage(msg, false);
}

async function newChat(who: string): Promise<void> {
  const q = who.trim();
  if (!q) return;
  const found = await api.json<{ users: { id: string; username: string | null; display_name: string }[] }>(
    `/users/search?q=${encodeURIComponent(q)}`,
  );
  const user = found.users.find((u) => u.username === q) ?? found.users[0];
  if (!user) {
    alert(`No user called ${q}`);
    return;
  }
  names.set(user.id, user.display_name || user.username || user.id);
  $<HTMLFormElement>("new-chat").reset();
  const { room } = await api.json<{ room: RoomSummary }>("/rooms", { kind: "direct", user_id: user.id });
  await loadRooms();
  const users = [user.id];
  void client.request({ t: "presence.get", d: { users } }).then((r) => {
    for (const s of r.d.users ?? []) online.set(s.user, s);
    renderPresence();
  });
  await openRoom(room.id);
}

async function newAi(): Promise<void> {
  const { conversation } = await api.json<{ conversation: { id: string; title: string } }>("/ai/conversations", {
    title: "AI conversation",
  });
  await loadRooms();
  if (!rooms.has(conversation.id)) {
    rooms.set(conversation.id, {
      id: conversation.id,
      kind: "ai",
      name: conversation.title,
      members: [{ user_id: me.id }],
      unread: 0,
      last_seq: 0,
      last_message: null,
    });
  }
  await openRoom(conversation.id);
}

// Surface failures that escaped a handler instead of failing silently.
window.addEventListener("unhandledrejection", (ev) => {
  const e = ev.reason as unknown;
  if (e instanceof ApiError || e instanceof Error) console.warn("realtime app:", e.message);
});
