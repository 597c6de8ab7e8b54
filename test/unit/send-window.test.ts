import assert from 'node:assert/strict';
import { formatLocal, isAllowed, localDate, localParts, nextAllowed, previousAllowed, zonedTime } from '../../shared/send-window.js';

const window = { days: [1, 2, 3, 4, 5], start: '09:00', end: '19:00' };
const iso = (ms: number): string => new Date(ms).toISOString();

describe('send windows in the lead\'s time zone', () => {
  it('names the date on the zone\'s clock, not the host\'s or UTC\'s', () => {
    const instant = Date.parse('2026-03-01T03:30:00Z');
    assert.equal(localDate(instant, 'America/New_York'), '2026-02-28');
    assert.equal(localDate(instant, 'UTC'), '2026-03-01');
    assert.equal(localDate(Date.parse('2026-12-31T14:00:00Z'), 'Pacific/Kiritimati'), '2027-01-01');
  });

  it('converts local wall time to UTC across zones and daylight saving', () => {
    assert.equal(iso(zonedTime(2026, 11, 23, 9, 0, 'America/New_York')), '2026-11-23T14:00:00.000Z'); // EST
    assert.equal(iso(zonedTime(2026, 7, 6, 9, 0, 'America/New_York')), '2026-07-06T13:00:00.000Z'); // EDT
    assert.equal(iso(zonedTime(2026, 11, 23, 9, 0, 'Asia/Kolkata')), '2026-11-23T03:30:00.000Z');
    assert.equal(iso(zonedTime(2026, 3, 29, 12, 0, 'Europe/Berlin')), '2026-03-29T10:00:00.000Z'); // the day CEST starts
  });

  it('knows the weekday and hour where the lead is', () => {
    const mondayMorningUtc = Date.parse('2026-11-23T02:00:00Z');
    assert.deepEqual([localParts(mondayMorningUtc, 'America/Los_Angeles').weekday, localParts(mondayMorningUtc, 'America/Los_Angeles').hour], [7, 18]);
    assert.equal(isAllowed(mondayMorningUtc, 'Asia/Tokyo', window), true); // Monday 11:00 in Tokyo
    assert.equal(isAllowed(mondayMorningUtc, 'America/Los_Angeles', window), false); // Sunday evening in LA
  });

  it('moves a send in quiet hours to the next opening, and one at the weekend to Monday', () => {
    const fridayNight = Date.parse('2026-11-21T01:30:00Z'); // Friday 20:30 in New York
    assert.equal(iso(nextAllowed(fridayNight, 'America/New_York', window)), '2026-11-23T14:00:00.000Z');
    const tuesdayDawn = Date.parse('2026-11-24T10:00:00Z'); // Tuesday 05:00 in New York
    assert.equal(iso(nextAllowed(tuesdayDawn, 'America/New_York', window)), '2026-11-24T14:00:00.000Z');
    const open = Date.parse('2026-11-24T15:00:00Z');
    assert.equal(nextAllowed(open, 'America/New_York', window), open);
  });

  it('finds the last open minute before a moment in quiet hours', () => {
    const mondayDawn = Date.parse('2026-11-23T11:00:00Z'); // Monday 06:00 in New York
    assert.equal(iso(previousAllowed(mondayDawn, 'America/New_York', window)), '2026-11-20T23:59:00.000Z'); // Friday 18:59
  });

  it('formats times in the given zone, never the host\'s', () => {
    assert.equal(formatLocal(Date.parse('2026-11-24T15:30:00Z'), 'Europe/Berlin'), 'Tue 24 Nov, 16:30');
    assert.equal(formatLocal(Date.parse('2026-11-24T15:30:00Z'), 'America/New_York'), 'Tue 24 Nov, 10:30');
  });

  it('refuses a window that never opens', () => {
    assert.throws(() => nextAllowed(Date.now(), 'UTC', { days: [1], start: '10:00', end: '10:00' }), /never opens/);
  });
});
