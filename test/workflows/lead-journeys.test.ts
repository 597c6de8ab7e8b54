/**
 * Lead journeys at real durations (days), on Temporal's time-skipping server: each checks the exact
 * messages a lead receives, over the real API, workers, PostgreSQL and the WhatsApp sandbox.
 */
import assert from 'node:assert/strict';
import { localParts } from '../../shared/send-window.js';
import { signature, startLeadWorld } from '../harness/lead-world.js';
import type { LeadWorld } from '../harness/lead-world.js';
import { uniqueId } from '../harness/resources.js';

const minute = 60_000;
const hour = 60 * minute;
const day = 24 * hour;
const iso = (ms: number): string => new Date(ms).toISOString();

interface JourneyContext {
  world: LeadWorld;
  leadId: string;
  phone: string;
  /** Monday 10:00 in New York, the journey's start. */
  start: number;
  /** POSTs a CRM event for this lead. */
  crm: (event: string, extra?: Record<string, unknown>) => Promise<void>;
  /** Skips to `start + offset`, then waits for the lead to settle. */
  at: (offset: number) => Promise<void>;
}

interface Journey {
  name: string;
  timeZone?: string;
  run(context: JourneyContext): Promise<void>;
  /** The exact messages the lead receives, in order. */
  expect: string[];
  check?(context: JourneyContext): Promise<void> | void;
}

/** The next Monday 10:00 in New York at or after `now` (the time-skipping clock starts at "now"). */
function nextMonday10(now: number): number {
  let candidate = now + 7 * day;
  for (let offset = 0; offset < 8 * day; offset += hour) {
    const at = now + offset;
    const local = localParts(at, 'America/New_York');
    if (local.weekday === 1 && local.hour === 10) {
      candidate = at - local.minute * minute - local.second * 1000;
      if (candidate >= now) break;
    }
  }
  return candidate;
}

