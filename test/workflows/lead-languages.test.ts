/**
 * Templates per language, end to end on the time-skipping server: the lead's language (from the
 * CRM) picks the template version the WhatsApp sandbox receives, a language without a translation
 * gets the tenant's fallback, the timeline, the message ledger and the flow preview name the
 * language, and a message that no longer fits its template's registration is stopped before
 * WhatsApp could refuse it.
 */
import assert from 'node:assert/strict';
import type { TenantConfig } from '../../config/schema.js';
import type { LeadPreview } from '../../shared/lead-preview.js';
import { localParts } from '../../shared/send-window.js';
import { startLeadWorld } from '../harness/lead-world.js';
import type { LeadWorld } from '../harness/lead-world.js';
import { uniqueId } from '../harness/resources.js';

const minute = 60_000;
const hour = 60 * minute;
const day = 24 * hour;
const iso = (ms: number): string => new Date(ms).toISOString();

/** Welcome and follow-ups in English, Spanish and Mexican Spanish; the rest English only. Unmatched languages fall back to English. */
const policy = {
  languageFallback: ['en'],
  messages: {
    welcome: {
      text: 'Hi {{name}}, thanks for your interest in {{company}}!',
      template: { name: 'welcome', category: 'MARKETING', params: ['name', 'company'], languages: { en: { placeholders: 2 }, es: { placeholders: 2 }, 'es-MX': { placeholders: ['company', 'name'] } } },
    },
    follow_up: {
      text: 'Hi {{name}}, book a call? {{booking_url}}',
      template: { name: 'follow_up', category: 'MARKETING', params: ['name', 'booking_url'], languages: { en: { placeholders: 2 }, es: { placeholders: 2 } } },
    },
  },
};

/** The next weekday 10:00 in New York at or after `now`, inside the default send window. */
function nextWeekday10(now: number): number {
  for (let at = now - (now % minute) + minute; at < now + 9 * day; at += minute) {
    const local = localParts(at, 'America/New_York');
    if (local.weekday >= 1 && local.weekday <= 4 && local.hour === 10 && local.minute === 0) return at;
  }
  throw new Error('no weekday 10:00 in the next 9 days');
}

