// One lead: its flow state (stage, planned steps in the lead's time zone, pause, meeting), the flow
// preview (every send the flows would make, and what moved it), the full timeline, pause/resume
// (Temporal updates through the API) and the Temporal Web UI link.
import {
  api,
  ApiError,
  byId,
  clearError,
  context,
  dashboardPath,
  dateTimeOf,
  definitions,
  emptyRow,
  enc,
  h,
  jsonBlock,
  label,
  pathParts,
  reloadOnChange,
  showError,
  table,
  temporalLink,
  yesNo,
} from './common.js';

const { document, crypto } = globalThis;

const [tenant = '', , leadId = ''] = pathParts();
let ctx;
let lead;
let busy = false;

byId('back').setAttribute('href', dashboardPath(tenant));
byId('lead-id').textContent = leadId;
document.title = `Lead ${leadId} · Switchboard`;

const zoneOf = () => lead?.timeZone ?? ctx?.timeZone;
const local = (iso) => dateTimeOf(iso, zoneOf());
const closedStages = ['won', 'lost', 'opted_out'];

function renderLead(view, workflowId) {
  lead = view;
  const zone = zoneOf();
  const badge = byId('stage-badge');
  badge.textContent = label(view.stage);
  badge.className = `badge stage-${view.stage}`;
  if (workflowId) byId('temporal').replaceChildren(temporalLink(ctx, workflowId));

  const profile = view.profile ?? {};
  byId('state').replaceChildren(
    definitions(
      [
        ['Stage', h('span', { testid: 'lead-stage', data: { value: view.stage }, text: label(view.stage) }), 'stage'],
        ['Paused', h('span', { testid: 'lead-paused', data: { value: view.paused }, text: yesNo(view.paused) }), 'paused'],
        ['Opted out', yesNo(view.optedOut), 'optedOut'],
        ['Time zone', h('span', { testid: 'lead-time-zone', text: view.timeZone }), 'timeZone'],
        ['Name', profile.name ?? null, 'name'],
        ['Phone', profile.phone ?? null, 'phone'],
        ['E-mail', profile.email ?? undefined, 'email'],
        ['Language', profile.language ?? undefined, 'language'],
        ['Country', profile.country ?? undefined, 'country'],
        ['Team', profile.team ?? undefined, 'team'],
        ['Owner', profile.owner ?? undefined, 'owner'],
        ['Written from', h('span', { testid: 'lead-sender', data: { value: view.sender ?? '' }, text: view.sender ?? 'not chosen yet' }), 'sender'],
        ['Next action', view.paused ? 'paused' : local(view.nextActionAt), 'nextActionAt'],
        ['Last message from the lead', local(view.lastInboundAt), 'lastInboundAt'],
        ['Last message sent', local(view.lastSentAt), 'lastSentAt'],
        ['Held in the reorder buffer', view.bufferedEvents ? `${view.bufferedEvents} event(s) until ${local(view.bufferReleaseAt)}` : undefined, 'buffered'],
      ],
      'lead-state',
    ),
  );

  const meeting = view.meeting;
  byId('meeting').replaceChildren(
    meeting
      ? definitions(
          [
            ['Meeting', meeting.id, 'meetingId'],
            ['Status', h('span', { className: `badge state-${meeting.status}`, text: label(meeting.status) }), 'meetingStatus'],
            ['Starts', local(meeting.startsAt), 'startsAt'],
            ['Ends', meeting.endsAt ? local(meeting.endsAt) : undefined, 'endsAt'],
          ],
          'lead-meeting',
        )
      : h('p', { className: 'muted', text: 'No meeting booked.' }),
  );

  byId('planned-zone').textContent = `(times in ${zone})`;
  const planned = view.planned.map((step) =>
    h(
      'tr',
      { testid: 'planned-step', data: { key: step.key, flow: step.flow, step: step.step } },
      h('td', { className: 'num', text: local(step.dueAt) }),
      h('td', { text: label(step.flow) }),
      h('td', { text: step.step }),
      h('td', { text: step.cause }),
      h('td', {}, h('code', { className: 'wrap', text: step.key })),
    ),
  );
  byId('planned').replaceChildren(
    table(['Due', 'Flow', 'Step', 'Cause', 'Key'], planned.length > 0 ? planned : [emptyRow(5, view.paused ? 'Paused: nothing will be sent.' : 'Nothing planned.')], { testid: 'planned-steps' }),
  );
  byId('done').replaceChildren(
    h('h3', { text: 'Done' }),
    view.doneSteps.length > 0 ? h('ul', { className: 'chips', testid: 'done-steps' }, view.doneSteps.map((key) => h('li', {}, h('code', { text: key })))) : h('p', { className: 'muted', text: 'No steps done yet.' }),
  );

  const closed = closedStages.includes(view.stage);
  byId('pause').disabled = busy || view.paused || closed;
  byId('resume').disabled = busy || !view.paused || closed;
}

function detailText(detail) {
  const entries = Object.entries(detail ?? {});
  if (entries.length === 0) return null;
  return h('details', {}, h('summary', { text: entries.map(([key, value]) => `${key}: ${typeof value === 'object' ? JSON.stringify(value) : String(value)}`).join(', ').slice(0, 80) }), jsonBlock(detail));
}