const journeys: Journey[] = [
  {
    name: 'reply after follow-up 1: the remaining follow-ups are skipped',
    async run({ crm, at, world, phone }) {
      await crm('lead.created');
      await at(1 * day + hour);
      await world.reply(phone, 'Sounds interesting, tell me more');
      await at(9 * day);
    },
    expect: ['template:welcome', 'template:follow_up'],
    async check({ world, leadId }) {
      const skipped = (await world.timeline(leadId)).filter((entry) => entry.kind === 'skipped' && entry.flow === 'follow_up');
      assert.deepEqual(skipped.map((entry) => entry.step).sort(), ['2', '3']);
      assert.ok(skipped.every((entry) => entry.cause.startsWith('lead replied')));
    },
  },
  {
    name: 'booked → reminders → attended',
    async run({ crm, at, start }) {
      await crm('lead.created');
      await at(hour);
      await crm('meeting.booked', { meeting: { id: 'm1', starts_at: iso(start + 3 * day + 5 * hour), ends_at: iso(start + 3 * day + 6 * hour) } });
      // The CRM marks attendance 15 minutes after the meeting ends, within the no-show grace period.
      await at(3 * day + 6 * hour + 15 * minute);
      await crm('meeting.attended', { meeting: { id: 'm1' } });
      await at(5 * day);
    },
    expect: ['template:welcome', 'template:booking_confirmation', 'template:meeting_reminder', 'template:meeting_reminder', 'template:post_meeting'],
  },
  {
    name: 'booked → no-show → rebooked → attended',
    async run({ crm, at, start }) {
      await crm('lead.created');
      await at(hour);
      await crm('meeting.booked', { meeting: { id: 'm1', starts_at: iso(start + 1 * day + 4 * hour), ends_at: iso(start + 1 * day + 5 * hour) } });
      // The meeting ends with no attendance recorded: after the grace period it is a no-show.
      await at(1 * day + 6 * hour);
      await crm('meeting.booked', { meeting: { id: 'm2', starts_at: iso(start + 3 * day + 4 * hour), ends_at: iso(start + 3 * day + 5 * hour) } });
      await at(3 * day + 5 * hour + 15 * minute);
      await crm('meeting.attended', { meeting: { id: 'm2' } });
      await at(6 * day);
    },
    expect: [
      'template:welcome',
      'template:booking_confirmation',
      'template:meeting_reminder', // T-1h (booked 28 h ahead: T-24h at 14:00 Monday was still ahead)
      'template:meeting_reminder',
      'template:no_show_rebook',
      'template:booking_confirmation',
      'template:meeting_reminder',
      'template:meeting_reminder',
      'template:post_meeting',
    ],
    async check({ world, leadId }) {
      const view = await world.view(leadId);
      assert.ok(!view.planned.some((step) => step.flow === 'no_show'), 'rebooking stopped the no-show attempts');
    },
  },
  {
    name: 'rescheduled twice: only the final time gets reminders',
    async run({ crm, at, start }) {
      await crm('lead.created');
      await at(hour);
      await crm('meeting.booked', { meeting: { id: 'm1', starts_at: iso(start + 3 * day + 5 * hour) } });
      await at(2 * hour);
      await crm('meeting.rescheduled', { meeting: { id: 'm1', starts_at: iso(start + 4 * day + 5 * hour) } });
      await at(3 * hour);
      await crm('meeting.rescheduled', { meeting: { id: 'm1', starts_at: iso(start + 8 * day + 5 * hour) } });
      await at(8 * day + 5 * hour);
    },
    expect: ['template:welcome', 'template:booking_confirmation', 'template:meeting_rescheduled', 'template:meeting_rescheduled', 'template:meeting_reminder', 'template:meeting_reminder'],
    async check({ world, leadId, start }) {
      const sent = (await world.timeline(leadId)).filter((entry) => entry.kind === 'sent' && entry.flow === 'reminder');
      assert.deepEqual(sent.map((entry) => entry.step), ['24h', '1h']);
      assert.ok(sent.every((entry) => (entry.detail?.messageId as string | undefined) !== undefined));
      const canceled = (await world.timeline(leadId)).filter((entry) => entry.kind === 'skipped' && entry.flow === 'reminder');
      assert.equal(canceled.length, 4, 'two reminders for each of the two earlier times were canceled');
      void start;
    },
  },
  {
    name: 'opted out in the middle of the flow: nothing more is sent',
    async run({ crm, at }) {
      await crm('lead.created');
      await at(1 * day + hour);
      await crm('lead.opted_out', { reason: 'asked on the phone' });
      await at(10 * day);
    },
    expect: ['template:welcome', 'template:follow_up'],
    async check({ world, leadId, phone }) {
      const view = await world.view(leadId).catch(() => undefined);
      if (view) assert.equal(view.stage, 'opted_out');
      const rows = await world.db.query('SELECT 1 FROM suppressions WHERE tenant_id = $1 AND phone = $2', [world.tenantId, phone]);
      assert.equal(rows.rowCount, 1, 'the number is suppressed');
    },
  },
  {
    name: 'a lead in Tokyo: the welcome waits out the night there, follow-ups land in Tokyo business hours',
    timeZone: 'Asia/Tokyo',
    async run({ crm, at }) {
      // Monday 10:00 in New York is Tuesday 00:00 in Tokyo: quiet hours there.
      await crm('lead.created');
      await at(4 * day);
    },
    expect: ['template:welcome', 'template:follow_up', 'template:follow_up'],
    check({ world, phone, start }) {
      void start;
      for (const message of world.sentTo(phone)) {
        const local = localParts(Date.parse(message.acceptedAt), 'Asia/Tokyo');
        assert.ok(local.weekday <= 5 && local.hour >= 9 && local.hour < 19, `sent ${message.acceptedAt}, ${local.hour}:00 Tokyo time`);
      }
      const first = world.sentTo(phone)[0];
      assert.ok(first, 'a welcome was sent');
      const sentLocal = localParts(Date.parse(first.acceptedAt), 'Asia/Tokyo');
      assert.deepEqual([sentLocal.weekday, sentLocal.hour, sentLocal.minute], [2, 9, 0], `the welcome waited for Tuesday 09:00 in Tokyo (sent ${first.acceptedAt}, start ${iso(start)})`);
    },
  },
  {
    name: 'free text inside the 24 h window, templates outside it',
    async run({ world, crm, at, phone, start }) {
      await crm('lead.created');
      await at(30 * minute);
      await world.reply(phone, 'Hi! Can we talk on Wednesday?');
      await at(hour);
      // Inside the window opened by the reply: the confirmation goes as free text.
      await crm('meeting.booked', { meeting: { id: 'm1', starts_at: iso(start + 2 * day + 5 * hour), ends_at: iso(start + 2 * day + 6 * hour) } });
      // The reminders come more than 24 h after the reply: templates again.
      await at(2 * day + 4 * hour + 30 * minute);
    },
    expect: ['template:welcome', 'text', 'template:meeting_reminder', 'template:meeting_reminder'],
    check({ world, phone }) {
      const confirmation = world.sentTo(phone)[1];
      assert.match(confirmation?.text ?? '', /^Thanks Sam, your meeting is booked for Wed \d+ \w+, 15:00\.$/);
    },
  },
  {
    name: 'a free text WhatsApp refuses outside its window (131047) is re-sent as the approved template',
    async run({ world, crm, at, phone, leadId }) {
      await crm('lead.created');
      await at(30 * minute);
      // A reply our API hears about (another channel) while WhatsApp itself saw none: its window stays shut.
      await world.inboundWebhook(phone, 'Please book me in');
      await at(hour);
      await crm('meeting.booked', { meeting: { id: 'm1', starts_at: iso((await world.now()) + 3 * day), ends_at: iso((await world.now()) + 3 * day + hour) } });
      await at(2 * hour);
      const failed = (await world.timeline(leadId)).filter((entry) => entry.kind === 'failed');
      assert.ok(failed.some((entry) => entry.detail?.errorCode === 131047), 'the 131047 failure is in the timeline');
    },
    expect: ['template:welcome', 'text', 'template:booking_confirmation'],
  },
];

