/**
 * Which of a tenant's WhatsApp numbers a lead is written from. The lead workflow carries the routes
 * (names and rules, no credentials) in its input and chooses with this pure code, as the preview
 * does: free of zod and Node built-ins (it runs in the workflow bundle).
 */
import type { LeadProfile } from './leads.js';

/** Meta's quality rating of a business number. */
export const senderQualityRatings = ['GREEN', 'YELLOW', 'RED', 'UNKNOWN'] as const;
export type SenderQuality = (typeof senderQualityRatings)[number];

/** The name of the tenant's main number (`whatsapp.phoneNumberId`). */
export const defaultSenderName = 'default';

/** One sender number as the workflow sees it: its name and the leads it serves. */
export interface SenderRoute {
  name: string;
  /** ISO 3166 regions of the leads' phone numbers, e.g. ES, MX. */
  countries?: string[];
  teams?: string[];
  /** Lead owners (CRM user ids or e-mails) whose own line this is. */
  owners?: string[];
  /** A RED number takes no new leads (Meta restricts numbers that stay red); leads it has keep it. */
  quality?: SenderQuality;
}

export type SenderRule = 'owner' | 'team' | 'country' | 'default';

export interface SenderChoice {
  sender: string;
  /** Which rule chose it. */
  rule: SenderRule;
}

/**
 * The sender for a lead that has none yet: the owner's own line, else the team's, else the one for
 * the lead's country, else the default. Among several matches the first configured wins; a RED
 * number is passed over.
 */
export function chooseSender(profile: Pick<LeadProfile, 'owner' | 'team' | 'country'>, routes: readonly SenderRoute[] | undefined): SenderChoice {
  const open = (routes ?? []).filter((route) => route.name !== defaultSenderName && route.quality !== 'RED');
  const by = (rule: Exclude<SenderRule, 'default'>, value: string | undefined, listed: (route: SenderRoute) => readonly string[] | undefined): SenderChoice | undefined => {
    if (value === undefined) return undefined;
    const wanted = rule === 'country' ? value.toUpperCase() : value.toLowerCase();
    const found = open.find((route) => (listed(route) ?? []).some((item) => (rule === 'country' ? item.toUpperCase() : item.toLowerCase()) === wanted));
    return found ? { sender: found.name, rule } : undefined;
  };
  return (
    by('owner', profile.owner, (route) => route.owners) ??
    by('team', profile.team, (route) => route.teams) ??
    by('country', profile.country, (route) => route.countries) ?? { sender: defaultSenderName, rule: 'default' }
  );
}

/** Whether an operator may move a lead to this sender. */
export function isKnownSender(name: string, routes: readonly SenderRoute[] | undefined): boolean {
  return name === defaultSenderName || (routes ?? []).some((route) => route.name === name);
}

/** The names an operator may choose from, for messages that refuse another. */
export function senderNames(routes: readonly SenderRoute[] | undefined): string[] {
  return [defaultSenderName, ...(routes ?? []).map((route) => route.name).filter((name) => name !== defaultSenderName)];
}
