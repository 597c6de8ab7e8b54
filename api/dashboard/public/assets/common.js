// Shared helpers for the dashboard pages: safe DOM building (text only, never HTML), JSON over the
// session cookie, formatting in the tenant's time zone, masked phone numbers, the live stream.
// Browser globals come from globalThis so the module lints without a browser environment.
const { document, location, fetch, EventSource, setTimeout, URLSearchParams } = globalThis;

/**
 * Builds an element. `props`: className, text, testid, data (dataset), attrs (setAttribute),
 * on (event listeners), plus a few properties (href, type, title…) set as attributes. Children
 * may be nodes, strings (inserted as text) or null/undefined/false (skipped).
 */
export function h(tag, props = {}, ...children) {
  const node = document.createElement(tag);
  for (const [key, value] of Object.entries(props ?? {})) {
    if (value === undefined || value === null || value === false) continue;
    if (key === 'className') node.className = value;
    else if (key === 'text') node.textContent = String(value);
    else if (key === 'testid') node.dataset.testid = value;
    else if (key === 'data') for (const [name, item] of Object.entries(value)) node.dataset[name] = String(item);
    else if (key === 'attrs') for (const [name, item] of Object.entries(value)) node.setAttribute(name, String(item));
    else if (key === 'on') for (const [name, handler] of Object.entries(value)) node.addEventListener(name, handler);
    else if (key === 'href') node.setAttribute('href', safeHref(value));
    else node.setAttribute(key, value === true ? '' : String(value));
  }
  append(node, children);
  return node;
}

function append(node, children) {
  for (const child of children.flat(Infinity)) {
    if (child === undefined || child === null || child === false) continue;
    node.append(typeof child === 'string' || typeof child === 'number' ? String(child) : child);
  }
}

/** Only same-origin paths and http(s) URLs become links. */
export function safeHref(value) {
  const text = String(value);
  if (text.startsWith('/') && !text.startsWith('//')) return text;
  try {
    const url = new globalThis.URL(text);
    return url.protocol === 'http:' || url.protocol === 'https:' ? text : '#';
  } catch {
    return '#';
  }
}

/** Sets the text of every element with this data-testid (inside `root`). */
export function setText(testid, text, value, root = document) {
  for (const node of root.querySelectorAll(`[data-testid="${testid}"]`)) {
    node.textContent = text;
    if (value === undefined) delete node.dataset.value;
    else node.dataset.value = value === null ? 'null' : String(value);
  }
}

export const byId = (id) => document.getElementById(id);

/** /dashboard/{tenant}/… → decoded path segments after /dashboard. */
export function pathParts() {
  return location.pathname
    .split('/')
    .filter(Boolean)
    .slice(1)
    .map((part) => decodeURIComponent(part));
}

export const enc = encodeURIComponent;
export const dashboardPath = (tenant) => `/dashboard/${enc(tenant)}`;
export const callPath = (tenant, callId) => `/dashboard/${enc(tenant)}/calls/${enc(callId)}`;
export const leadPath = (tenant, leadId) => `/dashboard/${enc(tenant)}/leads/${enc(leadId)}`;
export const apiPath = (tenant, rest) => `/api/${enc(tenant)}/${rest}`;

export class ApiError extends Error {
  constructor(status, body) {
    super(body?.message ?? `HTTP ${status}`);
    this.status = status;
    this.body = body;
  }
}

/** Signed-out (or expired) sessions go back to the sign-in page. */
export function toSignIn(tenant, error = 'expired') {
  location.assign(`/dashboard?tenant=${enc(tenant)}&error=${enc(error)}`);
}

export async function api(tenant, rest, init = {}) {
  const response = await fetch(apiPath(tenant, rest), {
    credentials: 'same-origin',
    ...init,
    headers: { accept: 'application/json', ...(init.headers ?? {}) },
  });
  let body;
  try {
    body = await response.json();
  } catch {
    body = undefined;
  }
  if (response.status === 401) {
    toSignIn(tenant);
    throw new ApiError(response.status, body);
  }
  if (response.status === 403) {
    toSignIn(tenant, 'forbidden');
    throw new ApiError(response.status, body);
  }
  if (!response.ok) throw new ApiError(response.status, body);
  return body;
}

