/** A Zendesk-like helpdesk: tickets carry our effect key as `external_id`, which is how we find them again. */
import type { TicketingConfig } from '../config/schema.js';
import type { TicketPriority } from '../shared/call-outcomes.js';
import { OutsideSystemError, requestJson } from './http.js';

export interface TicketInput {
  externalId: string;
  subject: string;
  description: string;
  priority: TicketPriority;
  queue: string;
  requester: { name?: string; phone?: string; email?: string };
  tags: string[];
}

export interface TicketingAdapter {
  createTicket(input: TicketInput): Promise<{ id: number }>;
  findTicket(externalId: string): Promise<{ id: number } | undefined>;
  queueFor(issueType: string | undefined): string;
}

export function createTicketingAdapter(config: TicketingConfig): TicketingAdapter {
  const base = config.baseUrl.replace(/\/$/, '');
  const headers = { authorization: `Bearer ${config.token}` };
  return {
    async createTicket(input) {
      const response = await requestJson<{ ticket?: { id: number } }>({
        system: 'Ticketing',
        method: 'POST',
        url: `${base}/api/v2/tickets`,
        headers,
        json: {
          ticket: {
            subject: input.subject,
            description: input.description,
            priority: input.priority,
            queue: input.queue,
            requester: input.requester,
            external_id: input.externalId,
            tags: input.tags,
          },
        },
      });
      const id = response.body?.ticket?.id;
      if (!id) throw new OutsideSystemError('Ticketing', 'rejected', 'ticket response had no id');
      return { id };
    },
    async findTicket(externalId) {
      const response = await requestJson<{ tickets?: Array<{ id: number }> }>({
        system: 'Ticketing',
        url: `${base}/api/v2/tickets?external_id=${encodeURIComponent(externalId)}`,
        headers,
      });
      const found = response.body?.tickets?.[0];
      return found ? { id: found.id } : undefined;
    },
    queueFor(issueType) {
      if (!issueType) return config.defaultQueue;
      const match = Object.entries(config.queueByIssueType).find(([type]) => type.toLowerCase() === issueType.toLowerCase());
      return match?.[1] ?? config.defaultQueue;
    },
  };
}
