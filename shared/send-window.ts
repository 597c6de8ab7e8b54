/**
 * Business hours, quiet hours and weekdays in an explicit IANA time zone. Pure and deterministic
 * (Intl.DateTimeFormat with a `timeZone`, never the host's zone), so workflows can use it.
 */

export interface SendWindow {
  /** ISO weekdays (1 = Monday … 7 = Sunday). */
  days: number[];
  /** "HH:MM" local, inclusive. */
  start: string;
  /** "HH:MM" local, exclusive. */
  end: string;
}

interface LocalParts {
  year: number;
  month: number;
  day: number;
  hour: number;
  minute: number;
  second: number;
  weekday: number;
}

const formatters = new Map<string, Intl.DateTimeFormat>();
const weekdays: Record<string, number> = { Mon: 1, Tue: 2, Wed: 3, Thu: 4, Fri: 5, Sat: 6, Sun: 7 };

function formatter(timeZone: string): Intl.DateTimeFormat {
  let found = formatters.get(timeZone);
  if (!found) {
    found = new Intl.DateTimeFormat('en-US', {
      timeZone,
      hourCycle: 'h23',
      year: 'numeric',
      month: '2-digit',
      day: '2-digit',
      hour: '2-digit',
      minute: '2-digit',
      second: '2-digit',
      weekday: 'short',
    });
    formatters.set(timeZone, found);
  }
  return found;
}

export function localParts(ms: number, timeZone: string): LocalParts {
  const parts: Record<string, string> = {};
  for (const part of formatter(timeZone).formatToParts(new Date(ms))) parts[part.type] = part.value;
  return {
    year: Number(parts.year),
    month: Number(parts.month),
    day: Number(parts.day),
    hour: Number(parts.hour),
    minute: Number(parts.minute),
    second: Number(parts.second),
    weekday: weekdays[parts.weekday ?? ''] ?? 1,
  };
}

/** The UTC instant at which the wall clock in `timeZone` shows the given local time. */
/** The date (YYYY-MM-DD) on the clock of `timeZone` at `ms`. */
export function localDate(ms: number, timeZone: string): string {
  const { year, month, day } = localParts(ms, timeZone);
  return `${String(year).padStart(4, '0')}-${String(month).padStart(2, '0')}-${String(day).padStart(2, '0')}`;
}

export function zonedTime(year: number, month: number, day: number, hour: number, minute: number, timeZone: string): number {
  const wall = Date.UTC(year, month - 1, day, hour, minute);
  let guess = wall;
  // Two passes settle the offset, also across daylight-saving changes.
  for (let pass = 0; pass < 2; pass++) {
    const local = localParts(guess, timeZone);
    const shown = Date.UTC(local.year, local.month - 1, local.day, local.hour, local.minute, local.second);
    guess += wall - shown;
  }
  return guess;
}

const minutesOf = (time: string): number => {
  const [hours = '0', minutes = '0'] = time.split(':');
  return Number(hours) * 60 + Number(minutes);
};

export function isAllowed(ms: number, timeZone: string, window: SendWindow): boolean {
  const local = localParts(ms, timeZone);
  const minute = local.hour * 60 + local.minute;
  return window.days.includes(local.weekday) && minute >= minutesOf(window.start) && minute < minutesOf(window.end);
}

/** `ms` itself when the window is open then, else the next moment it opens. */
export function nextAllowed(ms: number, timeZone: string, window: SendWindow): number {
  if (isAllowed(ms, timeZone, window)) return ms;
  const startMinutes = minutesOf(window.start);
  const today = localParts(ms, timeZone);
  for (let offset = 0; offset <= 8; offset++) {
    const date = new Date(Date.UTC(today.year, today.month - 1, today.day + offset));
    const opening = zonedTime(date.getUTCFullYear(), date.getUTCMonth() + 1, date.getUTCDate(), Math.floor(startMinutes / 60), startMinutes % 60, timeZone);
    if (opening >= ms && isAllowed(opening, timeZone, window)) return opening;
  }
  throw new Error('send window never opens: check sendWindow.days, start and end');
}

/** `ms` itself when the window is open then, else the last open minute before it. */
export function previousAllowed(ms: number, timeZone: string, window: SendWindow): number {
  if (isAllowed(ms, timeZone, window)) return ms;
  const endMinutes = minutesOf(window.end);
  const today = localParts(ms, timeZone);
  for (let offset = 0; offset <= 8; offset++) {
    const date = new Date(Date.UTC(today.year, today.month - 1, today.day - offset));
    const lastOpen = zonedTime(date.getUTCFullYear(), date.getUTCMonth() + 1, date.getUTCDate(), Math.floor(endMinutes / 60), endMinutes % 60, timeZone) - 60_000;
    if (lastOpen <= ms && isAllowed(lastOpen, timeZone, window)) return lastOpen;
  }
  throw new Error('send window never opens: check sendWindow.days, start and end');
}

/** "Tue 24 Nov, 15:30" in the lead's zone: for message texts, never in the host's zone. */
export function formatLocal(ms: number, timeZone: string): string {
  return new Intl.DateTimeFormat('en-GB', { timeZone, weekday: 'short', day: 'numeric', month: 'short', hour: '2-digit', minute: '2-digit', hourCycle: 'h23' }).format(new Date(ms));
}
