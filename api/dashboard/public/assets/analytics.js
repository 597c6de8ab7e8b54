// The analytics page: outcome tables per flow and step, template, hour and weekday, and four
// uPlot charts (calls per hour against last week, service level and handle time, sends and
// replies, the funnel). Both are re-read whenever the live stream pushes a snapshot, so they move
// with the data. Figures only: no lead, phone or message here.
import { api, byId, clearError, context, dashboardPath, followStream, h, label, pathParts, percent, showConnection, showError, table, emptyRow, timeOf } from './common.js';

const { document, uPlot } = globalThis;
const [tenant = ''] = pathParts();
const hoursAxis = Array.from({ length: 24 }, (_, hour) => hour);
const weekdayNames = ['', 'Mon', 'Tue', 'Wed', 'Thu', 'Fri', 'Sat', 'Sun'];
const funnelStages = ['sent', 'delivered', 'read', 'replied', 'booked', 'attended'];
const colours = { today: '#4cc2ff', lastWeek: '#7d8b99', level: '#3ddc97', handle: '#ffb454', sends: '#4cc2ff', replies: '#3ddc97', funnel: '#b48cff' };
const axisStyle = { stroke: '#9fb0c0', grid: { stroke: '#263444' }, ticks: { stroke: '#263444' } };

let timeZone;
const charts = new Map();

const bars = uPlot.paths.bars({ size: [0.7, 60] });

/** One chart per container, created once and fed new data afterwards; the container carries its figures for tests and scripts. */
function draw(id, options, data, figures) {
  const node = byId(id);
  Object.assign(node.dataset, figures);
  const existing = charts.get(id);
  if (existing) {
    existing.setData(data);
    return;
  }
  const width = Math.max(280, node.clientWidth || 480);
  charts.set(id, new uPlot({ width, height: 220, ...options }, data, node));
}

const hourScale = { x: { time: false, range: [-0.5, 23.5] } };
const hourAxis = { ...axisStyle, values: (_, ticks) => ticks.map((tick) => `${tick}h`) };
const sum = (values) => values.reduce((total, value) => total + (value ?? 0), 0);

function renderCharts(data) {
  byId('calls-chart-dates').textContent = `${data.date} against ${data.lastWeekDate} (${data.timeZone})`;
  draw(
    'chart-calls',
    { scales: hourScale, axes: [hourAxis, axisStyle], series: [{}, { label: 'Today', stroke: colours.today, fill: `${colours.today}55`, paths: bars }, { label: 'Same weekday last week', stroke: colours.lastWeek, width: 2 }] },
    [hoursAxis, data.callsPerHour.today, data.callsPerHour.lastWeek],
    { today: String(sum(data.callsPerHour.today)), lastWeek: String(sum(data.callsPerHour.lastWeek)) },
  );
  draw(
    'chart-service',
    {
      scales: { ...hourScale, pct: { range: [0, 100] }, sec: { auto: true } },
      axes: [hourAxis, { ...axisStyle, scale: 'pct', values: (_, ticks) => ticks.map((tick) => `${tick}%`) }, { ...axisStyle, scale: 'sec', side: 1, grid: { show: false } }],
      series: [{}, { label: `Service level (≤ ${data.serviceLevel.thresholdSeconds} s)`, scale: 'pct', stroke: colours.level, width: 2, spanGaps: true, points: { show: true } }, { label: 'Avg handle time (s)', scale: 'sec', stroke: colours.handle, width: 2, spanGaps: true, points: { show: true } }],
    },
    [hoursAxis, data.serviceLevel.percent, data.averageHandleSeconds],
    { hours: String(data.serviceLevel.percent.filter((value) => value !== null).length) },
  );
  draw(
    'chart-messages',
    { scales: hourScale, axes: [hourAxis, axisStyle], series: [{}, { label: 'Sends', stroke: colours.sends, fill: `${colours.sends}55`, paths: bars }, { label: 'Replies', stroke: colours.replies, width: 2, points: { show: true } }] },
    [hoursAxis, data.sendsPerHour, data.repliesPerHour],
    { sends: String(sum(data.sendsPerHour)), replies: String(sum(data.repliesPerHour)) },
  );
  byId('funnel-dates').textContent = `${data.funnelFrom} to ${data.date}`;
  draw(
    'chart-funnel',
    {
      scales: { x: { time: false, range: [-0.5, funnelStages.length - 0.5] } },
      axes: [{ ...axisStyle, values: (_, ticks) => ticks.map((tick) => label(funnelStages[tick] ?? '')) }, axisStyle],
      series: [{}, { label: 'Sends', stroke: colours.funnel, fill: `${colours.funnel}88`, paths: bars }],
    },
    [funnelStages.map((_, index) => index), funnelStages.map((stage) => data.funnel[stage])],
    Object.fromEntries(funnelStages.map((stage) => [stage, String(data.funnel[stage])])),
  );
}

