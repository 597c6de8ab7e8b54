// One call: its journal row, events, enrichment, CRM links, outcome actions and recording, with a
// link to its workflow in the Temporal Web UI. Reloads when the stream reports a change to it.
import {
  api,
  apiPath,
  byId,
  clearError,
  clock,
  context,
  dashboardPath,
  dateTimeOf,
  definitions,
  emptyRow,
  enc,
  h,
  jsonBlock,
  label,
  leadPath,
  pathParts,
  reloadOnChange,
  showError,
  table,
  temporalLink,
  yesNo,
} from './common.js';

const { document } = globalThis;

const [tenant = '', , callId = ''] = pathParts();
let ctx;

byId('back').setAttribute('href', dashboardPath(tenant));
byId('call-id').textContent = callId;
document.title = `Call ${callId} · Switchboard`;

const when = (iso) => dateTimeOf(iso, ctx?.timeZone);
const seconds = (value) => (value === undefined || value === null ? null : `${clock(value)} (${value} s)`);
const state = (value) => (value ? h('span', { className: `badge state-${value}`, text: label(value) }) : null);

function journal(call) {
  const disposition =
    call.providerDisposition && call.providerDisposition !== call.disposition
      ? `${label(call.disposition)} (phone system: ${label(call.providerDisposition)})`
      : label(call.disposition);
  return definitions(
    [
      ['Call id', call.callId, 'callId'],
      ['Workflow id', call.workflowId, 'workflowId'],
      ['Status', state(call.status), 'status'],
      ['Provider', `${call.provider} · ${call.providerCallId}`, 'provider'],
      ['Direction', label(call.direction), 'direction'],
      ['Customer', call.customerPhone ?? 'withheld', 'customerPhone'],
      ['Line', call.linePhone ?? null, 'linePhone'],
      ['Agent', call.agentId ?? null, 'agentId'],
      ['Started', when(call.startedAt), 'startedAt'],
      ['Answered', when(call.answeredAt), 'answeredAt'],
      ['Ended', when(call.endedAt), 'endedAt'],
      ['Wait', seconds(call.waitSeconds), 'waitSeconds'],
      ['Duration', seconds(call.durationSeconds), 'durationSeconds'],
      ['Disposition', disposition, 'disposition'],
      ['End reason', call.endReason ? label(call.endReason) : null, 'endReason'],
      ['Completed', when(call.completedAt), 'completedAt'],
      ['Journal version', String(call.journal?.version ?? call.version), 'version'],
      ['Journal updated', when(call.journal?.updatedAt), 'updatedAt'],
    ],
    'call-journal',
  );
}

function recording(detail) {
  const call = detail.call;
  if (detail.recording) {
    const src = apiPath(tenant, `calls/${enc(callId)}/recording`);
    const kb = Math.max(1, Math.round(detail.recording.sizeBytes / 1024));
    return [
      h('audio', { controls: true, preload: 'metadata', src, testid: 'recording-player', className: 'player' }, 'Your browser cannot play this recording.'),
      h('p', { className: 'muted' }, `${detail.recording.contentType} · ${kb} KB · `, h('a', { href: src, download: '' }, 'Download')),
    ];
  }
  if (call.recording) {
    return definitions([
      ['Stored', yesNo(call.recording.stored)],
      ['Error', call.recording.error ?? undefined],
      ['Note', call.recording.stored ? undefined : 'Not stored yet: the recording is fetched from the phone system after the call.'],
    ]);
  }
  return h('p', { className: 'muted', text: 'No recording for this call.' });
}

function analytics(call) {
  const a = call.analytics ?? {};
  const r = call.result;
  const parts = [
    definitions(
      [
        ['Satisfaction', a.satisfaction === undefined ? null : `${a.satisfaction} / 5`, 'satisfaction'],
        ['Resolved', yesNo(a.resolved), 'resolved'],
        ['Sentiment', a.sentiment ? label(a.sentiment) : null, 'sentiment'],
        ['Issue type', a.issueType ?? null, 'issueType'],
        ['Transfer requested', yesNo(a.transferRequested), 'transferRequested'],
        ['Summary', a.summary ?? call.summary ?? null, 'summary'],
        ['Manager result', r ? label(r.outcome) : null, 'resultOutcome'],
        ['Comment', r?.comment ?? undefined, 'resultComment'],
        ['Submitted by', r?.submittedBy ?? undefined, 'resultSubmittedBy'],
        ['Result entity', r?.entity ? `${r.entity.type} #${r.entity.id}` : undefined, 'resultEntity'],
      ],
      'call-analytics',
    ),
  ];
  const metrics = Object.entries(a.metrics ?? {});
  if (metrics.length > 0) {
    parts.push(h('h3', { text: 'Metrics' }), table(['Metric', 'Value'], metrics.map(([name, value]) => h('tr', {}, h('td', { text: name }), h('td', { className: 'num', text: String(value) })))));
  }
  const variables = Object.entries(call.variables ?? {});
  if (variables.length > 0) {
    parts.push(h('h3', { text: 'Variables' }), table(['Name', 'Value'], variables.map(([name, value]) => h('tr', {}, h('td', { text: name }), h('td', { text: value === null ? '—' : String(value) })))));
  }
  return parts;
}

