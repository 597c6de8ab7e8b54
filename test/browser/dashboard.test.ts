/**
 * The supervisor dashboard in a real browser (Debian's Chromium, driven by playwright-core) against
 * a full deployment: sign-in, live figures pushed over Server-Sent Events while simulated calls
 * ring, are answered and end, the figures checked against the journal with SQL of our own, the
 * ingest backlog and dead-letter notices, the call and lead detail pages, and screenshots for the
 * record (test-results/dashboard.png and others).
 */
import assert from 'node:assert/strict';
import { mkdir } from 'node:fs/promises';
import { fileURLToPath } from 'node:url';
import { chromium } from 'playwright-core';
import type { Browser, BrowserContext, Page } from 'playwright-core';
import { pbxEvents, signedJsonRequest, voiceAiEvents } from '../../sandboxes/pbx-simulator.js';
import { switchboardSigningSecret } from '../../security/secrets.js';
import type { CallPlan, VoiceAiPlan } from '../../sandboxes/pbx-simulator.js';
import { deterministicWav } from '../../sandboxes/recordings.js';
import { leadStages } from '../../shared/leads.js';
import type { LeadState } from '../../shared/leads.js';
import { waitUntil } from '../../stack/processes.js';
import { startCallWorld } from '../harness/call-world.js';
import type { CallWorld } from '../harness/call-world.js';
import { inboxRowsOf, parkInboxRows } from '../harness/inbox.js';
import type { ParkedRows } from '../harness/inbox.js';
import { uniqueId } from '../harness/resources.js';

const chromiumPath = '/usr/bin/chromium';
const chromiumArgs = ['--headless', '--no-sandbox', '--disable-gpu', '--disable-quic', '--no-first-run', '--disable-background-networking', '--disable-component-update', '--disable-sync'];
const resultsDir = fileURLToPath(new URL('../../test-results/', import.meta.url));
const waitMs = 30_000;

/** What the page functions below may touch (they run in the browser, not here). */
interface BrowserGlobals {
  document: {
    querySelector(selector: string): { getAttribute(name: string): string | null; hidden?: boolean } | null;
  };
}

interface AttributeHolder {
  getAttribute(name: string): string | null;
}

interface ComputedStyles {
  getComputedStyle(element: unknown): { fontSize: string };
}

/** The figures the dashboard shows for today, computed here from the journal's rows. */
interface TodayFigures {
  answered: number;
  missed: number;
  abandoned: number;
  offered: number;
  serviceLevel: number | null;
  averageHandleSeconds: number | null;
  resolutionRate: number | null;
  averageSatisfaction: number | null;
}

const round = (value: number, digits: number): number => Math.round(value * 10 ** digits) / 10 ** digits;
const average = (values: number[]): number | null => (values.length === 0 ? null : values.reduce((sum, value) => sum + value, 0) / values.length);
const mmss = (seconds: number): string => `${String(Math.floor(seconds / 60)).padStart(2, '0')}:${String(seconds % 60).padStart(2, '0')}`;
const testid = (id: string): string => `[data-testid="${id}"]`;

/** An IANA zone whose local hour is closest to 12 at `now`. */
function zoneAtMidday(now: number): string {
  const zones = ['Pacific/Honolulu', 'America/Los_Angeles', 'America/Chicago', 'America/New_York', 'America/Sao_Paulo', 'Atlantic/Azores', 'Europe/London', 'Europe/Berlin', 'Europe/Athens', 'Asia/Dubai', 'Asia/Kolkata', 'Asia/Bangkok', 'Asia/Tokyo', 'Australia/Sydney', 'Pacific/Auckland'];
  const hourIn = (zone: string): number => Number(new Intl.DateTimeFormat('en-US', { timeZone: zone, hour: 'numeric', hourCycle: 'h23' }).format(new Date(now)));
  return zones.reduce((best, zone) => (Math.abs(hourIn(zone) - 12) < Math.abs(hourIn(best) - 12) ? zone : best));
}

