/**
 * A lead's timeline in causal order. Its entries come with two clocks: the workflow's (millisecond
 * instants) and the providers' (WhatsApp status and reply times are whole seconds, and any
 * provider's clock may be skewed). Read in stored time order, a message's "delivered" and "read"
 * could come before its "sent". Each message goes scheduled → sent → delivered → read, and a reply
 * comes after the statuses the provider reported no later than it; an entry reported earlier than
 * the stage before it is shown at that stage's time (its own time kept as `reportedAt`), and after it.
 */
import type { TimelineEntry } from './leads.js';

/** The stages of one message, in the order they can happen. A failure reported by webhook stands in for delivery. */
const messageStage = { scheduled: 0, sent: 1, delivered: 2, read: 3, failed: 2 } as const;
const replyStage = 4;
/** Status entries are written on the webhook's arrival (ingestion/ingest.ts), keyed `status:<message id>:<status>`. */
const isProviderStatus = (entry: TimelineEntry): boolean => entry.entryKey.startsWith('status:');

export type CausalEntry<T extends TimelineEntry> = T & {
  /** The entry's own time, when it is shown later than that to keep the causal order. */
  reportedAt?: string;
};

const text = (value: unknown): string | undefined => (typeof value === 'string' && value.length > 0 ? value : undefined);

/**
 * The message (its step key) an entry is a stage of, if it is one: `scheduled:<key>`, `sent:<key>`,
 * and provider statuses (by the key they name, else by the message id the sent entry went out as).
 */
function messageOf(entry: TimelineEntry, keyOfMessageId: ReadonlyMap<string, string>): string | undefined {
  if (entry.kind === 'scheduled' && entry.entryKey.startsWith('scheduled:')) return entry.entryKey.slice('scheduled:'.length);
  if (entry.kind === 'sent' && entry.entryKey.startsWith('sent:')) return entry.entryKey.slice('sent:'.length);
  if ((entry.kind === 'delivered' || entry.kind === 'read' || entry.kind === 'failed') && isProviderStatus(entry)) {
    const messageId = text(entry.detail?.messageId);
    return text(entry.detail?.key) ?? (messageId ? (keyOfMessageId.get(messageId) ?? `message:${messageId}`) : undefined);
  }
  return undefined;
}

/**
 * The entries (given in stored order: time, then insertion) in causal order. Ties at one instant
 * keep the stored order, except that a status the provider reported no later than anything else
 * at that instant comes first, and an entry moved to keep the order comes after what it follows,
 * by stage (delivered, read, then the reply).
 */
export function inCausalOrder<T extends TimelineEntry>(entries: readonly T[]): Array<CausalEntry<T>> {
  const keyOfMessageId = new Map<string, string>();
  for (const entry of entries) {
    const messageId = text(entry.detail?.messageId);
    if (entry.kind === 'sent' && messageId && entry.entryKey.startsWith('sent:')) keyOfMessageId.set(messageId, entry.entryKey.slice('sent:'.length));
  }
  const items = entries.map((entry, index) => {
    const message = messageOf(entry, keyOfMessageId);
    const stage: number | undefined = message === undefined ? undefined : messageStage[entry.kind as keyof typeof messageStage];
    const reported = Date.parse(entry.at);
    return { entry, index, message, stage, reported, at: reported, moved: false };
  });

  // Each message's stages: no earlier than any earlier stage of the same message.
  const byMessage = new Map<string, typeof items>();
  for (const item of items) {
    if (item.message === undefined || item.stage === undefined) continue;
    const stages = byMessage.get(item.message);
    if (stages) stages.push(item);
    else byMessage.set(item.message, [item]);
  }
  for (const stages of byMessage.values()) {
    stages.sort((a, b) => (a.stage ?? 0) - (b.stage ?? 0) || a.index - b.index);
    for (const item of stages) {
      const before = stages.filter((other) => (other.stage ?? 0) < (item.stage ?? 0));
      if (before.length === 0) continue;
      const floor = Math.max(...before.map((other) => other.at));
      // A status at its send's very instant still follows it; the workflow's own entries at one instant are in order already.
      if (floor > item.reported || (floor === item.reported && isProviderStatus(item.entry))) {
        item.at = floor;
        item.moved = true;
      }
    }
  }
  // A reply comes after every status the provider reported no later than the reply itself.
  const statuses = items.filter((item) => isProviderStatus(item.entry) && item.stage !== undefined);
  for (const item of items) {
    if (item.entry.kind !== 'replied') continue;
    const before = statuses.filter((status) => status.reported <= item.reported);
    if (before.length === 0) continue;
    const floor = Math.max(...before.map((status) => status.at));
    // At the reply's own instant a status that kept its time comes first anyway; one moved there is placed after what it follows, so the reply goes after it.
    if (floor > item.reported || before.some((status) => status.at === item.reported && status.moved)) {
      item.at = floor;
      item.moved = true;
      item.stage = replyStage;
    }
  }

  // At one instant: statuses that kept their own time first, then the stored order, then what was moved there, by stage.
  const tie = (item: (typeof items)[number]): number => (item.moved ? 1 : isProviderStatus(item.entry) && item.stage !== undefined ? -1 : 0);
  const ordered = [...items].sort((a, b) => a.at - b.at || tie(a) - tie(b) || (a.moved && b.moved ? (a.stage ?? 0) - (b.stage ?? 0) : 0) || a.index - b.index);
  return ordered.map((item) => (item.moved && item.at !== item.reported ? { ...item.entry, at: new Date(item.at).toISOString(), reportedAt: item.entry.at } : item.entry));
}