export const context = (tenant) => api(tenant, 'dashboard/context');

/** The workflow in the Temporal Web UI (undefined when the UI address is not a web URL). */
export function temporalUrl(ctx, workflowId) {
  if (!ctx?.temporal?.webUiUrl || !workflowId) return undefined;
  const href = `${ctx.temporal.webUiUrl.replace(/\/$/, '')}/namespaces/${enc(ctx.temporal.namespace)}/workflows/${enc(workflowId)}`;
  return safeHref(href) === '#' ? undefined : href;
}

/** ITU country calling codes that are 1 or 2 digits long (the rest are 3). */
const oneDigit = new Set(['1', '7']);
const twoDigit = new Set([
  '20', '27', '30', '31', '32', '33', '34', '36', '39', '40', '41', '43', '44', '45', '46', '47', '48', '49',
  '51', '52', '53', '54', '55', '56', '57', '58', '60', '61', '62', '63', '64', '65', '66', '81', '82', '84',
  '86', '90', '91', '92', '93', '94', '95', '98',
]);

/** +14155550142 → "+1•••42"; anything else keeps only its last two digits. */
export function maskPhone(phone) {
  if (!phone) return 'withheld';
  const digits = String(phone).replace(/\D/g, '');
  if (digits.length < 4) return '•••';
  const tail = digits.slice(-2);
  if (!String(phone).startsWith('+')) return `•••${tail}`;
  const code = oneDigit.has(digits.slice(0, 1)) ? digits.slice(0, 1) : twoDigit.has(digits.slice(0, 2)) ? digits.slice(0, 2) : digits.slice(0, 3);
  return `+${code}•••${tail}`;
}

/** 75 → "1:15", 3725 → "1:02:05". */
export function clock(seconds) {
  if (seconds === null || seconds === undefined || !Number.isFinite(seconds)) return '—';
  const total = Math.max(0, Math.floor(seconds));
  const hours = Math.floor(total / 3600);
  const minutes = Math.floor((total % 3600) / 60);
  const secs = String(total % 60).padStart(2, '0');
  return hours > 0 ? `${hours}:${String(minutes).padStart(2, '0')}:${secs}` : `${minutes}:${secs}`;
}

/** 95 → "01:35" (minutes may exceed 59). */
export function mmss(seconds) {
  if (seconds === null || seconds === undefined || !Number.isFinite(seconds)) return '—';
  const total = Math.max(0, Math.round(seconds));
  return `${String(Math.floor(total / 60)).padStart(2, '0')}:${String(total % 60).padStart(2, '0')}`;
}

export const percent = (value) => (value === null || value === undefined ? '—' : `${Number(value).toFixed(1).replace(/\.0$/, '')}%`);

const formatters = new Map();
function formatter(timeZone, options) {
  const key = `${timeZone}|${JSON.stringify(options)}`;
  let format = formatters.get(key);
  if (!format) {
    try {
      format = new Intl.DateTimeFormat(undefined, { ...options, ...(timeZone ? { timeZone } : {}) });
    } catch {
      format = new Intl.DateTimeFormat(undefined, options);
    }
    formatters.set(key, format);
  }
  return format;
}

/** Time of day (HH:MM:SS) in the given zone. */
export function timeOf(iso, timeZone) {
  if (!iso) return '—';
  return formatter(timeZone, { hour: '2-digit', minute: '2-digit', second: '2-digit', hourCycle: 'h23' }).format(new Date(iso));
}

/** Date and time with the zone's abbreviation. */
export function dateTimeOf(iso, timeZone) {
  if (!iso) return '—';
  const date = new Date(iso);
  if (Number.isNaN(date.getTime())) return String(iso);
  return formatter(timeZone, { year: 'numeric', month: 'short', day: '2-digit', hour: '2-digit', minute: '2-digit', second: '2-digit', hourCycle: 'h23', timeZoneName: 'short' }).format(date);
}

export const label = (value) => (value === null || value === undefined || value === '' ? '—' : String(value).replace(/_/g, ' '));
export const yesNo = (value) => (value === true ? 'yes' : value === false ? 'no' : '—');