describe('the supervisor dashboard in a browser', function () {
  this.timeout(180_000);
  let world: CallWorld;
  let browser: Browser;
  let context: BrowserContext;
  let page: Page;
  const pageErrors: string[] = [];
  const consoleErrors: string[] = [];

  const url = (path: string): string => `${world.api.baseUrl}${path}`;
  const dashboardPath = (): string => `/dashboard/${world.tenantId}`;

  /** Waits until the element shows this value (data-value), naming what it showed instead on failure. */
  async function figure(id: string, value: string | number | null, on: Page = page): Promise<void> {
    const expected = value === null ? 'null' : String(value);
    try {
      await on.locator(`${testid(id)}[data-value="${expected}"]`).first().waitFor({ timeout: waitMs });
    } catch (error) {
      const shown = await on.locator(testid(id)).first().getAttribute('data-value').catch(() => 'absent');
      throw new Error(`${id}: expected ${expected}, the page shows ${shown}`, { cause: error });
    }
  }

  async function post(provider: 'pbx' | 'voice-ai', event: unknown): Promise<void> {
    const response = await world.postSigned(provider, event);
    assert.equal(response.status, 202, await response.text());
  }

  async function postCrm(event: Record<string, unknown>): Promise<void> {
    const request = signedJsonRequest(switchboardSigningSecret(world.tenant.secrets, 'pbx'), event);
    const response = await fetch(url(`/webhooks/${world.tenantId}/crm`), { method: 'POST', headers: request.headers, body: request.body });
    assert.equal(response.status, 202, await response.text());
  }

  function callPlan(outcome: CallPlan['outcome'], phone: string, secondsAgo: number, ringSeconds: number, talkSeconds = 0): CallPlan {
    return {
      callId: uniqueId('dash'),
      direction: 'inbound',
      customerPhone: phone,
      linePhone: '+12025550100',
      agentId: 'agent-9',
      outcome,
      startedAt: new Date(Date.now() - secondsAgo * 1000),
      ringSeconds,
      talkSeconds,
    };
  }

  /** Today's figures from the calls table, in the tenant's time zone, with the dashboard's definitions. */
  async function todayFromJournal(): Promise<TodayFigures> {
    const { rows } = await world.db.query<{ direction: string | null; disposition: string | null; wait_seconds: number | null; duration_seconds: number | null; resolved: boolean | null; satisfaction: number | null }>(
      `SELECT direction, disposition, wait_seconds, duration_seconds, resolved, satisfaction FROM calls
        WHERE tenant_id = $1 AND status IN ('ended', 'completed') AND (started_at AT TIME ZONE $2)::date = (now() AT TIME ZONE $2)::date`,
      [world.tenantId, world.tenant.timeZone],
    );
    const threshold = world.tenant.dashboard.serviceLevelSeconds;
    const inbound = rows.filter((row) => row.direction === 'inbound');
    const answered = rows.filter((row) => row.disposition === 'answered');
    const within = inbound.filter((row) => row.disposition === 'answered' && row.wait_seconds !== null && row.wait_seconds <= threshold);
    const handle = average(answered.flatMap((row) => (row.duration_seconds === null ? [] : [row.duration_seconds])));
    const resolution = average(rows.flatMap((row) => (row.resolved === null ? [] : [row.resolved ? 1 : 0])));
    const satisfaction = average(rows.flatMap((row) => (row.satisfaction === null ? [] : [row.satisfaction])));
    return {
      answered: answered.length,
      missed: inbound.filter((row) => row.disposition === 'missed' || row.disposition === 'no_answer').length,
      abandoned: rows.filter((row) => row.disposition === 'abandoned').length,
      offered: inbound.length,
      serviceLevel: inbound.length === 0 ? null : round((within.length / inbound.length) * 100, 1),
      averageHandleSeconds: handle === null ? null : Math.round(handle),
      resolutionRate: resolution === null ? null : round(resolution * 100, 1),
      averageSatisfaction: satisfaction === null ? null : round(satisfaction, 2),
    };
  }

  before(async () => {
    world = await startCallWorld({ liveFeed: true });
    // "Today" is counted in the tenant's zone: pick one where it is now midday, so a run near
    // midnight cannot split the test's calls across two days.
    world.tenant.timeZone = zoneAtMidday(Date.now());
    browser = await chromium.launch({ executablePath: chromiumPath, args: chromiumArgs });
    // A fresh context is a fresh profile: no cookies, no cache.
    context = await browser.newContext({ viewport: { width: 1440, height: 1000 }, locale: 'en-US', timezoneId: 'Europe/Berlin' });
    page = await context.newPage();
    page.on('pageerror', (error) => pageErrors.push(error.message));
    page.on('console', (message) => {
      if (message.type() === 'error') consoleErrors.push(message.text());
    });
  });

  after(async () => {
    await context?.close();
    await browser?.close();
    await world?.stop();
  });

  afterEach(function () {
    if (this.currentTest?.state === 'failed' && consoleErrors.length > 0) console.error('browser console errors:', consoleErrors);
  });

  it('sends a visitor without a session to the sign-in page', async () => {
    const response = await page.goto(url(dashboardPath()));
    assert.ok(response, 'the page loaded');
    const landed = new URL(page.url());
    assert.equal(landed.pathname, '/dashboard');
    assert.equal(landed.searchParams.get('tenant'), world.tenantId);
    await page.locator(testid('login-form')).waitFor({ timeout: waitMs });
    assert.equal(await page.locator('#tenant').inputValue(), world.tenantId, 'the tenant is filled in');
    // The JSON behind the page refuses too.
    const api = await page.request.get(url(`/api/${world.tenantId}/dashboard/snapshot`));
    assert.equal(api.status(), 401);
  });

  it('shows an error for a wrong token', async () => {
    await page.locator('#tenant').fill(world.tenantId);
    await page.locator('#token').fill('not-the-token');
    await Promise.all([page.waitForURL(/error=invalid/, { timeout: waitMs }), page.locator(testid('login-submit')).click()]);
    const error = page.locator(testid('login-error'));
    await error.waitFor({ state: 'visible', timeout: waitMs });
    assert.match((await error.textContent()) ?? '', /do not match/);
    assert.equal((await context.cookies()).length, 0, 'no session was issued');
  });

  it('signs in through the form and lands on the live dashboard', async () => {
    await page.locator('#tenant').fill(world.tenantId);
    await page.locator('#token').fill(world.tenant.secrets.operatorToken);
    await Promise.all([page.waitForURL(url(dashboardPath()), { timeout: waitMs }), page.locator(testid('login-submit')).click()]);
    await page.locator(`${testid('connection')}[data-state="live"]`).waitFor({ timeout: waitMs });
    assert.equal(await page.locator(testid('tenant-name')).textContent(), 'Test Co');
    await figure('active-count', 0);
    await figure('ringing-count', 0);
    await figure('answered-today', 0);
    await figure('service-level', null);
    assert.equal(await page.locator(testid('service-level')).textContent(), '—');
    assert.notEqual(await page.locator(testid('last-update')).getAttribute('data-at'), null);
  });

  const answered = callPlan('answered', '+14155550142', 60, 6, 30);
  const answeredId = `pbx:${answered.callId}`;
  const [ring, answer, end, recordingReady] = pbxEvents({ ...answered, recordingUrl: 'http://placeholder.invalid/rec.wav' });

  it('shows a ringing call live, with its current wait ticking', async () => {
    assert.ok(ring);
    await post('pbx', ring);
    await figure('ringing-count', 1);
    const row = page.locator(`${testid('ringing-call')}[data-call-id="${answeredId}"]`);
    await row.waitFor({ timeout: waitMs });
    assert.equal(await row.locator('a').textContent(), '+1•••42', 'the caller is masked');
    const longest = Number(await page.locator(testid('longest-wait')).getAttribute('data-value'));
    assert.ok(longest >= 55, `the longest wait counts from the ring (${longest} s)`);
    await page.waitForFunction(
      ([selector, before]) => Number((globalThis as unknown as BrowserGlobals).document.querySelector(selector)?.getAttribute('data-value')) > before,
      [testid('longest-wait'), longest] as const,
      { timeout: 10_000 },
    );
    assert.equal(await page.getByText('4155550142').count(), 0);
    assert.ok(!(await page.content()).includes('5550142'), 'no full phone number anywhere in the page');
    await page.locator(`${testid('change')}[data-id="${answeredId}"]`).first().waitFor({ timeout: waitMs });
  });

  it('moves the call to active when it is answered, with a running duration', async () => {
    assert.ok(answer);
    await post('pbx', answer);
    await figure('active-count', 1);
    await figure('ringing-count', 0);
    await figure('longest-wait', 0);
    const duration = page.locator(`${testid('active-call')}[data-call-id="${answeredId}"] ${testid('call-duration')}`);
    await duration.waitFor({ timeout: waitMs });
    const shown = Number(await duration.getAttribute('data-value'));
    assert.ok(shown >= 50, `talking since the answer ~54 s ago (${shown} s)`);
    assert.match((await duration.textContent()) ?? '', /^\d+:\d{2}$/);
    await page.waitForFunction(
      ([selector, before]) => Number((globalThis as unknown as BrowserGlobals).document.querySelector(selector)?.getAttribute('data-value')) > before,
      [`${testid('active-call')}[data-call-id="${answeredId}"] ${testid('call-duration')}`, shown] as const,
      { timeout: 10_000 },
    );
  });

  it('lists the ended call among recent calls and counts it as answered', async () => {
    assert.ok(end && recordingReady);
    const wav = deterministicWav(2, answered.callId);
    const recordingUrl = world.recordings.put(`/recordings/${answered.callId}.wav`, wav, 'audio/wav');
    await post('pbx', end);
    await post('pbx', { ...recordingReady, recording_url: recordingUrl });
    await page.locator(`${testid('recent-call')}[data-call-id="${answeredId}"]`).waitFor({ timeout: waitMs });
    await figure('answered-today', 1);
    await figure('active-count', 0);
    await figure('aht', 30);
    assert.equal(await page.locator(testid('aht')).textContent(), '00:30');
    const row = page.locator(`${testid('recent-call')}[data-call-id="${answeredId}"]`);
    assert.equal(await row.getAttribute('data-disposition'), 'answered');
  });

  const missed = callPlan('missed', '+14155550143', 30, 12);
  const abandoned = callPlan('abandoned', '+442071838750', 25, 8);
  const voice: VoiceAiPlan = {
    callId: uniqueId('dash-ai'),
    agentId: 'ai-agent-1',
    direction: 'inbound',
    customerPhone: '+14155550144',
    agentPhone: '+12025550101',
    startedAt: new Date(Date.now() - 90_000),
    durationSeconds: 50,
    satisfaction: 4,
    resolved: true,
    sentiment: 'positive',
    issueType: 'billing',
    email: 'caller@test.example',
  };
  const callIds = [answeredId, `pbx:${missed.callId}`, `pbx:${abandoned.callId}`, `voice-ai:${voice.callId}`];

  it('counts a missed and an abandoned call', async () => {
    for (const event of [...pbxEvents(missed), ...pbxEvents(abandoned)]) await post('pbx', event);
    await figure('missed-today', 1);
    await figure('abandoned-today', 1);
    for (const [plan, disposition] of [[missed, 'missed'], [abandoned, 'abandoned']] as const) {
      const row = page.locator(`${testid('recent-call')}[data-call-id="pbx:${plan.callId}"]`);
      await row.waitFor({ timeout: waitMs });
      assert.equal(await row.getAttribute('data-disposition'), disposition);
    }
    assert.equal(await page.locator(`${testid('recent-call')}[data-call-id="pbx:${abandoned.callId}"] td`).nth(1).textContent(), '+44•••50');
  });

  it('shows the same figures as the journal, computed independently', async () => {
    for (const event of voiceAiEvents(voice)) await post('voice-ai', event);
    // Let every call settle (analytics, recording, outcome actions) before comparing.
    for (const callId of callIds) await world.waitForCall(callId, (call) => call.status === 'completed');
    await world.waitForCall(answeredId, (call) => call.recording?.stored === true);
    await world.waitForCall(callIds[3] ?? '', (call) => call.analytics?.satisfaction === 4);

    const expected = await todayFromJournal();
    assert.deepEqual(
      { answered: expected.answered, missed: expected.missed, abandoned: expected.abandoned, offered: expected.offered },
      { answered: 2, missed: 1, abandoned: 1, offered: 4 },
      'the journal holds the calls sent',
    );
    await figure('answered-today', expected.answered);
    await figure('missed-today', expected.missed);
    await figure('abandoned-today', expected.abandoned);
    await figure('offered-today', expected.offered);
    await figure('service-level', expected.serviceLevel);
    await figure('service-level-threshold', world.tenant.dashboard.serviceLevelSeconds);
    await figure('aht', expected.averageHandleSeconds);
    await figure('resolution-rate', expected.resolutionRate);
    await figure('avg-satisfaction', expected.averageSatisfaction);
    assert.equal(await page.locator(testid('aht')).textContent(), mmss(expected.averageHandleSeconds ?? 0));
    assert.equal(await page.locator(testid('avg-satisfaction')).textContent(), (expected.averageSatisfaction ?? 0).toFixed(2));

    const live = await world.db.query<{ ringing: number; active: number }>(
      `SELECT count(*) FILTER (WHERE status = 'ringing')::int AS ringing, count(*) FILTER (WHERE status = 'in_progress')::int AS active FROM calls WHERE tenant_id = $1`,
      [world.tenantId],
    );
    await figure('ringing-count', live.rows[0]?.ringing ?? -1);
    await figure('active-count', live.rows[0]?.active ?? -1);

    const recent = await world.db.query<{ call_id: string }>(
      `SELECT call_id FROM calls WHERE tenant_id = $1 AND status IN ('ended', 'completed') ORDER BY ended_at DESC NULLS LAST LIMIT 15`,
      [world.tenantId],
    );
    await page.locator(`${testid('recent-call')}[data-call-id="${callIds[3]}"]`).waitFor({ timeout: waitMs });
    const shownIds = await page.locator(testid('recent-call')).evaluateAll((rows: AttributeHolder[]) => rows.map((row) => row.getAttribute('data-call-id')));
    assert.deepEqual(shownIds, recent.rows.map((row) => row.call_id));
    assert.ok(!(await page.content()).match(/555014[234]|2071838750/), 'no full phone number anywhere in the dashboard');

    await mkdir(resultsDir, { recursive: true });
    await page.screenshot({ path: `${resultsDir}dashboard.png`, fullPage: true });
  });

  it('says when ingestion is catching up and when events are in dead letter, until it clears', async () => {
    const banner = page.locator(testid('ingest-backlog'));
    const deadLetters = page.locator(testid('dead-letters'));
    /** Waits until the banner's state (data-pending, hidden) is this one, in one look at the page. */
    const bannerState = (pending: number, hidden: boolean): Promise<unknown> =>
      page.waitForFunction(
        ([selector, wanted, hide]) => {
          const node = (globalThis as unknown as BrowserGlobals).document.querySelector(selector);
          return node?.getAttribute('data-pending') === wanted && node.hidden === hide;
        },
        [testid('ingest-backlog'), String(pending), hidden] as const,
        { timeout: waitMs },
      );
    // Count from zero: this tenant's webhook events have been forwarded (and their rows deleted).
    await waitUntil(async () => (await inboxRowsOf(world.db, world.tenantId)) === 0, waitMs, "the tenant's webhook events never left the inbox");
    await bannerState(0, true);
    assert.equal(await deadLetters.isVisible(), false);

    const parked: ParkedRows[] = [];
    try {
      // An event that has just arrived is no news: the stream reports it, the banner stays away…
      parked.push(await parkInboxRows(world.db, world.tenantId, { count: 1, ageSeconds: 0 }));
      await bannerState(1, true);
      // …until it has waited more than 5 s, with no journal write or anything else happening.
      await banner.waitFor({ state: 'visible', timeout: waitMs });
      assert.match((await banner.textContent()) ?? '', /^Catching up: 1 event waiting, oldest \d+ s/);
      assert.ok(Number(await banner.getAttribute('data-age')) > 5);

      parked.push(await parkInboxRows(world.db, world.tenantId, { count: 2, ageSeconds: 40 }));
      parked.push(await parkInboxRows(world.db, world.tenantId, { count: 2, ageSeconds: 120, dead: true }));
      const expected = await world.db.query<{ pending: number; dead: number }>(
        'SELECT count(*) FILTER (WHERE dead_at IS NULL)::int AS pending, count(*) FILTER (WHERE dead_at IS NOT NULL)::int AS dead FROM event_inbox WHERE tenant_id = $1',
        [world.tenantId],
      );
      assert.deepEqual(expected.rows[0], { pending: 3, dead: 2 });
      await bannerState(3, false);
      const text = (await banner.textContent()) ?? '';
      const oldest = Number(/oldest (\d+) s/.exec(text)?.[1]);
      assert.match(text, /^Catching up: 3 events waiting, oldest \d+ s/);
      assert.ok(oldest >= 40 && oldest < 100, `the oldest waiting event is the 40 s one (${text})`);
      await deadLetters.waitFor({ state: 'visible', timeout: waitMs });
      assert.equal(await deadLetters.textContent(), '2 events in dead letter — see npm run cli -- dead-letters');
      assert.equal(await deadLetters.getAttribute('data-value'), '2');
      await mkdir(resultsDir, { recursive: true });
      await page.screenshot({ path: `${resultsDir}dashboard-backlog.png` });

      // Forwarded (the forwarder deletes the rows) and the dead letters dealt with: both notices go, again with nothing else happening.
      for (const rows of parked.splice(0)) await rows.remove();
      await bannerState(0, true);
      await deadLetters.waitFor({ state: 'hidden', timeout: waitMs });
    } finally {
      for (const rows of parked) await rows.remove();
    }
  });

  it('reads on a wall screen (?wall=1): bigger numerals', async () => {
    const wall = await context.newPage();
    wall.on('pageerror', (error) => pageErrors.push(error.message));
    await wall.setViewportSize({ width: 1920, height: 1080 });
    await wall.goto(url(`${dashboardPath()}?wall=1`));
    await wall.locator(`${testid('connection')}[data-state="live"]`).waitFor({ timeout: waitMs });
    await figure('answered-today', 2, wall);
    const size = (on: Page): Promise<number> =>
      on.locator(testid('answered-today')).evaluate((node) => parseFloat((globalThis as unknown as ComputedStyles).getComputedStyle(node).fontSize));
    const [wallSize, laptopSize] = [await size(wall), await size(page)];
    assert.ok(wallSize > laptopSize * 1.3, `wall numerals ${wallSize}px vs laptop ${laptopSize}px`);
    await wall.screenshot({ path: `${resultsDir}dashboard-wall.png` });
    await wall.close();
  });

  it('opens a call from the recent list: journal, events, recording and the Temporal Web UI link', async () => {
    const link = page.locator(`${testid('recent-call')}[data-call-id="${answeredId}"] ${testid('call-link')}`);
    await Promise.all([page.waitForURL(`**/dashboard/${world.tenantId}/calls/${encodeURIComponent(answeredId)}`, { timeout: waitMs }), link.click()]);
    await page.locator(testid('call-event')).first().waitFor({ timeout: waitMs });
    assert.equal(await page.locator(testid('call-id')).textContent(), answeredId);

    const stored = await world.db.query<{ type: string }>('SELECT type FROM call_events WHERE tenant_id = $1 AND call_id = $2 ORDER BY occurred_at, recorded_at', [world.tenantId, answeredId]);
    const shownTypes = await page.locator(testid('call-event')).evaluateAll((rows: AttributeHolder[]) => rows.map((row) => row.getAttribute('data-event-type')));
    assert.deepEqual(shownTypes, stored.rows.map((row) => row.type));
    for (const type of ['call.ringing', 'call.answered', 'call.ended', 'call.recording']) assert.ok(shownTypes.includes(type), `${type} is listed`);

    const call = await world.call(answeredId);
    assert.ok(call);
    const journal = page.locator(testid('call-journal'));
    assert.equal(await journal.locator('[data-field="disposition"]').textContent(), 'answered');
    assert.equal(await journal.locator('[data-field="workflowId"]').textContent(), call.workflowId);
    assert.match((await journal.locator('[data-field="durationSeconds"]').textContent()) ?? '', /0:30 \(30 s\)/);
    if (call.crm.noteId !== undefined) assert.equal(await page.locator(`${testid('call-crm')} [data-field="noteId"]`).textContent(), `#${call.crm.noteId}`);

    const temporal = page.locator(testid('temporal-link'));
    const { webUiUrl, namespace } = world.config.temporal;
    assert.equal(await temporal.getAttribute('href'), `${webUiUrl}/namespaces/${namespace}/workflows/${encodeURIComponent(call.workflowId)}`);

    // The player loads the stored recording through the API (byte ranges).
    const player = page.locator(testid('recording-player'));
    assert.equal(await player.getAttribute('src'), `/api/${world.tenantId}/calls/${encodeURIComponent(answeredId)}/recording`);
    await page.waitForFunction(
      (selector) => {
        const audio = (globalThis as unknown as { document: { querySelector(selector: string): { readyState: number; duration: number } | null } }).document.querySelector(selector);
        return audio !== null && audio.readyState >= 1 && audio.duration > 1.5;
      },
      testid('recording-player'),
      { timeout: waitMs },
    );
    await page.screenshot({ path: `${resultsDir}call.png`, fullPage: true });
  });

  it('shows a lead: live stage counts, planned steps, timeline, pause and resume', async () => {
    await page.goto(url(dashboardPath()));
    await page.locator(`${testid('connection')}[data-state="live"]`).waitFor({ timeout: waitMs });
    const leadId = uniqueId('lead');
    const startsAt = new Date(Date.now() + 2 * 86_400_000);
    await postCrm({ event_id: `${leadId}-created`, event: 'lead.created', lead_id: leadId, lead: { name: 'Grace Hopper', phone: '+14155550177', time_zone: 'America/Chicago' } });
    await postCrm({ event_id: `${leadId}-booked`, event: 'meeting.booked', lead_id: leadId, meeting: { id: 'm-1', starts_at: startsAt.toISOString() } });
    // The flow holds CRM events briefly to put them in order, then the stage reaches the dashboard live.
    await figure('leads-stage-booked', 1, page);

    // Wait for the flow to settle (what was due at once, e.g. the welcome, is done) before comparing.
    let lead: LeadState | undefined;
    await waitUntil(
      async () => {
        const state = await world.db.query<{ state: LeadState }>('SELECT state FROM leads WHERE tenant_id = $1 AND lead_id = $2', [world.tenantId, leadId]);
        lead = state.rows[0]?.state;
        return lead !== undefined && lead.stage === 'booked' && !lead.planned.some((step) => step.dueAt <= Date.now());
      },
      waitMs,
      `lead ${leadId} did not settle: ${JSON.stringify(lead)}`,
    );
    assert.ok(lead);
    const now = Date.now();
    const dueSoon = lead.paused ? 0 : lead.planned.filter((step) => step.step !== 'check' && step.dueAt >= now && step.dueAt <= now + 3_600_000).length;
    await figure('due-next-hour', dueSoon);
    const stages = await world.db.query<{ stage: string; count: number }>('SELECT stage, count(*)::int AS count FROM leads WHERE tenant_id = $1 GROUP BY stage', [world.tenantId]);
    const counts = new Map(stages.rows.map((row) => [row.stage, row.count]));
    for (const stage of leadStages) await figure(`leads-stage-${stage}`, counts.get(stage) ?? 0);

    await page.goto(url(`${dashboardPath()}/leads/${encodeURIComponent(leadId)}`));
    await figure('lead-stage', 'booked');
    await figure('lead-paused', 'false');
    assert.equal(await page.locator(testid('lead-time-zone')).textContent(), 'America/Chicago');
    assert.equal(await page.locator(testid('planned-step')).count(), lead.planned.length);
    assert.ok(lead.planned.some((step) => step.flow === 'reminder'), 'reminders are planned');
    const timeline = await world.db.query<{ count: number }>('SELECT count(*)::int AS count FROM lead_timeline WHERE tenant_id = $1 AND lead_id = $2', [world.tenantId, leadId]);
    assert.equal(await page.locator(testid('timeline-entry')).count(), timeline.rows[0]?.count);
    // The preview panel lists what the preview API answers for this lead. This tenant has no WhatsApp
    // number, so the reminders show as the skips they will be.
    const previewResponse = await fetch(url(`/api/${world.tenantId}/leads/${encodeURIComponent(leadId)}/preview?days=30`), { headers: { authorization: `Bearer ${world.tenant.secrets.operatorToken}` } });
    const { preview } = (await previewResponse.json()) as { preview: { sends: Array<{ key: string }>; skips: Array<{ key: string; reason: string }> } };
    assert.ok(preview.skips.some((skip) => skip.key.startsWith('reminder:') && skip.reason === 'no_sender'), JSON.stringify(preview));
    const keysOf = (id: string): Promise<Array<string | null>> => page.locator(testid(id)).evaluateAll((rows: AttributeHolder[]) => rows.map((row) => row.getAttribute('data-key')));
    assert.deepEqual(await keysOf('preview-send'), preview.sends.map((send) => send.key));
    assert.deepEqual(await keysOf('preview-skip'), preview.skips.map((skip) => skip.key));
    const temporal = page.locator(testid('temporal-link'));
    assert.equal(await temporal.getAttribute('href'), `${world.config.temporal.webUiUrl}/namespaces/${world.config.temporal.namespace}/workflows/${encodeURIComponent(lead.workflowId)}`);

    await page.locator(testid('pause-lead')).click();
    await figure('lead-paused', 'true');
    await page.locator(testid('action-status')).waitFor({ state: 'visible', timeout: waitMs });
    await page.locator(`${testid('timeline-entry')}[data-kind="operator"]`).first().waitFor({ timeout: waitMs });
    await page.locator(testid('resume-lead')).click();
    await figure('lead-paused', 'false');
    assert.equal(await page.locator(testid('action-error')).isVisible(), false);
    await page.screenshot({ path: `${resultsDir}lead.png`, fullPage: true });
  });

  it('draws the analytics charts and moves them with the data, live', async () => {
    await page.goto(url(`${dashboardPath()}/analytics`));
    await page.locator(`${testid('connection')}[data-state="live"]`).waitFor({ timeout: waitMs });
    for (const chart of ['chart-calls', 'chart-service', 'chart-messages', 'chart-funnel']) {
      await page.locator(`${testid(chart)} .uplot canvas`).first().waitFor({ timeout: waitMs });
    }
    const shown = async (chart: string, field: string): Promise<number> => Number(await page.locator(testid(chart)).getAttribute(`data-${field}`));
    const callsBefore = await shown('chart-calls', 'today');
    const sendsBefore = await shown('chart-messages', 'sends');
    const repliesBefore = await shown('chart-messages', 'replies');
    const fromApi = async (): Promise<{ callsToday: number; sends: number; funnelSent: number }> => {
      const response = await fetch(url(`/api/${world.tenantId}/analytics/charts`), { headers: { authorization: `Bearer ${world.tenant.secrets.operatorToken}` } });
      const charts = (await response.json()) as { callsPerHour: { today: number[] }; sendsPerHour: number[]; funnel: { sent: number } };
      return { callsToday: charts.callsPerHour.today.reduce((a, b) => a + b, 0), sends: charts.sendsPerHour.reduce((a, b) => a + b, 0), funnelSent: charts.funnel.sent };
    };
    assert.equal(callsBefore, (await fromApi()).callsToday, 'the chart shows what the API answers');

    // A lead's send and its reply, in the ledger and the timeline (no journal write announces them) …
    const leadId = uniqueId('chart-lead');
    const sentAt = new Date(Date.now() - 120_000);
    await world.db.query(`INSERT INTO leads (tenant_id, lead_id, workflow_id, version, stage, time_zone, state) VALUES ($1, $2, $2, 1, 'contacted', $3, '{}')`, [world.tenantId, leadId, world.tenant.timeZone]);
    await world.db.query(
      `INSERT INTO lead_timeline (tenant_id, lead_id, entry_key, at, kind, flow, step, cause, detail) VALUES
         ($1, $2, 'sent:welcome:message:1', $3, 'sent', 'welcome', 'message', 'test', jsonb_build_object('messageId', $2 || '.wamid')),
         ($1, $2, 'event:reply', $3::timestamptz + interval '30 seconds', 'replied', NULL, NULL, 'test', '{}')`,
      [world.tenantId, leadId, sentAt],
    );
    await world.db.query(`INSERT INTO whatsapp_messages (tenant_id, wamid, effect_key, lead_id, kind, template_name, status) VALUES ($1, $2 || '.wamid', $2, $2, 'template', 'welcome_v2', 'read')`, [world.tenantId, leadId]);
    // … then a call, whose journal writes the live feed pushes: the page re-reads and every chart moves.
    const call = callPlan('answered', '+14155550177', 40, 3, 10);
    for (const event of pbxEvents(call)) await post('pbx', event);
    await page.locator(`${testid('chart-calls')}[data-today="${callsBefore + 1}"]`).waitFor({ timeout: waitMs });
    await page.locator(`${testid('chart-messages')}[data-sends="${sendsBefore + 1}"][data-replies="${repliesBefore + 1}"]`).waitFor({ timeout: waitMs });
    const after = await fromApi();
    assert.equal(await shown('chart-funnel', 'sent'), after.funnelSent);
    assert.equal(await shown('chart-messages', 'sends'), after.sends);
    await page.locator(`${testid('outcome-steps-row')}[data-key="welcome/message"]`).waitFor({ timeout: waitMs });
    await mkdir(resultsDir, { recursive: true });
    await page.screenshot({ path: `${resultsDir}analytics.png`, fullPage: true });
  });

  it('threw no errors in the page', () => {
    assert.deepEqual(pageErrors, []);
  });
});

