import assert from 'node:assert/strict';
import { Changes, afterSent, applyLeadEvent, initialLeadState, planStepMessage } from '../../shared/lead-plan.js';
import { leadPolicySchema } from '../../shared/leads.js';
import type { LeadPolicy } from '../../shared/leads.js';
import { canonicalLanguage, resolveTemplate, templateMessageProblem } from '../../shared/templates.js';
import type { TemplateRegistration } from '../../shared/templates.js';
import { planImport } from '../../cli/legacy-import.js';
import { tenantSchema } from '../../config/schema.js';
import { configError, writeConfig } from '../harness/config-files.js';

const welcome = (languages: Record<string, unknown>, extra: Record<string, unknown> = {}) => ({
  messages: { welcome: { text: 'Hi {{name}}, welcome to {{company}}!', template: { name: 'welcome', params: ['name', 'company'], languages, ...extra } } },
});
const translated = leadPolicySchema.parse({
  languageFallback: ['es-MX', 'es', 'en'],
  ...welcome({ en: { placeholders: 2 }, es: { placeholders: 2, text: '¡Hola {{name}}, bienvenido a {{company}}!' }, 'pt-BR': { placeholders: ['company', 'name'] }, es_MX: { placeholders: 2 } }),
});
const template = translated.messages.welcome.template;

/** A lead created with this language, as the workflow holds it. */
function leadIn(policy: LeadPolicy, language?: string) {
  const now = Date.parse('2026-12-07T10:00:00Z');
  const state = initialLeadState('t', 'L1', 'lead:t:L1', 'Europe/Madrid', now);
  applyLeadEvent(state, { eventId: 'c1', type: 'lead.created', occurredAt: new Date(now).toISOString(), profile: { name: 'Lucía Gómez', phone: '+34600000001', ...(language ? { language } : {}) } }, policy, now, new Changes(now));
  return state;
}

