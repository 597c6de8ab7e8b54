/**
 * The Temporal Web UI (the dev server's own) shows an encrypted call history decoded, through our
 * API's codec server, as an operator sees it: signed in to the dashboard, with the UI's codec
 * setting pointing at `<API>/codec` and "Include cross-origin credentials" on (the dev server's
 * `--ui-codec-endpoint` cannot turn that on by itself). Debian's Chromium via playwright-core.
 */
import assert from 'node:assert/strict';
import { mkdir } from 'node:fs/promises';
import { fileURLToPath } from 'node:url';
import { Client } from '@temporalio/client';
import { chromium } from 'playwright-core';
import type { Browser, BrowserContext, Page } from 'playwright-core';
import { voiceAiEvents } from '../../sandboxes/pbx-simulator.js';
import { callWorkflowId } from '../../shared/calls.js';
import { encryptedEncoding } from '../../security/payload-codec.js';
import { startCallWorld } from '../harness/call-world.js';
import type { CallWorld } from '../harness/call-world.js';
import { uniqueId } from '../harness/resources.js';
import { getDevServerUi } from '../harness/temporal.js';

const chromiumPath = '/usr/bin/chromium';
const chromiumArgs = ['--headless', '--no-sandbox', '--disable-gpu', '--disable-quic', '--no-first-run', '--disable-background-networking', '--disable-component-update', '--disable-sync'];
const resultsDir = fileURLToPath(new URL('../../test-results/', import.meta.url));
const waitMs = 45_000;

/** What the UI's codec settings dialog stores (Temporal UI `data-encoder-config` stores, JSON in localStorage). */
function codecSettingsScript(settings: { uiOrigin: string; endpoint: string }): void {
  const scope = globalThis as unknown as { location: { origin: string }; localStorage: { setItem(key: string, value: string): void } };
  if (scope.location.origin !== settings.uiOrigin) return;
  scope.localStorage.setItem('endpoint', JSON.stringify(settings.endpoint));
  scope.localStorage.setItem('overrideRemoteCodecConfiguration', 'true');
  scope.localStorage.setItem('includeCredentials', 'true');
}

describe('the Temporal Web UI shows encrypted histories decoded', function () {
  this.timeout(240_000);
  let world: CallWorld;
  let browser: Browser;
  let context: BrowserContext;
  let page: Page;
  let uiUrl: string;
  let workflowId: string;
  let runId: string;
  let signalEventIds: string[];
  const phone = `+1415555${String(Math.floor(Math.random() * 90) + 10)}${String(Math.floor(Math.random() * 90) + 10)}`;
  const sentence = `The flux capacitor ${uniqueId('fx')} needs 1.21 gigawatts`;

  before(async () => {
    uiUrl = await getDevServerUi();
    world = await startCallWorld({ codecAllowedOrigins: [uiUrl] });
    const plan = { callId: uniqueId('ui'), agentId: 'agent-5', direction: 'inbound' as const, customerPhone: phone, agentPhone: '+12025550100', startedAt: new Date(), durationSeconds: 30, satisfaction: 5, resolved: true };
    const events = voiceAiEvents(plan);
    const end = events.find((event) => event.event === 'call.end');
    assert.ok(end);
    end.transcript = [{ role: 'user', text: sentence }];
    for (const event of events) assert.equal((await world.postSigned('voice-ai', event)).status, 202);
    const callId = `voice-ai:${plan.callId}`;
    await world.waitForCall(callId, (call) => call.status === 'completed');
    workflowId = callWorkflowId(world.tenantId, callId);
    const handle = world.client.workflow.getHandle(workflowId);
    runId = (await handle.describe()).runId;
    // The history as stored: the signal carrying the caller is encrypted.
    const raw = await new Client({ connection: world.client.connection, namespace: world.config.temporal.namespace }).workflow.getHandle(workflowId).fetchHistory();
    const signals = (raw.events ?? []).filter((event) => event.workflowExecutionSignaledEventAttributes);
    assert.ok(signals.length > 0);
    for (const signal of signals) {
      const payload = signal.workflowExecutionSignaledEventAttributes?.input?.payloads?.[0];
      assert.equal(Buffer.from(payload?.metadata?.encoding ?? new Uint8Array()).toString(), encryptedEncoding);
    }
    signalEventIds = signals.map((signal) => String(signal.eventId));

    browser = await chromium.launch({ executablePath: chromiumPath, args: chromiumArgs });
    context = await browser.newContext({ viewport: { width: 1600, height: 1100 }, locale: 'en-US' });
    page = await context.newPage();
  });

  after(async () => {
    await context?.close();
    await browser?.close();
    await world?.stop();
  });

  it('decodes the call\'s input, summary and the signal with the caller\'s phone and transcript, for a signed-in operator', async () => {
    // The API as the browser reaches it: localhost, the same site as the UI, so the session cookie goes along.
    const apiUrl = world.api.baseUrl.replace('127.0.0.1', 'localhost');
    await page.goto(`${apiUrl}/dashboard?tenant=${encodeURIComponent(world.tenantId)}`);
    await page.locator('#tenant').fill(world.tenantId);
    await page.locator('#token').fill(world.tenant.secrets.operatorToken);
    await Promise.all([page.waitForURL(`${apiUrl}/dashboard/${world.tenantId}`, { timeout: waitMs }), page.locator('[data-testid="login-submit"]').click()]);

    await context.addInitScript(codecSettingsScript, { uiOrigin: new URL(uiUrl).origin, endpoint: `${apiUrl}/codec` });
    const decoded = page.waitForResponse((response) => response.url() === `${apiUrl}/codec/decode` && response.request().method() === 'POST', { timeout: waitMs });
    await page.goto(`${uiUrl}/namespaces/${world.config.temporal.namespace}/workflows/${encodeURIComponent(workflowId)}/${runId}/history`);
    const firstDecode = await decoded;
    assert.equal(firstDecode.status(), 200, 'the UI called the codec server with the operator session');

    // The workflow's input, shown above the history, decoded (encrypted it is opaque bytes).
    await page.locator('[data-testid="input-and-result"]', { hasText: 'integrationsTaskQueue' }).first().waitFor({ timeout: waitMs });
    await page.getByText('Inbound call via voice-ai · Test Co').first().waitFor({ timeout: waitMs });

    // The signals' payloads (the events arrived one by one): the caller's number and what they said.
    for (const eventId of signalEventIds) {
      const row = page.locator(`tr[data-testid="event-summary-row"][data-eventid="${eventId}"]`).first();
      await row.waitFor({ timeout: waitMs });
      await row.click();
    }
    const expanded = page.locator('[data-testid="event-summary-row-expanded"]', { hasText: phone }).first();
    await expanded.waitFor({ timeout: waitMs });
    await page.locator('[data-testid="event-summary-row-expanded"]', { hasText: sentence }).first().waitFor({ timeout: waitMs });
    await mkdir(resultsDir, { recursive: true });
    await page.screenshot({ path: `${resultsDir}temporal-ui-decoded.png`, fullPage: true });
  });
});
