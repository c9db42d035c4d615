// Calling the functions: POST {functions_url}/<name> with the user's token (or the anon key).

export class ApiError extends Error {
  constructor(message, { status, code, details } = {}) {
    super(message);
    this.status = status;
    this.code = code;
    this.details = details || {};
  }

  /** The server's per-field messages: {field: message}, from details.errors. */
  fieldErrors() {
    const out = {};
    for (const err of this.details.errors || []) {
      if (err && err.field && !(err.field in out)) out[err.field] = err.msg;
    }
    return out;
  }
}

export class Api {
  constructor(config, auth) {
    this.url = config.functions_url.replace(/\/$/, "");
    this.anonKey = config.anon_key;
    this.auth = auth;
  }

  async call(name, body, { retried = false } = {}) {
    const token = (await this.auth.accessToken()) || this.anonKey;
    let response;
    try {
      response = await fetch(`${this.url}/${name}`, {
        method: "POST",
        headers: { apikey: this.anonKey, authorization: `Bearer ${token}`, "content-type": "application/json" },
        body: JSON.stringify(body),
        credentials: "omit",
        cache: "no-store",
      });
    } catch {
      throw new ApiError(`${name} cannot be reached`, { status: 0, code: "unreachable" });
    }
    let parsed = null;
    try {
      parsed = await response.json();
    } catch {
      parsed = null;
    }
    if (response.ok) return parsed;
    if (response.status === 401 && this.auth.session && !retried) {
      // The token expired in between: refresh once and try again, else the session is over.
      try {
        await this.auth.refresh();
        return this.call(name, body, { retried: true });
      } catch {
        await this.auth.signOut();
      }
    }
    const error = (parsed && parsed.error) || {};
    const message = error.message || (parsed && parsed.msg) || `${name} answered HTTP ${response.status}`;
    throw new ApiError(message, { status: response.status, code: error.code, details: error.details });
  }
}
