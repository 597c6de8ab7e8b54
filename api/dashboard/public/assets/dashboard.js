// The live supervisor dashboard: renders each DashboardSnapshot from the stream, ticks running
// durations every second, lists recent changes, says when ingestion is catching up. Phone numbers
// are always shown masked here.
import {
  byId,
  callPath,
  clearError,
  clock,
  context,
  api,
  followStream,
  h,
  label,
  leadPath,
  maskPhone,
  mmss,
  pathParts,
  percent,
  setText,
  showConnection,
  showError,
  timeOf,
  wallMode,
} from './common.js';

const { document, location, setInterval } = globalThis;

const [tenant = ''] = pathParts();
const stageOrder = ['new', 'contacted', 'engaged', 'booked', 'attended', 'no_show', 'won', 'lost', 'opted_out', 'dormant'];
const feedLength = 15;
/** The "catching up" banner shows once the oldest event waiting for Temporal is older than this. */
const catchingUpAfterSeconds = 5;

let timeZone;
/** Server clock minus browser clock, so durations tick from the server's point of view. */
let offsetMs = 0;
let latest;
/** The latest ingest backlog seen (snapshot or backlog event) and the server time it was read. */
let backlog;
const seenChanges = new Set();

const serverNow = () => Date.now() + offsetMs;
const secondsSince = (iso) => (serverNow() - Date.parse(iso)) / 1000;

const wall = wallMode();
const toggle = byId('wall-toggle');
toggle.setAttribute('href', wall ? location.pathname : '?wall=1');
toggle.textContent = wall ? 'Normal view' : 'Wall mode';
byId('analytics-link').setAttribute('href', `${location.pathname.replace(/\/$/, '')}/analytics`);

function ticking(testid, since) {
  return h('td', { className: 'num ticking', testid, data: { since } }, clock(secondsSince(since)));
}

function callerLink(call) {
  return h('a', { href: callPath(tenant, call.callId), title: call.callId }, maskPhone(call.customerPhone));
}

function activeRow(call) {
  return h(
    'tr',
    { testid: 'active-call', data: { callId: call.callId } },
    ticking('call-duration', call.answeredAt ?? call.startedAt),
    h('td', {}, callerLink(call)),
    h('td', { text: call.agentId ?? '—' }),
    h('td', { text: label(call.direction) }),
  );
}

function ringingRow(call) {
  return h(
    'tr',
    { testid: 'ringing-call', data: { callId: call.callId } },
    ticking('call-wait', call.startedAt),
    h('td', {}, callerLink(call)),
    h('td', { text: label(call.direction) }),
  );
}

function recentRow(call) {
  const disposition = call.disposition ?? 'unknown';
  return h(
    'tr',
    { testid: 'recent-call', data: { callId: call.callId, disposition } },
    h('td', { className: 'num', text: timeOf(call.endedAt ?? call.startedAt, timeZone) }),
    h('td', { text: maskPhone(call.customerPhone) }),
    h('td', { text: label(call.direction) }),
    h('td', { text: call.agentId ?? '—' }),
    h('td', {}, h('span', { className: `badge disposition-${disposition}`, text: label(disposition) })),
    h('td', { className: 'num', text: call.durationSeconds === null ? '—' : clock(call.durationSeconds) }),
    h('td', {}, h('a', { href: callPath(tenant, call.callId), testid: 'call-link' }, 'Details →')),
  );
}

function rows(container, items, render, emptyText, columns) {
  const list = items.map(render);
  if (list.length === 0) list.push(h('tr', { className: 'empty' }, h('td', { colspan: columns, text: emptyText })));
  container.replaceChildren(...list);
}

/** Every element with data-since shows the time elapsed since then; the longest wait too. */
function tick() {
  for (const node of document.querySelectorAll('[data-since]')) {
    const seconds = Math.max(0, Math.floor(secondsSince(node.dataset.since)));
    node.textContent = clock(seconds);
    node.dataset.value = String(seconds);
  }
  if (!latest) return;
  const ringing = latest.calls.ringing;
  const longest = ringing.length === 0 ? 0 : Math.max(0, Math.floor(Math.max(...ringing.map((call) => secondsSince(call.startedAt)))));
  setText('longest-wait', clock(longest), longest);
  byId('last-update').dataset.age = String(Math.round((serverNow() - Date.parse(latest.generatedAt)) / 1000));
  renderBacklog();
}

