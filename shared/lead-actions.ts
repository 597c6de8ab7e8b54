/**
 * What each operator update of the lead workflow takes, checked strictly by its validator: whoever
 * sends it (our API, the Temporal CLI, the Web UI), an unknown field, a missing required one or one
 * of the wrong type is refused with a message naming the field. Free of zod (it runs in the
 * workflow bundle); the API's zod schemas (api/routes/leads.ts) use the same limits.
 */
import { formatProblems, object, oneOf, optional, required, shapeProblems, text } from './strict-shape.js';
import type { Shape } from './strict-shape.js';
import type { FlowName, Meeting } from './leads.js';
import { flowNames, isTimeZone } from './vocabulary.js';

export const operatorNameMaxLength = 200;
export const actionReasonMaxLength = 500;
export const stepKeyMaxLength = 300;
export const timeZoneMaxLength = 64;
export const meetingIdMaxLength = 200;
export const senderNameMaxLength = 100;

export interface OperatorInput {
  /** Who did it, for the timeline. Our API sets it from the credential; a Web UI or CLI sender may name themselves. */
  operator?: string;
  reason?: string;
}
export type StepAction = OperatorInput & { step: string };
export type TimeZoneAction = OperatorInput & { timeZone: string };
export type FlowAction = OperatorInput & { flow: FlowName };
export type BookingAction = OperatorInput & { meeting: Meeting };
/** `sender`: the name of one of the tenant's WhatsApp numbers (`default` or a key of `whatsapp.senders`). */
export type SenderAction = OperatorInput & { sender: string };

const isoInstant = /^\d{4}-\d{2}-\d{2}T\d{2}:\d{2}(:\d{2}(\.\d+)?)?(Z|[+-]\d{2}:?\d{2})$/;
const instant = text({
  min: 1,
  max: 64,
  test: (value) => (isoInstant.test(value) && Number.isFinite(Date.parse(value)) ? undefined : `must be an ISO 8601 date-time with an offset, got ${JSON.stringify(value)}`),
});

const operatorFields: Shape = {
  operator: optional(text({ min: 1, max: operatorNameMaxLength })),
  reason: optional(text({ max: actionReasonMaxLength })),
};
const stepField = required(text({ min: 1, max: stepKeyMaxLength }));

export const leadUpdateShapes = {
  pause: operatorFields,
  resume: operatorFields,
  skipStep: { step: stepField, ...operatorFields },
  sendNow: { step: stepField, ...operatorFields },
  changeTimeZone: {
    timeZone: required(text({ min: 1, max: timeZoneMaxLength, test: (value) => (isTimeZone(value) ? undefined : `${JSON.stringify(value)} is not an IANA time zone`) })),
    ...operatorFields,
  },
  cancelFlow: { flow: required(oneOf(flowNames)), ...operatorFields },
  markBooked: {
    meeting: required(object({ id: required(text({ min: 1, max: meetingIdMaxLength })), startsAt: required(instant), endsAt: optional(instant) })),
    ...operatorFields,
  },
  reassignSender: { sender: required(text({ min: 1, max: senderNameMaxLength })), ...operatorFields },
} as const satisfies Record<string, Shape>;
export type LeadUpdateName = keyof typeof leadUpdateShapes;

/** An example of the one argument each update takes, for the message that refuses a wrong one. */
const examples: Record<LeadUpdateName, string> = {
  pause: '{"reason": "…"}',
  resume: '{}',
  skipStep: '{"step": "follow_up:2"}',
  sendNow: '{"step": "follow_up:2"}',
  changeTimeZone: '{"timeZone": "Europe/Berlin"}',
  cancelFlow: '{"flow": "follow_up"}',
  markBooked: '{"meeting": {"id": "m1", "startsAt": "2026-01-05T15:00:00Z"}}',
  reassignSender: '{"sender": "iberia"}',
};

/**
 * Why the arguments an update arrived with are unusable, if they are: the update takes one JSON
 * object (none at all counts as `{}`, which the updates without required fields accept).
 */
export function leadUpdateInputProblem(update: LeadUpdateName, args: readonly unknown[]): string | undefined {
  const oneObject = `takes one JSON object such as ${examples[update]}`;
  if (args.length > 1) return `invalid ${update} input: ${oneObject}, got ${args.length} arguments`;
  if (args[0] === null) return `invalid ${update} input: ${oneObject}, got null`;
  const problems = shapeProblems(args[0] ?? {}, leadUpdateShapes[update]);
  return problems.length > 0 ? `invalid ${update} input: ${formatProblems(problems)}` : undefined;
}