describe('templates per language (time-skipping, real API, workers, PostgreSQL and WhatsApp sandbox)', function () {
  this.timeout(300_000);
  let world: LeadWorld;
  before(async () => {
    world = await startLeadWorld({ policy });
  });
  after(async () => {
    await world.stop();
  });

  /** A lead created through the CRM webhook, in `language`, at the next weekday 10:00. */
  async function createLead(language: string | undefined): Promise<{ leadId: string; phone: string; event: (sequence: number, event: string, extra?: Record<string, unknown>) => Promise<void> }> {
    const leadId = uniqueId('lang');
    const phone = `+1415555${String(Math.floor(Math.random() * 9000) + 1000)}`;
    await world.env.sleep(nextWeekday10(await world.now()) - (await world.now()));
    const event = async (sequence: number, name: string, extra: Record<string, unknown> = {}): Promise<void> => {
      const response = await world.crm({ event_id: `${leadId}-${sequence}`, event: name, lead_id: leadId, occurred_at: iso(await world.now()), ...extra });
      assert.equal(response.status, 202, await response.text());
    };
    await event(1, 'lead.created', { lead: { name: 'Lucía Gómez', phone, ...(language ? { language } : {}) } });
    await world.idle(leadId);
    return { leadId, phone, event };
  }
  const templatesTo = (phone: string): string[] => world.sentTo(phone).map((message) => `${message.template?.name ?? 'text'}/${message.template?.language ?? '-'}/${(message.template?.parameters ?? []).join(',')}`);
  const sentEntries = async (leadId: string) => (await world.timeline(leadId)).filter((entry) => entry.kind === 'sent');
  // From the skipped clock's now: the API's default is the wall clock's.
  const preview = async (leadId: string): Promise<LeadPreview> => {
    const from = encodeURIComponent(iso(await world.now()));
    const response = await fetch(`${world.api.baseUrl}/api/${world.tenantId}/leads/${encodeURIComponent(leadId)}/preview?days=5&from=${from}`, { headers: { authorization: `Bearer ${world.tenant.secrets.operatorToken}` } });
    const text = await response.text();
    assert.equal(response.status, 200, text);
    return (JSON.parse(text) as { preview: LeadPreview }).preview;
  };

  it('a Spanish-speaking lead gets the Spanish versions, and the timeline, the ledger and the preview say so', async () => {
    const { leadId, phone, event } = await createLead('es');
    const ahead = await preview(leadId);
    assert.deepEqual(
      ahead.sends.filter((send) => send.flow === 'follow_up').slice(0, 1).map((send) => [send.key, send.language]),
      [['follow_up:1', { language: 'es', match: 'lead' }]],
      'the preview names the language of the next step',
    );
    await world.advance(leadId, day + hour);
    assert.deepEqual(templatesTo(phone), ['welcome/es/Lucía,Acme', 'follow_up/es/Lucía,https://example.com/book']);
    const sent = await sentEntries(leadId);
    assert.deepEqual(
      sent.map((entry) => [entry.flow, entry.detail?.language, entry.detail?.languageMatch, entry.detail?.requestedLanguage]),
      [
        ['welcome', 'es', 'lead', undefined],
        ['follow_up', 'es', 'lead', undefined],
      ],
    );
    const ledger = await world.db.query<{ language: string }>('SELECT language FROM whatsapp_messages WHERE tenant_id = $1 AND lead_id = $2 ORDER BY accepted_at', [world.tenantId, leadId]);
    assert.deepEqual(ledger.rows.map((row) => row.language), ['es', 'es']);
    await event(2, 'lead.status_changed', { status: 'lost' });
  });

  it("a Mexican lead gets the es_MX version with its own placeholder order; a lead in a language without a translation gets the fallback", async () => {
    const mexican = await createLead('es_MX');
    assert.deepEqual(templatesTo(mexican.phone), ['welcome/es_MX/Acme,Lucía']);
    await mexican.event(2, 'lead.status_changed', { status: 'lost' });

    const german = await createLead('de');
    const ahead = await preview(german.leadId);
    assert.deepEqual(ahead.sends.find((send) => send.flow === 'follow_up')?.language, { language: 'en', match: 'fallback', requested: 'de' });
    await world.advance(german.leadId, day + hour);
    // Never German (WhatsApp would refuse it with 132001): the tenant's chain, English.
    assert.deepEqual(templatesTo(german.phone), ['welcome/en/Lucía,Acme', 'follow_up/en/Lucía,https://example.com/book']);
    const sent = await sentEntries(german.leadId);
    assert.deepEqual(
      sent.map((entry) => [entry.detail?.language, entry.detail?.languageMatch, entry.detail?.requestedLanguage]),
      [
        ['en', 'fallback', 'de'],
        ['en', 'fallback', 'de'],
      ],
    );
    await german.event(2, 'lead.status_changed', { status: 'lost' });
  });

  it('a message that no longer fits its registration (the template re-registered while the lead ran) fails for good before WhatsApp is called', async () => {
    const { leadId, phone, event } = await createLead('es');
    assert.deepEqual(templatesTo(phone), ['welcome/es/Lucía,Acme']);
    // The tenant now registers the Spanish follow-up with a third placeholder; the running lead
    // still plans with the policy it started with (two parameters), which WhatsApp would refuse with 132000.
    const tenant = world.config.tenants[world.tenantId] as TenantConfig;
    const followUp = tenant.leads.messages.follow_up;
    const original = followUp.template;
    followUp.template = { ...original, languages: { ...original.languages, es: { placeholders: ['name', 'booking_url', 'name'] } } };
    try {
      const requestsBefore = world.whatsapp.state().messages.length;
      await world.advance(leadId, day + hour);
      assert.equal(world.whatsapp.state().messages.length, requestsBefore, 'nothing reached WhatsApp');
      const failed = (await world.timeline(leadId)).filter((entry) => entry.kind === 'failed' && entry.flow === 'follow_up');
      assert.equal(failed.length, 1, JSON.stringify(failed));
      assert.equal(failed[0]?.detail?.reason, 'template_mismatch');
      assert.equal(failed[0]?.detail?.language, 'es');
      assert.match(String(failed[0]?.detail?.error), /not sent: template "follow_up" \(es\) declares 3 placeholder\(s\), the message carries 2 parameter\(s\)/);
      const handle = world.client.workflow.getHandle(`lead:${world.tenantId}:${leadId}`);
      const history = await handle.fetchHistory();
      const attempts = (history.events ?? []).filter((item) => item.activityTaskFailedEventAttributes).map((item) => item.activityTaskFailedEventAttributes?.retryState);
      assert.equal(attempts.length, 1, 'one failed activity: not retried');
    } finally {
      followUp.template = original;
    }
    await event(2, 'lead.status_changed', { status: 'lost' });
  });
});