describe('lead journeys (time-skipping, real durations)', function () {
  this.timeout(300_000);
  let world: LeadWorld;
  before(async () => {
    world = await startLeadWorld();
  });
  after(async () => {
    await world.stop();
  });

  for (const journey of journeys) {
    it(journey.name, async () => {
      const leadId = uniqueId('lead');
      const phone = `+1415555${String(Math.floor(Math.random() * 9000) + 1000)}`;
      const start = nextMonday10(await world.now());
      await world.env.sleep(start - (await world.now()));
      let sequence = 0;
      const context: JourneyContext = {
        world,
        leadId,
        phone,
        start,
        crm: async (event, extra = {}) => {
          sequence++;
          const body = {
            event_id: `${leadId}-${sequence}`,
            event,
            lead_id: leadId,
            occurred_at: iso(await world.now()),
            ...(event === 'lead.created' ? { lead: { name: 'Sam Lee', phone, ...(journey.timeZone ? { time_zone: journey.timeZone } : {}) } } : {}),
            ...extra,
          };
          const response = await world.crm(body);
          assert.equal(response.status, 202, await response.text());
        },
        at: async (offset) => {
          const now = await world.now();
          if (start + offset > now) await world.env.sleep(start + offset - now);
          await world.idle(leadId);
        },
      };
      await journey.run(context);
      assert.deepEqual(world.sentTo(phone).map(signature), journey.expect, JSON.stringify(world.sentTo(phone).map((message) => [signature(message), message.acceptedAt])));
      await journey.check?.(context);
      // Every step that was not sent says why.
      for (const entry of (await world.timeline(leadId)).filter((item) => item.kind === 'skipped')) {
        assert.ok(entry.cause.trim().length > 0 && typeof entry.detail?.reason === 'string', `skipped ${entry.flow}:${entry.step} carries its reason`);
      }
      // Close the lead so its timers do not run on through the next journeys.
      await context.crm('lead.status_changed', { status: 'lost' });
    });
  }
});