const rate = (value) => (value === null ? '—' : percent(value * 100));
const duration = (seconds) => (seconds === null ? '—' : seconds < 120 ? `${seconds} s` : seconds < 3600 ? `${Math.round(seconds / 60)} min` : `${(seconds / 3600).toFixed(1)} h`);
const countHeaders = ['Sent', 'Delivered', 'Read', 'Replied', 'Booked', 'Attended', 'Opted out', 'Failed', 'Reply rate', 'Booking rate', 'Median to reply'];
const countCells = (row) => [row.sent, row.delivered, row.read, row.replied, row.booked, row.attended, row.optedOut, row.failed].map((value) => h('td', { className: 'num', text: String(value) })).concat(
  [rate(row.replyRate), rate(row.bookingRate), duration(row.medianSecondsToReply)].map((text) => h('td', { className: 'num', text })),
);

function outcomeTable(container, heading, rows, name, key) {
  const body = rows.map((row) => h('tr', { testid: `${container}-row`, data: { key: String(key(row)), sent: row.sent, replied: row.replied, booked: row.booked } }, h('th', { scope: 'row', text: name(row) }), ...countCells(row)));
  byId(container).replaceChildren(table([heading, ...countHeaders], body.length > 0 ? body : [emptyRow(countHeaders.length + 1, 'No sends in this period')]));
}

function renderOutcomes(data) {
  byId('outcome-dates').textContent = `${data.from} to ${data.to}, on each lead's clock`;
  outcomeTable('outcome-steps', 'Flow · step', data.steps, (row) => `${label(row.flow)} · ${label(row.step)}`, (row) => `${row.flow}/${row.step}`);
  outcomeTable('outcome-templates', 'Template', data.byTemplate, (row) => row.template ?? 'free text', (row) => row.template ?? '');
  outcomeTable('outcome-hours', 'Hour', data.byHour, (row) => `${String(row.hour).padStart(2, '0')}:00`, (row) => row.hour);
  outcomeTable('outcome-weekdays', 'Weekday', data.byWeekday, (row) => weekdayNames[row.weekday] ?? String(row.weekday), (row) => row.weekday);
  outcomeTable('outcome-channels', 'Channel', data.byChannel, (row) => (row.channel === 'sms' ? 'SMS' : 'WhatsApp'), (row) => row.channel);
  outcomeTable('outcome-senders', 'Sender number', data.bySender, (row) => row.sender ?? 'not recorded', (row) => row.sender ?? '');
  outcomeTable('outcome-languages', 'Language', data.byLanguage, (row) => row.language ?? 'not recorded', (row) => row.language ?? '');
}

let loading = false;
let again = false;
/** Reads both at once; a push while a read is in flight reads once more after it. */
async function load() {
  if (loading) {
    again = true;
    return;
  }
  loading = true;
  try {
    const [chartData, outcomes] = await Promise.all([api(tenant, 'analytics/charts'), api(tenant, 'analytics/outcomes')]);
    renderCharts(chartData);
    renderOutcomes(outcomes);
    const updated = byId('last-update');
    updated.textContent = timeOf(chartData.generatedAt, timeZone);
    updated.dataset.at = chartData.generatedAt;
    clearError();
  } catch (error) {
    showError(`Could not load the analytics: ${error.message}`);
  } finally {
    loading = false;
    if (again) {
      again = false;
      void load();
    }
  }
}

async function start() {
  byId('back-link').setAttribute('href', dashboardPath(tenant));
  try {
    const ctx = await context(tenant);
    timeZone = ctx.timeZone;
    byId('tenant-name').textContent = ctx.displayName ?? ctx.tenant;
    document.title = `Analytics · ${ctx.displayName ?? ctx.tenant} · Switchboard`;
  } catch (error) {
    showError(`Could not load the analytics: ${error.message}`);
  }
  await load();
  // The dashboard's live feed: every snapshot it pushes (after journal writes, and after a reconnect) re-reads the figures.
  followStream(tenant, { onSnapshot: () => void load(), onState: showConnection });
}

void start();
