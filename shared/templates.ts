/**
 * Template resolution: which registered language version of a flow's WhatsApp template a lead gets,
 * and the body parameters that version takes. Pure and zod-free (the lead workflow imports it
 * through lead-plan.ts, and every replay evaluates the bundle's modules anew): no I/O, no clock,
 * no Intl.
 */

/** The values flows fill placeholders from (shared/lead-plan.ts `messageValues`). */
export const templateValueNames = ['name', 'company', 'booking_url', 'meeting_time'] as const;

/** One language version of a template, as the tenant registered it with Meta. */
export interface TemplateVersion {
  /** The version's body placeholders {{1}} … {{n}}, in order, each named by the value that fills it. */
  placeholders: string[];
  /** Free text in this language (inside the 24 h window); else the flow's `text`. */
  text?: string;
}

/** A flow's template as the workflow holds it. Runs started before per-language versions carry no `languages`. */
export interface TemplateRegistration {
  name: string;
  /** The default version: what goes when neither the lead's language nor the tenant's chain has one. */
  language: string;
  params: string[];
  languages?: Record<string, TemplateVersion>;
}

const tagPattern = /^([a-zA-Z]{2,3})(?:[-_]([a-zA-Z]{2}))?$/;

/** Whether a string is a language code WhatsApp knows the shape of: `es`, `es_MX`, or BCP 47 `es-MX`. */
export function isLanguageTag(tag: string): boolean {
  return tagPattern.test(tag);
}

/** A language code as Meta spells it (`es-mx` and `es_MX` are both `es_MX`); anything else unchanged. */
export function canonicalLanguage(tag: string): string {
  const match = tagPattern.exec(tag);
  if (!match) return tag;
  const [, language = '', region] = match;
  return region ? `${language.toLowerCase()}_${region.toUpperCase()}` : language.toLowerCase();
}

const baseOf = (tag: string): string => canonicalLanguage(tag).split('_')[0] ?? tag;

/** The template's versions in registration order; a single-language template is one version whose placeholders are the flow's params. */
export function templateVersions(template: TemplateRegistration): Array<[string, TemplateVersion]> {
  return template.languages ? Object.entries(template.languages) : [[template.language, { placeholders: template.params }]];
}

/** How the version was chosen. */
export type LanguageMatch =
  /** The lead's own language: exactly, its base language (`es` for `es_MX`), or another region of it. */
  | 'lead'
  /** An entry of the tenant's fallback chain (the lead's language has no version, or the lead has none). */
  | 'fallback'
  /** The template's default version: nothing else matched. */
  | 'default';

export interface ResolvedTemplate {
  language: string;
  version: TemplateVersion;
  match: LanguageMatch;
  /** The lead's language, when it had one and it was not what went. */
  requested?: string;
}

/**
 * The version for a tag: exactly that tag, else its base language, else the first registered
 * version of the same base language (`es_MX` for a lead who is just `es`).
 */
function versionFor(versions: ReadonlyArray<[string, TemplateVersion]>, tag: string): [string, TemplateVersion] | undefined {
  const wanted = canonicalLanguage(tag);
  const base = baseOf(wanted);
  return versions.find(([language]) => language === wanted) ?? versions.find(([language]) => language === base) ?? versions.find(([language]) => baseOf(language) === base);
}

/**
 * The version a lead gets: its own language (exact, base, other region), then each entry of the
 * tenant's chain the same way, then the template's default. Deterministic: registration order
 * breaks ties, and the same inputs always give the same version.
 */
export function resolveTemplate(template: TemplateRegistration, leadLanguage: string | undefined, chain: readonly string[] = []): ResolvedTemplate {
  const versions = templateVersions(template);
  const requested = leadLanguage === undefined ? undefined : canonicalLanguage(leadLanguage);
  const own = requested === undefined ? undefined : versionFor(versions, requested);
  if (own) return { language: own[0], version: own[1], match: 'lead', ...(own[0] !== requested && requested !== undefined ? { requested } : {}) };
  const withRequested = requested === undefined ? {} : { requested };
  for (const tag of chain) {
    const found = versionFor(versions, tag);
    if (found) return { language: found[0], version: found[1], match: 'fallback', ...withRequested };
  }
  const fallback = versions.find(([language]) => language === template.language) ?? versions[0];
  return { language: fallback?.[0] ?? template.language, version: fallback?.[1] ?? { placeholders: template.params }, match: 'default', ...withRequested };
}

/**
 * Why a template message may not be sent as it stands, checked against the tenant's registration
 * before WhatsApp is called: an unregistered language would be refused with 132001, a parameter
 * count other than the version's placeholders with 132000. Undefined when it is fine.
 */
export function templateMessageProblem(registered: readonly TemplateRegistration[], message: { name: string; language: string; params: readonly string[] }): string | undefined {
  const template = registered.find((candidate) => candidate.name === message.name);
  if (!template) return `template "${message.name}" is not registered in the tenant's configuration`;
  const version = templateVersions(template).find(([language]) => language === message.language)?.[1];
  if (!version) return `template "${message.name}" has no "${message.language}" version (registered: ${templateVersions(template).map(([language]) => language).join(', ')})`;
  if (version.placeholders.length !== message.params.length) {
    return `template "${message.name}" (${message.language}) declares ${version.placeholders.length} placeholder(s), the message carries ${message.params.length} parameter(s)`;
  }
  return undefined;
}

/** The ApplicationFailure type of a send refused before WhatsApp was called: the message does not fit the template's registration. */
export const templateMismatchFailureType = 'TemplateMismatch';
