// The API client of the console. It holds the access and refresh tokens of
// the signed-in user in this tab's sessionStorage (never a cookie: the
// server ignores cookies, so no other origin can make the browser send a
// credential), sends them as bearer tokens, and on a 401 refreshes once and
// retries; when the refresh is refused too (logged out elsewhere, password
// changed, account disabled or deleted) the session ends and the console
// returns to the sign-in page.

const STORAGE_KEY = 'gpt2d.session';

// ApiError is a non-2xx answer: status and the server's detail.
export class ApiError extends Error {
  constructor(status, detail, headers) {
    super(describe(detail) || ('HTTP ' + status));
    this.status = status;
    this.detail = detail;
    this.headers = headers;
  }
}

// describe turns a "detail" (a string, FastAPI's list of field errors, or
// OpenAI's error object) into one line of text.
export function describe(detail) {
  if (detail === undefined || detail === null) return '';
  if (typeof detail === 'string') return detail;
  if (Array.isArray(detail)) {
    return detail.map((e) => {
      const loc = Array.isArray(e.loc) ? e.loc.filter((p) => p !== 'body' && p !== 'query').join('.') : '';
      return (loc ? loc + ': ' : '') + (e.msg || JSON.stringify(e));
    }).join('; ');
  }
  if (detail.message) return String(detail.message);
  return JSON.stringify(detail);
}

// errorFrom reads the error body of resp.
export async function errorFrom(resp) {
  let detail = resp.statusText;
  try {
    const body = await resp.json();
    detail = body.detail !== undefined ? body.detail : (body.error || body);
  } catch (_) { /* not JSON */ }
  const e = new ApiError(resp.status, detail, resp.headers);
  const retry = resp.headers.get('Retry-After');
  if (retry && (resp.status === 429 || resp.status === 503)) e.message += ' (retry in ' + retry + ' s)';
  return e;
}

function load() {
  try {
    const t = JSON.parse(sessionStorage.getItem(STORAGE_KEY) || 'null');
    return t && t.access && t.refresh ? t : null;
  } catch (_) {
    return null;
  }
}

// Client is the console's one connection to the API.
export class Client {
  constructor() {
    this.tokens = load();
    this.refreshing = null;
    // onEnd is called with a reason when the session ends by itself.
    this.onEnd = () => {};
  }

  get signedIn() { return this.tokens !== null; }

  save(body) {
    this.tokens = {access: body.access_token, refresh: body.refresh_token};
    sessionStorage.setItem(STORAGE_KEY, JSON.stringify(this.tokens));
  }

  forget() {
    this.tokens = null;
    sessionStorage.removeItem(STORAGE_KEY);
  }

  // end forgets the tokens and tells the page why.
  end(reason) {
    if (!this.tokens) return;
    this.forget();
    this.onEnd(reason);
  }

  // login is the OAuth2 password flow of POST /token.
  async login(username, password) {
    const resp = await fetch('/token', this.init({
      method: 'POST',
      body: new URLSearchParams({grant_type: 'password', username, password}),
    }));
    if (!resp.ok) throw await errorFrom(resp);
    this.save(await resp.json());
  }

  // register creates an account (POST /users, anonymous).
  async register(username, password) {
    const resp = await fetch('/users', this.init({method: 'POST', json: {username, password}}));
    if (!resp.ok) throw await errorFrom(resp);
    return resp.json();
  }

  // logout revokes every token of the user on the server, then forgets
  // them here whatever the answer.
  async logout() {
    try {
      await this.request('/logout', {method: 'POST'});
    } finally {
      this.forget();
    }
  }

  // refresh trades the refresh token for new tokens. Concurrent callers
  // share one exchange: a refresh token is single-use, and presenting a
  // used one revokes the whole family.
  refresh() {
    if (!this.refreshing) {
      const token = this.tokens && this.tokens.refresh;
      this.refreshing = (async () => {
        if (!token) return false;
        const resp = await fetch('/token/refresh', this.init({method: 'POST', body: new URLSearchParams({refresh_token: token})}));
        if (!resp.ok) return false;
        this.save(await resp.json());
        return true;
      })().finally(() => { this.refreshing = null; });
    }
    return this.refreshing;
  }

  // init builds fetch options: no cookies, no cache, no referrer, the JSON
  // body if any, and the bearer token when signed in.
  init(opts) {
    const headers = new Headers(opts.headers || {});
    let body = opts.body;
    if (opts.json !== undefined) {
      headers.set('Content-Type', 'application/json');
      body = JSON.stringify(opts.json);
    }
    if (opts.auth && this.tokens) headers.set('Authorization', 'Bearer ' + this.tokens.access);
    return {
      method: opts.method || 'GET', headers, body, signal: opts.signal,
      credentials: 'omit', cache: 'no-store', redirect: 'error', referrerPolicy: 'no-referrer',
    };
  }

  // request sends an authenticated request and returns the Response of
  // any status but 401. On a 401 it refreshes the tokens once and retries;
  // when that fails the session ends and request throws.
  async request(path, opts) {
    opts = Object.assign({}, opts || {}, {auth: true});
    if (!this.tokens) throw new ApiError(401, 'Not signed in');
    const sent = this.tokens.access;
    let resp = await fetch(path, this.init(opts));
    if (resp.status !== 401) return resp;
    // Another request may have refreshed meanwhile.
    const fresh = (this.tokens && this.tokens.access !== sent) || await this.refresh();
    if (fresh) {
      resp = await fetch(path, this.init(opts));
      if (resp.status !== 401) return resp;
    }
    const err = await errorFrom(resp);
    this.end('Your session has ended (signed out, password changed, or account disabled). Sign in again.');
    throw err;
  }

  // json sends a request and returns its decoded JSON body, or throws an
  // ApiError.
  async json(method, path, body) {
    const resp = await this.request(path, {method, json: body});
    if (!resp.ok) throw await errorFrom(resp);
    return resp.json();
  }
}
