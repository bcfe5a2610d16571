// The browser side of weft's /api/v1 routes. When the server requires an API
// token, the first call answered 401 asks for it (one dialog, however many calls
// were refused), keeps it in this tab's sessionStorage and sends it as
// Authorization: Bearer on every call after.

const TOKEN_KEY = 'weft.apiToken';

// APIError is a refused call: status is the HTTP status, code weft's errorCode.
export class APIError extends Error {
  constructor(status, code, message) {
    super(message || `HTTP ${status}`);
    this.status = status;
    this.code = code || '';
  }
}

export function token() {
  return sessionStorage.getItem(TOKEN_KEY) || '';
}

export function forgetToken() {
  sessionStorage.removeItem(TOKEN_KEY);
  tokenChanged();
}

let asking = null; // the token dialog's promise, shared by concurrent 401s

function tokenChanged() {
  const btn = document.getElementById('forget-token');
  if (btn) btn.hidden = !token();
}

// askToken shows the token dialog and resolves once a token was entered.
function askToken(refused) {
  if (asking) return asking;
  asking = new Promise((resolve) => {
    const dlg = document.getElementById('token-dialog');
    const form = document.getElementById('token-form');
    const input = document.getElementById('token-input');
    document.getElementById('token-error').hidden = !refused;
    input.value = '';
    const onSubmit = (ev) => {
      ev.preventDefault();
      const v = input.value.trim();
      if (!v) return;
      sessionStorage.setItem(TOKEN_KEY, v);
      tokenChanged();
      form.removeEventListener('submit', onSubmit);
      dlg.removeEventListener('cancel', onCancel);
      dlg.close();
      asking = null;
      resolve();
    };
    const onCancel = (ev) => ev.preventDefault(); // nothing works without the token
    form.addEventListener('submit', onSubmit);
    dlg.addEventListener('cancel', onCancel);
    dlg.showModal();
    input.focus();
  });
  return asking;
}

// call sends one API request and returns {status, data} (data parsed from JSON).
// body: undefined for none, a string sent as it is (already JSON), or a value to
// encode. It throws APIError for answers ≥ 400.
export async function call(method, path, body, extraHeaders) {
  for (;;) {
    const headers = {Accept: 'application/json', ...extraHeaders};
    const tok = token();
    if (tok) headers.Authorization = `Bearer ${tok}`;
    const init = {method, headers, cache: 'no-store'};
    if (body !== undefined) {
      headers['Content-Type'] = 'application/json';
      init.body = typeof body === 'string' ? body : JSON.stringify(body);
    }
    const resp = await fetch(path, init);
    if (resp.status === 401) {
      if (tok) sessionStorage.removeItem(TOKEN_KEY);
      await askToken(Boolean(tok));
      continue;
    }
    const text = await resp.text();
    let data = null;
    if (text) {
      try {
        data = JSON.parse(text);
      } catch {
        data = text;
      }
    }
    if (!resp.ok) {
      const obj = data && typeof data === 'object' ? data : {};
      throw new APIError(resp.status, obj.errorCode, obj.message || (typeof data === 'string' ? data.trim() : ''));
    }
    return {status: resp.status, data};
  }
}

const enc = encodeURIComponent;

export const get = async (path) => (await call('GET', path)).data;

export const api = {
  workflows: () => get('/api/v1/workflows'),
  counts: () => get('/api/v1/counts'),
  list: (params) => get(`/api/v1/instances?${new URLSearchParams(params)}`),
  status: (id) => get(`/api/v1/instances/${enc(id)}`),
  history: (id) => get(`/api/v1/instances/${enc(id)}/history`),
  // key, when given, makes the same event sent again harmless (the instance applies it once).
  raise: (id, name, data, key) => call('POST', `/api/v1/instances/${enc(id)}/events/${enc(name)}`, data || undefined,
    key ? {'Idempotency-Key': key} : undefined),
  terminate: (id, reason, recursive) =>
    call('POST', `/api/v1/instances/${enc(id)}/terminate`, {reason: reason || undefined, recursive}),
  suspend: (id, reason) => call('POST', `/api/v1/instances/${enc(id)}/suspend`, {reason: reason || undefined}),
  resume: (id, reason) => call('POST', `/api/v1/instances/${enc(id)}/resume`, {reason: reason || undefined}),
  purge: (id, recursive) => call('DELETE', `/api/v1/instances/${enc(id)}?recursive=${recursive ? 'true' : 'false'}`),
  rerun: async (id, body) => (await call('POST', `/api/v1/instances/${enc(id)}/rerun`, body)).data,
  schedules: () => get('/api/v1/schedules'),
  createSchedule: async (spec) => (await call('POST', '/api/v1/schedules', spec)).data,
  scheduleCommand: async (id, command, note) => (await call('POST', `/api/v1/schedules/${enc(id)}/${command}`, {note: note || undefined})).data,
  triggerSchedule: async (id) => (await call('POST', `/api/v1/schedules/${enc(id)}/trigger`)).data,
  deleteSchedule: (id) => call('DELETE', `/api/v1/schedules/${enc(id)}`),
  clusterMembers: () => get('/api/v1/cluster/members'),
  clusterPartitions: () => get('/api/v1/cluster/partitions'),
};

export function initToken() {
  tokenChanged();
  const btn = document.getElementById('forget-token');
  btn?.addEventListener('click', () => {
    forgetToken();
    location.reload();
  });
}