const plural = (count, word) => `${count} ${word}${count === 1 ? '' : 's'}`;

/** 40 → "40 s", 300 → "5 min", 5400 → "1 h 30 min". */
function age(seconds) {
  if (seconds < 120) return `${seconds} s`;
  if (seconds < 7200) return `${Math.floor(seconds / 60)} min`;
  return `${Math.floor(seconds / 3600)} h ${Math.floor((seconds % 3600) / 60)} min`;
}

/** Calls still to be logged in the CRM (paced under its rate limit, or retrying), and when they should be through. */
function renderCrmBacklog(crm) {
  const line = byId('crm-backlog');
  if (!crm) return;
  line.dataset.calls = String(crm.calls);
  line.hidden = !(crm.calls > 0);
  if (line.hidden) return;
  const eta = crm.expectedDrainSeconds === null ? 'no call logged in the last 10 minutes' : `about ${age(crm.expectedDrainSeconds)} to clear at ${crm.loggedPerMinute} a minute`;
  line.replaceChildren(h('strong', { text: 'CRM:' }), ` ${plural(crm.calls, 'call')} to log, oldest ended ${age(crm.oldestAgeSeconds)} ago`, h('span', { className: 'muted', text: ` · ${eta}` }));
}

/** Keeps the newest reading: a snapshot read before a backlog event may arrive after it. */
function applyBacklog(value, at) {
  if (!value || (backlog && at < backlog.at)) return;
  backlog = { value, at };
  renderBacklog();
}

function renderBacklog() {
  if (!backlog) return;
  const { pending, oldestAgeSeconds, deadLetters } = backlog.value;
  // Between readings the oldest waiting event only gets older (until it is forwarded), so it ticks.
  const oldest = pending > 0 ? Math.max(0, Math.floor(oldestAgeSeconds + secondsSince(backlog.at))) : 0;
  const banner = byId('ingest-backlog');
  Object.assign(banner.dataset, { pending: String(pending), age: String(oldest) });
  // Whole seconds, as shown: the banner never says "oldest 5 s".
  banner.hidden = !(oldest > catchingUpAfterSeconds);
  if (!banner.hidden) {
    banner.replaceChildren(
      h('strong', { text: 'Catching up:' }),
      ` ${plural(pending, 'event')} waiting, oldest ${age(oldest)}`,
      h('span', { className: 'muted', text: ' · received and stored; the figures follow as they are applied' }),
    );
  }
  const dead = byId('dead-letters');
  dead.dataset.value = String(deadLetters);
  dead.hidden = !(deadLetters > 0);
  if (!dead.hidden) dead.replaceChildren(`${plural(deadLetters, 'event')} in dead letter — see `, h('code', { text: 'npm run cli -- dead-letters' }));
}

function render(snapshot) {
  // The first fetch and the stream race; never go back to an older picture.
  if (latest && snapshot.generatedAt < latest.generatedAt) return;
  latest = snapshot;
  timeZone = snapshot.timeZone ?? timeZone;
  offsetMs = Date.parse(snapshot.generatedAt) - Date.now();
  const { calls, today, leads } = snapshot;

  setText('active-count', String(calls.active.length), calls.active.length);
  setText('ringing-count', String(calls.ringing.length), calls.ringing.length);
  rows(byId('active-calls'), calls.active, activeRow, 'No calls in progress', 4);
  rows(byId('ringing-calls'), calls.ringing, ringingRow, 'Nobody is waiting', 3);
  rows(byId('recent-calls'), calls.recent, recentRow, 'No completed calls yet', 7);

  setText('answered-today', String(today.answered), today.answered);
  setText('missed-today', String(today.missed), today.missed);
  setText('abandoned-today', String(today.abandoned), today.abandoned);
  setText('offered-today', String(today.offered), today.offered);
  setText('service-level', percent(today.serviceLevel.percent), today.serviceLevel.percent);
  setText('service-level-threshold', `answered ≤ ${today.serviceLevel.thresholdSeconds} s`, today.serviceLevel.thresholdSeconds);
  setText('aht', mmss(today.averageHandleSeconds), today.averageHandleSeconds);
  setText('resolution-rate', percent(today.resolutionRate), today.resolutionRate);
  setText('avg-satisfaction', today.averageSatisfaction === null ? '—' : today.averageSatisfaction.toFixed(2), today.averageSatisfaction);
  byId('today-since').textContent = `since ${timeOf(today.since, timeZone)} ${timeZone ?? ''}`;

  renderStages(leads.byStage);
  setText('due-next-hour', String(leads.dueNextHour), leads.dueNextHour);
  const replies = leads.recentReplies.map((reply) =>
    h(
      'li',
      { testid: 'recent-reply', data: { leadId: reply.leadId } },
      h('time', { className: 'num', datetime: reply.at, text: timeOf(reply.at, timeZone) }),
      ' ',
      h('a', { href: leadPath(tenant, reply.leadId) }, reply.leadId),
    ),
  );
  byId('recent-replies').replaceChildren(...(replies.length > 0 ? replies : [h('li', { className: 'empty', text: 'No replies yet' })]));

  const updated = byId('last-update');
  updated.textContent = timeOf(snapshot.generatedAt, timeZone);
  updated.setAttribute('datetime', snapshot.generatedAt);
  updated.dataset.at = snapshot.generatedAt;
  applyBacklog(snapshot.ingestBacklog, snapshot.generatedAt);
  renderCrmBacklog(snapshot.crmBacklog);
  tick();
}

