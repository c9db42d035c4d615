// A small client of Supabase Auth (GoTrue): sign up, sign in, refresh, sign out.
// The session lives in memory and in sessionStorage (this tab only), never in a URL. The access
// token is refreshed a minute before it expires, and again on demand when a call finds it stale.

const STORAGE_KEY = "aitradex.session";
const REFRESH_MARGIN_S = 60;

export class AuthError extends Error {
  constructor(message, { status, code } = {}) {
    super(message);
    this.status = status;
    this.code = code;
  }
}

/** GoTrue's error body ({code, error_code, msg}, or the older {error, error_description}) in words. */
export function authMessage(body, status) {
  if (body && typeof body === "object") {
    const text = body.msg || body.error_description || body.message || body.error;
    if (typeof text === "string" && text) return text;
  }
  return `the sign-in service answered HTTP ${status}`;
}

export class Auth {
  constructor(config) {
    this.url = config.auth_url.replace(/\/$/, "");
    this.anonKey = config.anon_key;
    this.session = null;
    this.listeners = new Set();
    this.timer = null;
    this.refreshing = null;
    this._load();
  }

  onChange(listener) {
    this.listeners.add(listener);
    return () => this.listeners.delete(listener);
  }

  get user() {
    return this.session ? this.session.user : null;
  }

  async _request(path, { method = "POST", body, token } = {}) {
    let response;
    try {
      response = await fetch(`${this.url}${path}`, {
        method,
        headers: {
          apikey: this.anonKey,
          authorization: `Bearer ${token || this.anonKey}`,
          "content-type": "application/json",
        },
        body: body === undefined ? undefined : JSON.stringify(body),
        credentials: "omit",
        cache: "no-store",
      });
    } catch (error) {
      throw new AuthError("the sign-in service cannot be reached");
    }
    const text = await response.text();
    let parsed = null;
    try {
      parsed = text ? JSON.parse(text) : null;
    } catch {
      parsed = null;
    }
    if (!response.ok) {
      throw new AuthError(authMessage(parsed, response.status), {
        status: response.status,
        code: parsed && (parsed.error_code || parsed.error),
      });
    }
    return parsed;
  }

  async signUp(email, password) {
    const body = await this._request("/signup", { body: { email, password } });
    // With email confirmation off (local: auto-confirm) the answer is a session; otherwise a user.
    if (body && body.access_token) return this._store(body);
    return this.signIn(email, password);
  }

  async signIn(email, password) {
    return this._store(await this._request("/token?grant_type=password", { body: { email, password } }));
  }

  async refresh() {
    if (!this.session) return null;
    if (!this.refreshing) {
      const refreshToken = this.session.refresh_token;
      this.refreshing = this._request("/token?grant_type=refresh_token", { body: { refresh_token: refreshToken } })
        .then((body) => this._store(body))
        .catch((error) => {
          // A refresh token that was revoked or reused ends the session, as GoTrue decides.
          if (error.status && error.status < 500) this._clear();
          throw error;
        })
        .finally(() => {
          this.refreshing = null;
        });
    }
    return this.refreshing;
  }

  async signOut() {
    const token = this.session && this.session.access_token;
    this._clear();
    if (token) {
      try {
        await this._request("/logout", { token });
      } catch {
        // Signed out here either way; the server's session ends with its tokens' expiry.
      }
    }
  }

  /** The access token to send now: refreshed first if it is about to expire; null when signed out. */
  async accessToken() {
    if (!this.session) return null;
    if (this._expiresIn() < REFRESH_MARGIN_S / 2) {
      try {
        await this.refresh();
      } catch {
        return this.session ? this.session.access_token : null;
      }
    }
    return this.session ? this.session.access_token : null;
  }

  _expiresIn() {
    if (!this.session || !this.session.expires_at) return Infinity;
    return this.session.expires_at - Date.now() / 1000;
  }

  _store(body) {
    if (!body || !body.access_token || !body.refresh_token) throw new AuthError("the sign-in service sent no session");
    const expiresAt = body.expires_at || Math.floor(Date.now() / 1000) + Number(body.expires_in || 3600);
    this.session = {
      access_token: body.access_token,
      refresh_token: body.refresh_token,
      expires_at: expiresAt,
      user: body.user || (this.session && this.session.user) || null,
    };
    try {
      sessionStorage.setItem(STORAGE_KEY, JSON.stringify(this.session));
    } catch {
      // Storage refused (private mode): the session stays in memory for this page.
    }
    this._schedule();
    this._emit();
    return this.session;
  }

  _clear() {
    this.session = null;
    clearTimeout(this.timer);
    try {
      sessionStorage.removeItem(STORAGE_KEY);
    } catch {
      // nothing stored
    }
    this._emit();
  }

  _load() {
    try {
      const raw = sessionStorage.getItem(STORAGE_KEY);
      const stored = raw ? JSON.parse(raw) : null;
      if (stored && stored.access_token && stored.refresh_token) {
        this.session = stored;
        this._schedule();
      }
    } catch {
      this.session = null;
    }
  }

  _schedule() {
    clearTimeout(this.timer);
    if (!this.session) return;
    const delayS = Math.max(1, this._expiresIn() - REFRESH_MARGIN_S);
    this.timer = setTimeout(() => this.refresh().catch(() => {}), Math.min(delayS, 86_400) * 1000);
  }

  _emit() {
    for (const listener of this.listeners) listener(this.session);
  }
}
