import { pino } from 'pino';
import type { Logger } from 'pino';
import pinoPretty from 'pino-pretty';
import { activeTraceIds } from './trace-context.js';

export type { Logger };

/** `pretty`: one readable, coloured line per entry (a terminal); `json`: one object per line (anything else). */
export type LogFormat = 'json' | 'pretty';

/**
 * The format a process logs in unless LOG_FORMAT says: readable in a terminal, JSON for log
 * collectors. `npm start`'s children inherit its terminal, so each decides by its own stdout.
 */
export function logFormatFor(setting: LogFormat | undefined, stdout: { isTTY?: boolean } = process.stdout): LogFormat {
  return setting ?? (stdout.isTTY ? 'pretty' : 'json');
}

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

/**
 * Structured logs (stdout unless a destination is given), with secrets and phone numbers redacted
 * before they are written in either format, and the active trace's ids on every line while tracing
 * is on. With a destination and no format, JSON (tests read it).
 */
export function createLogger(options: { level?: string; name: string; destination?: pino.DestinationStream; format?: LogFormat }): Logger {
  const format = options.format ?? (options.destination ? 'json' : logFormatFor(undefined));
  const settings: pino.LoggerOptions = {
    name: options.name,
    level: options.level ?? 'info',
    base: { service: options.name },
    timestamp: pino.stdTimeFunctions.isoTime,
    redact: { paths: redactPaths, censor: '[REDACTED]' },
    // Level labels for collectors; the pretty printer colours by the numbers.
    ...(format === 'json' ? { formatters: { level: (label: string) => ({ level: label }) } } : {}),
    mixin: activeTraceIds,
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
  if (format === 'pretty') {
    // In this thread and synchronous (no worker thread to outlive a process.exit), fed the JSON
    // pino has already redacted.
    const pretty = pinoPretty({
      colorize: options.destination ? false : pinoPretty.isColorSupported,
      singleLine: true,
      translateTime: 'SYS:HH:MM:ss.l',
      ignore: 'pid,hostname,service',
      sync: true,
      ...(options.destination ? { destination: options.destination } : {}),
    });
    return pino(settings, pretty);
  }
  return options.destination ? pino(settings, options.destination) : pino(settings);
}
