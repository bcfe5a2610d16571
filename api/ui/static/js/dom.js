// DOM building and formatting helpers shared by the pages. Everything is built
// with createElement and textContent, never innerHTML, so payloads shown on a page
// cannot inject markup.

const SVG_NS = 'http://www.w3.org/2000/svg';

// h creates an element: h('a', {href: '#/', class: 'x', onclick: fn}, 'text', child, ...).
// Attributes with value null, undefined or false are left out; "on..." attributes
// attach listeners; "dataset" sets data-* attributes.
export function h(tag, attrs, ...children) {
  return fill(document.createElement(tag), attrs, children);
}

// s creates an SVG element, like h.
export function s(tag, attrs, ...children) {
  return fill(document.createElementNS(SVG_NS, tag), attrs, children);
}

function fill(el, attrs, children) {
  for (const [k, v] of Object.entries(attrs || {})) {
    if (v === null || v === undefined || v === false) continue;
    if (k.startsWith('on') && typeof v === 'function') {
      el.addEventListener(k.slice(2), v);
    } else if (k === 'dataset') {
      for (const [dk, dv] of Object.entries(v)) if (dv !== undefined && dv !== null) el.dataset[dk] = String(dv);
    } else if (k === 'style') {
      for (const [sk, sv] of Object.entries(v)) el.style.setProperty(sk, sv);
    } else {
      el.setAttribute(k, v === true ? '' : String(v));
    }
  }
  append(el, children);
  return el;
}

function append(el, children) {
  for (const c of children) {
    if (c === null || c === undefined || c === false) continue;
    if (Array.isArray(c)) append(el, c);
    else el.append(c instanceof Node ? c : document.createTextNode(String(c)));
  }
}

// clear empties an element and appends children (skipping null, undefined, false).
export function clear(el, ...children) {
  el.replaceChildren();
  append(el, children);
  return el;
}

// parseTime turns an API timestamp into milliseconds since the epoch (NaN if absent).
export function parseTime(t) {
  return t ? Date.parse(t) : NaN;
}

const pad = (n, w = 2) => String(n).padStart(w, '0');

// fmtTime is a local date and time to the second: 2026-01-02 15:04:05.
export function fmtTime(t) {
  const ms = typeof t === 'number' ? t : parseTime(t);
  if (!Number.isFinite(ms)) return '—';
  const d = new Date(ms);
  return `${d.getFullYear()}-${pad(d.getMonth() + 1)}-${pad(d.getDate())} ${pad(d.getHours())}:${pad(d.getMinutes())}:${pad(d.getSeconds())}`;
}

// fmtClock is a local time of day to the millisecond: 15:04:05.000 (as `weft history` prints it).
export function fmtClock(t) {
  const ms = typeof t === 'number' ? t : parseTime(t);
  if (!Number.isFinite(ms)) return '—';
  const d = new Date(ms);
  return `${pad(d.getHours())}:${pad(d.getMinutes())}:${pad(d.getSeconds())}.${pad(d.getMilliseconds(), 3)}`;
}

// fmtClockUTC is fmtClock in UTC, as `weft history` prints times.
export function fmtClockUTC(t) {
  const ms = typeof t === 'number' ? t : parseTime(t);
  if (!Number.isFinite(ms)) return '—';
  const d = new Date(ms);
  return `${pad(d.getUTCHours())}:${pad(d.getUTCMinutes())}:${pad(d.getUTCSeconds())}.${pad(d.getUTCMilliseconds(), 3)}`;
}

// fmtDuration is a compact duration: 850µs, 12ms, 1.52s, 4m05s, 3h04m, 2d03h.
export function fmtDuration(ms) {
  if (!Number.isFinite(ms)) return '—';
  if (ms <= 0) return '0s';
  if (ms < 1) return `${Math.round(ms * 1000)}µs`;
  if (ms < 10) return `${ms.toFixed(1).replace(/\.0$/, '')}ms`;
  if (ms < 1000) return `${Math.round(ms)}ms`;
  const sec = ms / 1000;
  if (sec < 10) return `${sec.toFixed(2)}s`;
  if (sec < 60) return `${sec.toFixed(1)}s`;
  const min = Math.floor(sec / 60);
  if (min < 60) return `${min}m${pad(Math.floor(sec % 60))}s`;
  const hr = Math.floor(min / 60);
  if (hr < 24) return `${hr}h${pad(min % 60)}m`;
  return `${Math.floor(hr / 24)}d${pad(hr % 24)}h`;
}

// fmtAgo is "5s ago", "3m ago" or "in 2h" relative to now.
export function fmtAgo(t, now = Date.now()) {
  const ms = typeof t === 'number' ? t : parseTime(t);
  if (!Number.isFinite(ms)) return '';
  const d = now - ms;
  return d >= 0 ? `${fmtDuration(d)} ago` : `in ${fmtDuration(-d)}`;
}

// pretty formats a JSON payload for a <pre>.
export function pretty(v) {
  if (v === undefined) return '';
  try {
    return JSON.stringify(v, null, 2);
  } catch {
    return String(v);
  }
}

// short is a payload on one line, cut to n characters.
export function short(v, n = 60) {
  if (v === undefined || v === null) return '';
  const str = typeof v === 'string' ? v : JSON.stringify(v);
  return str.length > n ? `${str.slice(0, n)}…` : str;
}

// STATUSES are the runtime statuses in the order the UI shows them.
export const STATUSES = ['RUNNING', 'PENDING', 'SUSPENDED', 'STALLED', 'COMPLETED', 'FAILED', 'TERMINATED'];

export function isFinished(status) {
  return status === 'COMPLETED' || status === 'FAILED' || status === 'TERMINATED';
}

// badge is a status label coloured by status.
export function badge(status, attrs = {}) {
  return h('span', {class: `badge st-${(status || 'unknown').toLowerCase()}`, ...attrs}, status || 'UNKNOWN');
}

// instanceHref links an instance's page.
export function instanceHref(id) {
  return `#/instances/${encodeURIComponent(id)}`;
}

// poller runs fn now and then every interval ms after each run finishes, skipping
// runs while the tab is hidden; now() runs it at once (after the run in progress),
// stop() ends it.
export function poller(fn, interval) {
  let timer = null;
  let running = false;
  let again = false;
  let stopped = false;
  const tick = async () => {
    timer = null;
    if (stopped) return;
    running = true;
    if (!document.hidden) {
      try {
        await fn();
      } catch (err) {
        console.warn('refresh failed', err);
      }
    }
    running = false;
    if (stopped) return;
    if (again) {
      again = false;
      tick();
    } else {
      timer = setTimeout(tick, interval);
    }
  };
  tick();
  return {
    stop() {
      stopped = true;
      if (timer) clearTimeout(timer);
    },
    now() {
      if (stopped) return;
      if (running) {
        again = true;
        return;
      }
      if (timer) clearTimeout(timer);
      tick();
    },
  };
}
