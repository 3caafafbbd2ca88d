// The REST side: sign-in, rooms, history, media, AI conversations.
// The tokens live in sessionStorage: one signed-in user per tab, so two tabs
// of one browser can be two people (and a reload keeps the session).

export interface User {
  readonly id: string;
  readonly username: string | null;
  readonly display_name: string;
}

export interface Session {
  user: User;
  access: string;
  refresh: string;
}

export class ApiError extends Error {
  constructor(
    readonly status: number,
    readonly code: string,
    message: string,
  ) {
    super(message);
  }
}

const KEY = "rt.session";

export function loadSession(): Session | null {
  const raw = sessionStorage.getItem(KEY);
  return raw ? (JSON.parse(raw) as Session) : null;
}

export function saveSession(s: Session | null): void {
  if (s) sessionStorage.setItem(KEY, JSON.stringify(s));
  else sessionStorage.removeItem(KEY);
}

interface AuthBody {
  user: User;
  access_token: string;
  refresh_token: string;
}

async function raw(path: string, init: RequestInit = {}): Promise<Response> {
  return fetch(path, init);
}

async function failure(r: Response): Promise<ApiError> {
  try {
    const body = (await r.json()) as { error?: { code?: string; message?: string } };
    return new ApiError(r.status, body.error?.code ?? "internal", body.error?.message ?? r.statusText);
  } catch {
    return new ApiError(r.status, "internal", r.statusText);
  }
}

export async function authenticate(mode: "login" | "register", fields: Record<string, string>): Promise<Session> {
  const body =
    mode === "login"
      ? { login: fields.username, password: fields.password, device: "web" }
      : { username: fields.username, email: fields.email, password: fields.password, device: "web" };
  const r = await raw(`/auth/${mode}`, {
    method: "POST",
    headers: { "content-type": "application/json" },
    body: JSON.stringify(body),
  });
  if (!r.ok) throw await failure(r);
  const auth = (await r.json()) as AuthBody;
  const s = { user: auth.user, access: auth.access_token, refresh: auth.refresh_token };
  saveSession(s);
  return s;
}

export class Api {
  constructor(public session: Session) {}

  /** A fresh access token from the refresh token (rotated: keep the new one). */
  async refresh(): Promise<string> {
    const r = await raw("/auth/refresh", {
      method: "POST",
      headers: { "content-type": "application/json" },
      body: JSON.stringify({ refresh_token: this.session.refresh }),
    });
    if (!r.ok) throw await failure(r);
    const auth = (await r.json()) as AuthBody;
    this.session = { user: this.session.user, access: auth.access_token, refresh: auth.refresh_token };
    saveSession(this.session);
    return this.session.access;
  }

  async call(path: string, init: RequestInit = {}, retried = false): Promise<Response> {
    const headers = new Headers(init.headers);
    headers.set("authorization", `Bearer ${this.session.access}`);
    const r = await raw(path, { ...init, headers });
    if (r.status === 401 && !retried) {
      const err = await failure(r.clone());
      if (err.code === "token_expired") {
        await this.refresh();
        return this.call(path, init, true);
      }
    }
    if (!r.ok) throw await failure(r);
    return r;
  }

  async json<T>(path: string, body?: unknown, method?: string): Promise<T> {
    const init: RequestInit =
      body === undefined
        ? { method: method ?? "GET" }
        : { method: method ?? "POST", headers: { "content-type": "application/json" }, body: JSON.stringify(body) };
    const r = await this.call(path, init);
    return (r.status === 204 ? {} : await r.json()) as T;
  }

  async blobUrl(path: string): Promise<string> {
    const r = await this.call(path);
    return URL.createObjectURL(await r.blob());
  }

  async upload(file: File): Promise<string> {
    const form = new FormData();
    form.append("file", file);
    const r = await this.call("/media", { method: "POST", body: form });
    return ((await r.json()) as { media: { id: string } }).media.id;
  }
}
