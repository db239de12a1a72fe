// The console reads the public API, as Connect JSON over fetch: the same calls any client
// makes, with the same scopes. Connect JSON leaves out zero values, so an absent number is 0
// where the field is not optional.

const TOKEN_KEY = 'powerplane-token';

/**
 * The bearer token, kept for this tab only (sessionStorage). One given in the URL fragment
 * (`/#token=…`, which browsers never send to the server) is taken from there and removed
 * from the address bar at once, so it is not left in the history or a screenshot.
 */
export const tokenStore = {
  takeFromFragment() {
    const token = new URLSearchParams(location.hash.slice(1)).get('token');
    if (!token) return;
    sessionStorage.setItem(TOKEN_KEY, token.trim());
    history.replaceState(null, '', location.pathname + location.search);
  },
  get: () => sessionStorage.getItem(TOKEN_KEY) || '',
  set: (token) => sessionStorage.setItem(TOKEN_KEY, token.trim()),
  clear: () => sessionStorage.removeItem(TOKEN_KEY),
};

/** A call the server answered with an error: `code` is the Connect code (`unauthenticated`, …). */
export class RpcError extends Error {
  constructor(method, code, message) {
    super(`${method}: ${message}`);
    this.method = method;
    this.code = code;
    this.detail = message;
  }
}

const CALL_TIMEOUT_MS = 15_000;

/** Calls `service`.`method` with `body` and returns the decoded answer; throws {@link RpcError}. */
export async function call(service, method, body) {
  const token = tokenStore.get();
  let res;
  try {
    res = await fetch(`/powerplane.v1.${service}/${method}`, {
      method: 'POST',
      headers: { 'content-type': 'application/json', ...(token ? { authorization: `Bearer ${token}` } : {}) },
      body: JSON.stringify(body),
      signal: AbortSignal.timeout(CALL_TIMEOUT_MS),
    });
  } catch (err) {
    throw new RpcError(method, 'unavailable', `cannot reach the control plane (${err.message})`);
  }
  const json = await res.json().catch(() => ({}));
  if (!res.ok) throw new RpcError(method, json.code || `http_${res.status}`, json.message || res.statusText || String(res.status));
  return json;
}

/** Calls `ask(chunk)` for each chunk of at most `size` ids, one call after another, and concatenates `pick(answer)`. */
export async function inChunks(ids, size, ask, pick) {
  const out = [];
  for (let i = 0; i < ids.length; i += size) out.push(...(pick(await ask(ids.slice(i, i + size))) || []));
  return out;
}

/** Every page of a list call: `pick(answer)` is the page's items; at most `maxPages` pages. */
export async function allPages(ask, pick, maxPages = 50) {
  const out = [];
  let pageToken = '';
  for (let page = 0; page < maxPages; page++) {
    const res = await ask(pageToken);
    out.push(...(pick(res) || []));
    pageToken = res.nextPageToken || '';
    if (!pageToken) break;
  }
  return out;
}
