import { pino } from 'pino';
import type { Logger } from 'pino';

export type { Logger };

/** Fields that may carry secrets or personal data, wherever they appear (two levels deep). */
const sensitiveKeys = [
  'authorization', 'cookie', 'password', 'secret', 'token', 'apiKey', 'api_key', 'signature',
  'phone', 'from', 'to', 'caller_phone', 'agent_phone', 'email', 'body', 'transcript', 'databaseUrl',
];
const redactPaths = sensitiveKeys.flatMap((key) => [key, `*.${key}`, `*.*.${key}`]);

// Seven or more digits, optionally with a leading + and separators: phone numbers in free text.
const phoneLike = /\+?\d[\d\s().-]{5,}\d/g;
// Credentials in connection strings.
const urlCredentials = /(\w+:\/\/[^:/\s]+:)[^@\s]+@/g;

/** Masks phone numbers and URL credentials inside free text, e.g. error messages. */
export function scrubText(text: string): string {
  return text.replace(urlCredentials, '$1[REDACTED]@').replace(phoneLike, (match) => {
    const digits = match.replace(/\D/g, '');
    return digits.length >= 7 ? `[phone …${digits.slice(-2)}]` : match;
  });
}

/** Structured JSON logs (stdout unless a destination is given), with secrets and phone numbers redacted. */
export function createLogger(options: { level?: string; name: string; destination?: pino.DestinationStream }): Logger {
  const settings: pino.LoggerOptions = {
    name: options.name,
    level: options.level ?? 'info',
    base: { service: options.name },
    timestamp: pino.stdTimeFunctions.isoTime,
    redact: { paths: redactPaths, censor: '[REDACTED]' },
    formatters: { level: (label) => ({ level: label }) },
    serializers: {
      err: (error: Error) => ({ type: error.name, message: scrubText(error.message), stack: error.stack ? scrubText(error.stack) : undefined }),
    },
    hooks: {
      logMethod(args, method) {
        const scrubbed = args.map((arg) => (typeof arg === 'string' ? scrubText(arg) : arg)) as Parameters<typeof method>;
        method.apply(this, scrubbed);
      },
    },
  };
  return options.destination ? pino(settings, options.destination) : pino(settings);
}