describe('templates per language', () => {
  describe('resolution (shared/templates.ts)', () => {
    it('spells codes as Meta does: es-mx and es_MX are es_MX', () => {
      assert.deepEqual(['es-mx', 'ES', 'pt_br', 'en-US', 'nonsense!'].map(canonicalLanguage), ['es_MX', 'es', 'pt_BR', 'en_US', 'nonsense!']);
      assert.deepEqual(Object.keys(template.languages ?? {}), ['en', 'es', 'pt_BR', 'es_MX']);
      assert.equal(template.language, 'en', 'the first version is the default');
    });

    it("picks the lead's exact version, then its base language, then another region of it", () => {
      const pick = (language: string | undefined) => {
        const resolved = resolveTemplate(template, language, translated.languageFallback);
        return [resolved.language, resolved.match, resolved.requested];
      };
      assert.deepEqual(pick('es'), ['es', 'lead', undefined]);
      assert.deepEqual(pick('es_MX'), ['es_MX', 'lead', undefined]);
      assert.deepEqual(pick('es_AR'), ['es', 'lead', 'es_AR'], 'no es_AR: the base language');
      assert.deepEqual(pick('pt'), ['pt_BR', 'lead', 'pt'], 'no pt: the Brazilian version is still Portuguese');
      assert.deepEqual(pick('de'), ['es_MX', 'fallback', 'de'], "no German: the tenant's chain, in order");
      assert.deepEqual(pick(undefined), ['es_MX', 'fallback', undefined], "no language: the tenant's chain");
    });

    it("falls back to the template's default when the chain has nothing either", () => {
      const only = leadPolicySchema.parse(welcome({ fr: { placeholders: 2 }, en: { placeholders: 2 } }, { language: 'en' })).messages.welcome.template;
      assert.deepEqual(resolveTemplate(only, 'de', ['it']), { language: 'en', version: { placeholders: ['name', 'company'] }, match: 'default', requested: 'de' });
    });

    it('reads a policy from before versions (a running workflow started with it) as its one language', () => {
      const legacy: TemplateRegistration = { name: 'welcome', language: 'en', params: ['name', 'company'] };
      assert.deepEqual(resolveTemplate(legacy, 'es'), { language: 'en', version: { placeholders: ['name', 'company'] }, match: 'default', requested: 'es' });
    });
  });

  describe('the planner (shared/lead-plan.ts)', () => {
    it('gives a Spanish-speaking lead the Spanish template, with its parameters', () => {
      const planned = planStepMessage(leadIn(translated, 'es'), translated, 'Acme', { flow: 'welcome' }, true);
      assert.deepEqual(planned, { message: { type: 'template', template: { name: 'welcome', language: 'es', params: ['Lucía', 'Acme'] } }, language: { language: 'es', match: 'lead' } });
    });

    it("fills a version's placeholders in its own order, and sends a version's free text in its language", () => {
      const portuguese = planStepMessage(leadIn(translated, 'pt_BR'), translated, 'Acme', { flow: 'welcome' }, true);
      assert.deepEqual(portuguese.message, { type: 'template', template: { name: 'welcome', language: 'pt_BR', params: ['Acme', 'Lucía'] } });
      const text = planStepMessage(leadIn(translated, 'es'), translated, 'Acme', { flow: 'welcome' }, false);
      assert.deepEqual(text, { message: { type: 'text', text: '¡Hola Lucía, bienvenido a Acme!' }, language: { language: 'es', match: 'lead' } });
      const noText = planStepMessage(leadIn(translated, 'pt_BR'), translated, 'Acme', { flow: 'welcome' }, false);
      assert.deepEqual(noText.language, { language: 'en', match: 'default', requested: 'pt_BR' }, "no Portuguese text: the flow's text, in the default language");
      const english = planStepMessage(leadIn(translated, 'en'), translated, 'Acme', { flow: 'welcome' }, false);
      assert.deepEqual(english.language, { language: 'en', match: 'lead' }, "an English lead's English text is in its own language");
    });

    it('gives a lead whose language has no translation the fallback, and says which was asked for', () => {
      const planned = planStepMessage(leadIn(translated, 'de'), translated, 'Acme', { flow: 'welcome' }, true);
      assert.deepEqual(planned.language, { language: 'es_MX', match: 'fallback', requested: 'de' });
      const defaults = leadPolicySchema.parse({});
      const english = planStepMessage(leadIn(defaults, 'es'), defaults, 'Acme', { flow: 'welcome' }, true);
      assert.deepEqual(english.message, { type: 'template', template: { name: 'welcome', language: 'en', params: ['Lucía', 'Acme'] } }, 'only English registered: never a Spanish send WhatsApp refuses (132001)');
    });

    it('plans the follow-ups after the welcome in the same language', () => {
      const state = leadIn(translated, 'es');
      const step = state.planned[0];
      assert.ok(step);
      afterSent(state, step, translated, Date.parse('2026-12-07T10:00:00Z'), new Changes(0), 'wamid.1');
      const followUp = state.planned.find((planned) => planned.flow === 'follow_up');
      assert.ok(followUp);
      // The follow-up template has one version only (the default policy's): English.
      assert.equal(planStepMessage(state, translated, 'Acme', followUp, true).language.language, 'en');
    });
  });

  describe('send-time check (before WhatsApp is called)', () => {
    const registered = Object.values(translated.messages).map((flow) => flow.template);
    it('passes a message that fits its version', () => {
      assert.equal(templateMessageProblem(registered, { name: 'welcome', language: 'es', params: ['Lucía', 'Acme'] }), undefined);
    });
    it('names an unregistered language (132001) and a parameter count mismatch (132000)', () => {
      assert.match(templateMessageProblem(registered, { name: 'welcome', language: 'de', params: ['a', 'b'] }) ?? '', /no "de" version \(registered: en, es, pt_BR, es_MX\)/);
      assert.match(templateMessageProblem(registered, { name: 'welcome', language: 'es', params: ['a'] }) ?? '', /declares 2 placeholder\(s\), the message carries 1/);
      assert.match(templateMessageProblem(registered, { name: 'nope', language: 'en', params: [] }) ?? '', /"nope" is not registered/);
    });
  });

  it("takes the lead's language from a legacy import, spelled as Meta does, and lists a row whose language is not one", () => {
    const tenant = tenantSchema.parse({ displayName: 'Acme', defaultRegion: 'US', timeZone: 'America/New_York', secrets: { webhookSigningSecret: 's', operatorToken: 'o' } });
    const rows = [
      { lead_id: 'a', status: 'new', phone: '+14155550101', language: 'es-MX' },
      { lead_id: 'b', status: 'new', phone: '+14155550102', Lang: 'PT' },
      { lead_id: 'c', status: 'new', phone: '+14155550103', language: 'Spanish' },
      { lead_id: 'd', status: 'new', phone: '+14155550104' },
    ];
    const { leads, problems } = planImport(rows, tenant, new Date('2026-12-07T10:00:00Z'));
    assert.deepEqual(leads.map((lead) => [lead.leadId, lead.event.type === 'lead.imported' ? lead.event.profile.language : '?']), [['a', 'es_MX'], ['b', 'pt'], ['d', undefined]]);
    assert.deepEqual(problems, [{ row: 3, leadId: 'c', reason: 'unknown language "Spanish"' }]);
  });

  describe('configuration', () => {
    const problems = (policy: Record<string, unknown>): string[] => {
      const parsed = leadPolicySchema.safeParse(policy);
      return parsed.success ? [] : parsed.error.issues.map((issue) => `${issue.path.join('.')}: ${issue.message}`);
    };

    it('keeps a single-language template valid', () => {
      const single = leadPolicySchema.parse({ messages: { welcome: { text: 'Hi', template: { name: 'hola', language: 'es', params: ['name'] } } } });
      assert.deepEqual(single.messages.welcome.template, { name: 'hola', language: 'es', category: 'UTILITY', params: ['name'] });
      assert.equal(single.languageFallback, undefined);
    });

    it("refuses placeholders that do not match the flow's params, naming the setting", () => {
      assert.deepEqual(problems(welcome({ en: { placeholders: 2 }, es: { placeholders: 3 } })), [
        "messages.welcome.template.languages.es.placeholders: declares 3 placeholder(s) but the flow's params fill 2 (name, company)",
      ]);
      assert.deepEqual(problems(welcome({ es: { placeholders: ['name', 'compnay'] } })), ['messages.welcome.template.languages.es.placeholders.1: "compnay" is not one of the flow\'s params (name, company)']);
    });

    it('refuses a bad language code, the same language twice, a default that is not a version, and a param no flow fills', () => {
      assert.deepEqual(problems(welcome({ 'spanish!': { placeholders: 2 } })), ['messages.welcome.template.languages.spanish!: must be keyed by a language code as WhatsApp spells it, such as en, es or pt_BR']);
      assert.deepEqual(problems(welcome({ 'es-MX': { placeholders: 2 }, es_MX: { placeholders: 2 } })), ['messages.welcome.template.languages.es_MX: is the same language as "es-MX"']);
      assert.deepEqual(problems(welcome({ es: { placeholders: 2 } }, { language: 'en' })), ['messages.welcome.template.language: the default version "en" is not among the template\'s languages (es)']);
      assert.deepEqual(problems({ messages: { welcome: { text: 'Hi', template: { name: 'w', params: ['nmae'] } } } }), ['messages.welcome.template.params.0: "nmae" is not a value the flows fill (name, company, booking_url, meeting_time)']);
      assert.equal(problems({ languageFallback: ['es', 'klingon'] })[0], 'languageFallback.1: must be a language code as WhatsApp spells it, such as en, es or pt_BR (es-MX is read as es_MX)');
    });

    it('stops start-up naming the bad setting in the file', async () => {
      const file = await writeConfig((doc) => {
        (doc.tenants.demo as unknown as { leads: Record<string, unknown> }).leads.messages = welcome({ en: { placeholders: 2 }, es: { placeholders: 1 } }).messages;
      });
      assert.match(configError({ SWITCHBOARD_CONFIG: file }), /switchboard\.yaml: tenants\.demo\.leads\.messages\.welcome\.template\.languages\.es\.placeholders: declares 1 placeholder\(s\) but the flow's params fill 2/);
    });
  });
});