function renderTimeline(entries) {
  byId('timeline-zone').textContent = `(times in ${zoneOf()})`;
  const rows = entries.map((entry) =>
    h(
      'tr',
      { testid: 'timeline-entry', data: { kind: entry.kind, entryKey: entry.entryKey } },
      h('td', { className: 'num', text: local(entry.at) }),
      h('td', {}, h('span', { className: `badge kind-${entry.kind}`, text: label(entry.kind) })),
      h('td', { text: entry.flow ? `${label(entry.flow)}${entry.step ? ` / ${entry.step}` : ''}` : '—' }),
      h('td', { text: entry.cause }),
      h('td', {}, detailText(entry.detail)),
    ),
  );
  byId('timeline').replaceChildren(table(['Time', 'Kind', 'Flow / step', 'Cause', 'Detail'], rows.length > 0 ? rows : [emptyRow(5, 'No entries yet.')], { testid: 'lead-timeline' }));
}

const guardLabels = { send_window: 'quiet hours / day off', recipient_spacing: 'spacing', outside_24h_window: 'template (24 h window)' };

/** The message and its language; a fallback names the lead's language it stands in for. */
function messageText(send) {
  const chosen = send.language;
  const language = chosen ? `${chosen.language}${chosen.requested ? `, no ${chosen.requested} version` : ''}` : send.message.type === 'template' ? send.message.template.language : '';
  return send.message.type === 'template' ? `template ${send.message.template.name} (${language})` : `free text${language ? ` (${language})` : ''}`;
}

function renderPreview(preview) {
  byId('preview-zone').textContent = `(times in ${zoneOf()})`;
  const sends = preview.sends.map((send) =>
    h(
      'tr',
      { testid: 'preview-send', data: { key: send.key } },
      h('td', { className: 'num', text: local(send.at) }),
      h('td', { text: `${label(send.flow)} / ${send.step}` }),
      h('td', { text: messageText(send) }),
      h('td', { testid: 'preview-channel', text: send.channel === 'sms' ? 'SMS' : send.sender ? `WhatsApp · ${send.sender.name}${send.sender.rule === 'kept' ? '' : ` (by ${send.sender.rule})`}` : 'WhatsApp' }),
      h('td', {}, send.guards.length > 0 ? h('ul', { className: 'chips' }, send.guards.map((guard) => h('li', { title: guard.detail, text: guardLabels[guard.guard] ?? guard.guard }))) : '—'),
      h('td', { text: send.cause }),
    ),
  );
  const skips = preview.skips.map((skip) =>
    h('tr', { testid: 'preview-skip', data: { key: skip.key } }, h('td', { className: 'num', text: local(skip.at) }), h('td', { text: `${label(skip.flow)} / ${skip.step}` }), h('td', { text: `skipped: ${label(skip.reason)}` }), h('td', { text: '—' }), h('td', { text: '—' }), h('td', { text: skip.cause })),
  );
  const rows = [...sends, ...skips];
  byId('preview').replaceChildren(table(['When', 'Flow / step', 'Message', 'Channel · from', 'Moved or shaped by', 'Why'], rows.length > 0 ? rows : [emptyRow(6, preview.paused ? 'Paused: nothing will be sent until the lead is resumed.' : 'Nothing would be sent in the next 30 days.')], { testid: 'lead-preview' }));
  byId('preview-assumptions').textContent = `Assuming ${preview.assumptions.join('; ')}${preview.truncated ? '. More is planned after these 30 days.' : '.'}`;
}

async function load() {
  try {
    ctx ??= await context(tenant);
    const [current, history, preview] = await Promise.all([api(tenant, `leads/${enc(leadId)}`), api(tenant, `leads/${enc(leadId)}/timeline`), api(tenant, `leads/${enc(leadId)}/preview?days=30`)]);
    renderLead(current.lead, current.workflowId);
    renderPreview(preview.preview);
    renderTimeline(history.timeline);
    byId('content').setAttribute('aria-busy', 'false');
    clearError();
  } catch (error) {
    showError(error.status === 404 ? `No lead ${leadId}.` : `Could not load the lead: ${error.message}`);
  }
}

function idempotencyKey() {
  return crypto?.randomUUID ? crypto.randomUUID() : `${Date.now()}-${Math.random().toString(36).slice(2)}`;
}

async function act(action) {
  const errorBox = byId('action-error');
  const statusBox = byId('action-status');
  errorBox.hidden = true;
  statusBox.hidden = true;
  busy = true;
  byId('pause').disabled = true;
  byId('resume').disabled = true;
  try {
    const result = await api(tenant, `leads/${enc(leadId)}/actions`, {
      method: 'POST',
      headers: { 'content-type': 'application/json', 'idempotency-key': idempotencyKey() },
      // The operator is the signed-in session's; a body naming one is refused.
      body: JSON.stringify({ action }),
    });
    busy = false;
    renderLead(result.lead);
    statusBox.textContent = action === 'pause' ? 'Paused: no messages go out until resumed.' : 'Resumed.';
    statusBox.hidden = false;
    const history = await api(tenant, `leads/${enc(leadId)}/timeline`);
    renderTimeline(history.timeline);
  } catch (error) {
    busy = false;
    const message = error instanceof ApiError ? error.body?.message ?? error.message : String(error);
    errorBox.textContent = error.status === 422 ? `Rejected: ${message}` : `Could not ${action} the lead: ${message}`;
    errorBox.dataset.status = String(error.status ?? '');
    errorBox.hidden = false;
    if (lead) renderLead(lead);
  }
}

byId('pause').addEventListener('click', () => void act('pause'));
byId('resume').addEventListener('click', () => void act('resume'));

reloadOnChange(tenant, 'lead', leadId, load);
void load();