function enrichment(call) {
  const e = call.enrichment;
  const person = (item) => (item ? `#${item.id}${item.name ? ` · ${item.name}` : ''}${item.email ? ` · ${item.email}` : ''}` : null);
  const parts = [
    definitions(
      [
        ['State', state(call.enrichmentState), 'enrichmentState'],
        ['Contact', person(e?.contact), 'contact'],
        ['Account', person(e?.account), 'account'],
        ['Representative', person(e?.assignedRepresentative), 'assignedRepresentative'],
        ['VIP', e ? yesNo(e.vip) : null, 'vip'],
      ],
      'call-enrichment',
    ),
  ];
  const previous = e?.previousInteractions ?? [];
  if (previous.length > 0) {
    parts.push(
      h('h3', { text: 'Previous interactions' }),
      table(['When', 'Type', 'Summary'], previous.map((item) => h('tr', {}, h('td', { className: 'num', text: when(item.at) }), h('td', { text: label(item.type) }), h('td', { text: item.summary ?? '—' })))),
    );
  }
  return parts;
}

function crm(call) {
  const c = call.crm ?? {};
  return definitions(
    [
      ['Sync', state(call.crmSyncState), 'crmSyncState'],
      ['Entity', c.entity ? `${label(c.entity.type)} #${c.entity.id}` : null, 'entity'],
      ['Call note', c.noteId === undefined ? null : `#${c.noteId}`, 'noteId'],
      ['Incoming lead', c.incomingLeadId === undefined && !c.incomingLeadUid ? null : [c.incomingLeadId === undefined ? '' : `#${c.incomingLeadId}`, c.incomingLeadUid ? ` (${c.incomingLeadUid})` : ''].join(''), 'incomingLead'],
      ['Call-back task', c.callbackTaskId === undefined ? undefined : `#${c.callbackTaskId}`, 'callbackTaskId'],
      ['Lead flow', c.leadId ? h('a', { href: leadPath(tenant, c.leadId), testid: 'lead-link' }, c.leadId) : undefined, 'leadId'],
      ['Skipped', c.skippedReason ?? undefined, 'skippedReason'],
      ['Error', c.error ?? undefined, 'crmError'],
    ],
    'call-crm',
  );
}

function actions(call) {
  const a = call.actions ?? { slack: [] };
  const ticket = a.ticket;
  const email = a.email;
  const slack = a.slack ?? [];
  return [
    h('h3', { text: 'Ticket' }),
    ticket
      ? definitions(
          [
            ['State', state(ticket.state)],
            ['Ticket', ticket.id === undefined ? undefined : `#${ticket.id}`],
            ['Reason', ticket.reason ?? undefined],
            ['Error', ticket.error ?? undefined],
          ],
          'action-ticket',
        )
      : h('p', { className: 'muted', text: 'None.' }),
    h('h3', { text: 'Slack' }),
    slack.length > 0
      ? table(
          ['Trigger', 'State', 'Error'],
          slack.map((item) => h('tr', { testid: 'action-slack' }, h('td', { text: label(item.trigger) }), h('td', {}, state(item.state)), h('td', { text: item.error ?? '—' }))),
        )
      : h('p', { className: 'muted', text: 'None.' }),
    h('h3', { text: 'E-mail' }),
    email
      ? definitions(
          [
            ['Template', label(email.template)],
            ['State', state(email.state)],
            ['Reason', email.reason ?? undefined],
            ['Error', email.error ?? undefined],
          ],
          'action-email',
        )
      : h('p', { className: 'muted', text: 'None.' }),
  ];
}

function transcript(call) {
  const turns = call.transcript ?? [];
  byId('transcript-panel').hidden = turns.length === 0;
  return h(
    'ol',
    { className: 'transcript' },
    turns.map((turn) => h('li', { className: `turn speaker-${turn.speaker}` }, h('span', { className: 'speaker', text: turn.speaker }), h('span', { text: turn.text }))),
  );
}

function events(list) {
  const rows = list.map((event) =>
    h(
      'tr',
      { testid: 'call-event', data: { eventType: event.type, eventId: event.eventId } },
      h('td', { className: 'num', text: when(event.occurredAt) }),
      h('td', { className: 'num', text: when(event.recordedAt) }),
      h('td', {}, h('code', { text: event.type })),
      h('td', {}, h('code', { className: 'wrap', text: event.eventId })),
      h('td', {}, h('details', {}, h('summary', { text: 'payload' }), jsonBlock(event.payload))),
    ),
  );
  return table(['Occurred', 'Recorded', 'Type', 'Event id', ''], rows.length > 0 ? rows : [emptyRow(5, 'No events.')], { testid: 'call-events' });
}

async function load() {
  try {
    ctx ??= await context(tenant);
    const detail = await api(tenant, `calls/${enc(callId)}`);
    const call = detail.call;
    const status = byId('call-status');
    status.textContent = label(call.status);
    status.className = `badge state-${call.status}`;
    byId('temporal').replaceChildren(temporalLink(ctx, call.workflowId));
    byId('journal').replaceChildren(journal(call));
    // Keep the player (and its position) while the call is reloaded.
    const player = byId('recording').querySelector('audio');
    if (!(player && detail.recording)) byId('recording').replaceChildren(...[recording(detail)].flat());
    byId('analytics').replaceChildren(...analytics(call));
    byId('enrichment').replaceChildren(...enrichment(call));
    byId('crm').replaceChildren(crm(call));
    byId('actions').replaceChildren(...actions(call));
    byId('transcript').replaceChildren(transcript(call));
    byId('events').replaceChildren(events(detail.events));
    byId('content').setAttribute('aria-busy', 'false');
    clearError();
  } catch (error) {
    showError(error.status === 404 ? `No call ${callId} in the journal.` : `Could not load the call: ${error.message}`);
  }
}

reloadOnChange(tenant, 'call', callId, load);
void load();