function renderStages(byStage) {
  const names = [...stageOrder, ...Object.keys(byStage).filter((stage) => !stageOrder.includes(stage))];
  const total = Object.values(byStage).reduce((sum, count) => sum + count, 0);
  const items = names.map((stage) => {
    const count = byStage[stage] ?? 0;
    const bar = h('span', { className: 'bar' });
    bar.style.width = `${total > 0 ? Math.round((count / total) * 100) : 0}%`;
    return h(
      'li',
      { className: count === 0 ? 'stage zero' : 'stage' },
      h('span', { className: 'stage-name', text: label(stage) }),
      h('span', { className: 'stage-count num', testid: `leads-stage-${stage}`, data: { value: count } }, String(count)),
      h('span', { className: 'bar-track' }, bar),
    );
  });
  byId('lead-stages').replaceChildren(...items);
}

function onChange(change) {
  if (change.eventId && seenChanges.has(change.eventId)) return;
  if (change.eventId) seenChanges.add(change.eventId);
  const feed = byId('change-feed');
  // A call journals several versions in one status (enrichment, CRM, actions): one line, counted.
  const top = feed.firstElementChild;
  if (top && top.dataset.kind === change.kind && top.dataset.id === change.id && top.dataset.status === (change.status ?? '')) {
    const count = Number(top.dataset.count ?? '1') + 1;
    top.dataset.count = String(count);
    top.querySelector('time').textContent = timeOf(change.at, timeZone);
    top.querySelector('.repeat').textContent = ` ×${count}`;
    return;
  }
  const link = change.kind === 'call' ? callPath(tenant, change.id) : change.kind === 'lead' ? leadPath(tenant, change.id) : undefined;
  const item = h(
    'li',
    { testid: 'change', data: { kind: change.kind, id: change.id, status: change.status ?? '' } },
    h('time', { className: 'num', datetime: change.at, text: timeOf(change.at, timeZone) }),
    ' ',
    h('span', { className: `badge kind-${change.kind}`, text: change.kind }),
    ' ',
    link ? h('a', { href: link }, change.id) : h('span', { text: change.id }),
    ' → ',
    h('span', { className: 'status', text: label(change.status) }),
    h('span', { className: 'repeat muted' }),
  );
  feed.querySelector('.empty')?.remove();
  feed.prepend(item);
  while (feed.children.length > feedLength) feed.lastElementChild.remove();
}

async function start() {
  byId('change-feed').replaceChildren(h('li', { className: 'empty', text: 'Waiting for changes…' }));
  try {
    const ctx = await context(tenant);
    timeZone = ctx.timeZone;
    byId('tenant-name').textContent = ctx.displayName ?? ctx.tenant;
    document.title = `${ctx.displayName ?? ctx.tenant} · Switchboard`;
    render(await api(tenant, 'dashboard/snapshot'));
    clearError();
  } catch (error) {
    showError(`Could not load the dashboard: ${error.message}`);
  }
  followStream(tenant, { onSnapshot: render, onChange, onBacklog: (event) => applyBacklog(event.ingestBacklog, event.generatedAt), onState: showConnection });
  setInterval(tick, 1_000);
}

void start();
