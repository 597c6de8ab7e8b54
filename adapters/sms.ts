/**
 * Twilio Programmable Messaging: one SMS per call, `POST /2010-04-01/Accounts/{AccountSid}/Messages.json`,
 * form-encoded `To`, `From` or `MessagingServiceSid`, `Body` and `StatusCallback`, HTTP Basic with
 * AccountSid:AuthToken (or an API key). Twilio takes no idempotency key: the effect ledger above us
 * provides exactly-once, and the status callback URL carries our effect key, so a callback names
 * the step even for a send whose answer we never got.
 *
 * Twilio answers 201 with the Message resource (`sid` SM…, `status` queued, or accepted through a
 * Messaging Service) and refuses with `{code, message, more_info, status}` (twilio-node RestException).
 */
import type { SmsConfig } from '../config/schema.js';
import type { RotatingSecret } from '../config/schema.js';
import { currentSecret } from '../security/secrets.js';
import { OutsideSystemError, requestJson } from './http.js';

/** Twilio's error body (twilio-node `RestException`: code, message, more_info, status). */
export interface TwilioErrorBody {
  code?: number;
  message?: string;
  more_info?: string;
  status?: number;
}

/** The fields of the Message resource we read (api/v2010/account/message). */
export interface TwilioMessage {
  sid: string;
  status: string;
  error_code?: number | null;
  error_message?: string | null;
  num_segments?: string;
}

/** What a refused send means for the lead: the code decides, not the HTTP status. */
export type SmsRefusal =
  /** 21610: the recipient replied STOP to this sender; Twilio will refuse every message to them. */
  | { action: 'opted_out'; code: number; reason: string }
  /** The number cannot get SMS (21211 invalid, 21612 unreachable, 21614 not a mobile, 21408 region not enabled). */
  | { action: 'invalid_number'; code: number; reason: string }
  /** Our account or request is wrong (21606 From not ours, 2160x missing fields, 20003 credentials): no message will go. */
  | { action: 'permanent'; code: number; reason: string; kind: 'rejected' | 'unauthorized' };

/** Twilio's codes for refused sends (twilio.com/docs/api/errors). */
export const smsErrorTable: Readonly<Record<number, SmsRefusal>> = {
  21610: { action: 'opted_out', code: 21610, reason: 'attempt to send to an unsubscribed recipient (they replied STOP)' },
  21211: { action: 'invalid_number', code: 21211, reason: "invalid 'To' phone number" },
  21612: { action: 'invalid_number', code: 21612, reason: "the 'To' number is not reachable by SMS" },
  21614: { action: 'invalid_number', code: 21614, reason: "the 'To' number is not a mobile number" },
  21408: { action: 'invalid_number', code: 21408, reason: 'sending to this region is not enabled on the account' },
  21606: { action: 'permanent', code: 21606, reason: "the 'From' number is not a message-capable number of this account", kind: 'rejected' },
  20003: { action: 'permanent', code: 20003, reason: 'authentication failed (account SID, auth token or API key)', kind: 'unauthorized' },
};

/** A send Twilio refused, with the code's meaning. */
export class SmsSendError extends OutsideSystemError {
  constructor(
    readonly refusal: SmsRefusal,
    message: string,
    status: number | undefined,
    body: unknown,
  ) {
    super('Twilio', refusal.action === 'permanent' ? refusal.kind : 'rejected', message, status, undefined, body);
  }
}

function refusalOf(error: OutsideSystemError): OutsideSystemError {
  const body = error.body as TwilioErrorBody | undefined;
  const code = typeof body?.code === 'number' ? body.code : undefined;
  // Outages and throttling (20429, 5xx) stay retryable whatever their code.
  if (code === undefined || error.retryable) return error;
  const refusal = smsErrorTable[code] ?? { action: 'permanent', code, reason: `Twilio error ${code}`, kind: error.kind === 'unauthorized' ? 'unauthorized' : 'rejected' };
  // Twilio's own message can quote the number ("The 'To' number +1… is not a valid phone number"): only the code and our reason are kept.
  return new SmsSendError(refusal, `${error.message.replace(/^Twilio: /, '')} (code ${code}: ${refusal.reason})`, error.status, { code, status: body?.status, more_info: body?.more_info });
}

export interface SmsAdapter {
  /** Sends one SMS; Twilio reports what becomes of it to `statusCallback`. */
  send(to: string, body: string, statusCallback: string): Promise<{ sid: string; status: string }>;
}

export function createSmsAdapter(config: SmsConfig, secrets: { twilioAuthToken?: RotatingSecret | undefined; twilioApiKeySecret?: string | undefined }): SmsAdapter {
  const url = `${config.baseUrl.replace(/\/$/, '')}/2010-04-01/Accounts/${config.accountSid}/Messages.json`;
  const user = config.apiKeySid ?? config.accountSid;
  const password = config.apiKeySid ? secrets.twilioApiKeySecret : currentSecret(secrets.twilioAuthToken);
  if (!password) throw new Error('Twilio SMS: no credential configured (secrets.twilioAuthToken, or secrets.twilioApiKeySecret with sms.apiKeySid)');
  const authorization = `Basic ${Buffer.from(`${user}:${password}`).toString('base64')}`;
  return {
    async send(to, body, statusCallback) {
      const form = new URLSearchParams({ To: to, Body: body, StatusCallback: statusCallback });
      if (config.messagingServiceSid) form.set('MessagingServiceSid', config.messagingServiceSid);
      else if (config.from) form.set('From', config.from);
      try {
        const answer = await requestJson<TwilioMessage>({ system: 'Twilio', method: 'POST', url, form, headers: { authorization } });
        const message = answer.body;
        if (!message || typeof message.sid !== 'string' || !/^(SM|MM)[0-9a-fA-F]{32}$/.test(message.sid)) {
          // Accepted, by the status: the message exists, but we cannot name it. Unknown outcome, left to the ledger.
          throw new OutsideSystemError('Twilio', 'unavailable', `POST Messages.json answered ${answer.status} without a message sid`, answer.status >= 500 ? answer.status : undefined);
        }
        return { sid: message.sid, status: message.status };
      } catch (error) {
        if (error instanceof OutsideSystemError && !(error instanceof SmsSendError)) throw refusalOf(error);
        throw error;
      }
    },
  };
}
