/** Times lead tests build journeys from: durations, ISO text, a New York Monday morning, fresh phones. */
import { localParts } from '../../shared/send-window.js';

export const minute = 60_000;
export const hour = 60 * minute;
export const day = 24 * hour;
export const iso = (ms: number): string => new Date(ms).toISOString();
export const phoneFor = (): string => `+1628555${String(Math.floor(Math.random() * 9000) + 1000)}`;

/** The first Monday 10:00 in New York (to the minute) at or after `now`. */
export function nextMonday10(now: number): number {
  for (let offset = 0; offset < 8 * day; offset += minute) {
    const local = localParts(now + offset, 'America/New_York');
    if (local.weekday === 1 && local.hour === 10 && local.minute === 0) return now + offset;
  }
  throw new Error('no Monday within a week');
}