/** A definition list from [term, value, field?] rows; values may be nodes or text. */
export function definitions(rows, testid) {
  return h(
    'dl',
    { className: 'facts', testid },
    rows
      .filter((row) => row && row[1] !== undefined)
      .map(([term, value, field]) => [h('dt', { text: term }), h('dd', { data: field ? { field } : {} }, value === null || value === '' ? '—' : value)]),
  );
}

/** A table: headers, rows of cells (nodes or text), optional row props. */
export function table(headers, rows, props = {}) {
  return h(
    'table',
    { className: 'table', ...props },
    h('thead', {}, h('tr', {}, headers.map((header) => h('th', { scope: 'col', text: header })))),
    h('tbody', {}, rows),
  );
}

export function emptyRow(columns, text) {
  return h('tr', { className: 'empty' }, h('td', { colspan: columns, text }));
}

export function jsonBlock(value) {
  return h('pre', { className: 'json', text: JSON.stringify(value, null, 2) });
}

/** The link to the Temporal Web UI, or a note that it is not configured. */
export function temporalLink(ctx, workflowId) {
  const href = temporalUrl(ctx, workflowId);
  if (!href) return h('span', { className: 'muted', text: 'Temporal Web UI not configured' });
  return h('a', { href, testid: 'temporal-link', target: '_blank', rel: 'noopener noreferrer', className: 'button' }, 'Open in Temporal Web UI ↗');
}

/**
 * Follows the tenant's live stream. `onState('live' | 'reconnecting' | 'offline')`; `onSnapshot`,
 * `onChange` and `onBacklog` (the ingest backlog, sent when it changed) receive parsed data.
 * EventSource reconnects by itself (Last-Event-ID catch-up); when the server refuses the stream
 * (session gone) it is closed for good, so this checks the session and opens a new one later.
 */
export function followStream(tenant, { onSnapshot, onChange, onBacklog, onState }) {
  let source;
  const open = () => {
    source = new EventSource(apiPath(tenant, 'dashboard/stream'));
    onState?.('connecting');
    source.addEventListener('open', () => onState?.('live'));
    source.addEventListener('error', () => {
      if (source.readyState === EventSource.CONNECTING) {
        onState?.('reconnecting');
        return;
      }
      onState?.('offline');
      source.close();
      // A refused stream: find out why (the session may have expired), then try again.
      context(tenant).then(
        () => setTimeout(open, 3_000),
        () => setTimeout(open, 5_000),
      );
    });
    if (onSnapshot) source.addEventListener('snapshot', (event) => onSnapshot(JSON.parse(event.data), event.lastEventId));
    if (onChange) source.addEventListener('change', (event) => onChange(JSON.parse(event.data), event.lastEventId));
    if (onBacklog) source.addEventListener('backlog', (event) => onBacklog(JSON.parse(event.data)));
  };
  open();
  return { close: () => source?.close() };
}

const connectionLabels = { live: 'Live', connecting: 'Connecting…', reconnecting: 'Reconnecting…', offline: 'Offline' };

/** The page's live/reconnecting/offline indicator (element #connection). */
export function showConnection(state) {
  const indicator = byId('connection');
  indicator.dataset.state = state;
  indicator.querySelector('.connection-label').textContent = connectionLabels[state] ?? state;
}

/** A detail page: reloads (at most every 300 ms) when the stream reports a change to its item. */
export function reloadOnChange(tenant, kind, id, load) {
  let reloadTimer;
  return followStream(tenant, {
    onChange(change) {
      if (change.kind !== kind || change.id !== id || reloadTimer !== undefined) return;
      reloadTimer = setTimeout(() => {
        reloadTimer = undefined;
        void load();
      }, 300);
    },
    onState: showConnection,
  });
}

/** Wall mode: ?wall=1 (bigger type for a wall screen); kept in the page's links. */
export function wallMode() {
  const wall = new URLSearchParams(location.search).get('wall') === '1';
  document.documentElement.classList.toggle('wall', wall);
  return wall;
}

/** Shows a failure in the page's status area. */
export function showError(message) {
  const box = byId('page-error');
  if (!box) return;
  box.hidden = false;
  box.textContent = message;
}

export function clearError() {
  const box = byId('page-error');
  if (box) box.hidden = true;
}
