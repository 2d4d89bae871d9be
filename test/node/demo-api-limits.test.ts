/**
 * The demo coding service's API limits (demo/api-limits.ts), as pure policy: arrival times are
 * numbers the test writes, and the day's bounds are checked against zones whose days are not 24 h.
 * Past dates only, so a later tzdata release does not move them.
 */
import { describe, expect, it } from 'vitest';
import { createApiLimits, dayBounds } from '../../demo/api-limits.ts';

const T0 = Date.parse('2026-03-02T09:00:00Z');
const iso = (t: number) => new Date(t).toISOString();

describe('dayBounds', () => {
  it.each([
    ['UTC', '2026-03-02T09:00:00Z', '2026-03-02T00:00:00.000Z', '2026-03-03T00:00:00.000Z'],
    ['UTC', '2026-03-02T00:00:00Z', '2026-03-02T00:00:00.000Z', '2026-03-03T00:00:00.000Z'],
    ['UTC', '2026-03-02T23:59:59.999Z', '2026-03-02T00:00:00.000Z', '2026-03-03T00:00:00.000Z'],
    ['Etc/UTC', '2026-03-02T09:00:00Z', '2026-03-02T00:00:00.000Z', '2026-03-03T00:00:00.000Z'],
    // A fixed offset: midnight at +10:00 is 14:00 UTC the day before.
    ['+10:00', '2026-03-02T09:00:00Z', '2026-03-01T14:00:00.000Z', '2026-03-02T14:00:00.000Z'],
    ['+10:00', '2026-03-02T14:00:00Z', '2026-03-02T14:00:00.000Z', '2026-03-03T14:00:00.000Z'],
    // Sydney: summer time (UTC+11) ends on 2025-04-06, a 25-hour day; starts on 2025-10-05, 23 hours.
    ['Australia/Sydney', '2025-04-06T12:00:00+10:00', '2025-04-05T13:00:00.000Z', '2025-04-06T14:00:00.000Z'],
    ['Australia/Sydney', '2025-10-05T12:00:00+11:00', '2025-10-04T14:00:00.000Z', '2025-10-05T13:00:00.000Z'],
    // Havana moved its clocks from 00:00 to 01:00 on 2020-03-08: that day begins at 01:00 local.
    ['America/Havana', '2020-03-08T12:00:00-04:00', '2020-03-08T05:00:00.000Z', '2020-03-09T04:00:00.000Z'],
    // Samoa skipped 2011-12-30 altogether: the 29th (UTC-10) is followed by the 31st (UTC+14).
    ['Pacific/Apia', '2011-12-29T12:00:00-10:00', '2011-12-29T10:00:00.000Z', '2011-12-30T10:00:00.000Z'],
    ['Pacific/Apia', '2011-12-31T12:00:00+14:00', '2011-12-30T10:00:00.000Z', '2011-12-31T10:00:00.000Z'],
  ])('%s: the day holding %s runs from %s to %s', (zone, at, start, end) => {
    const bounds = dayBounds(zone)(Date.parse(at));
    expect({ start: iso(bounds.start), end: iso(bounds.end) }).toEqual({ start, end });
  });

  it('finds each day right when asked in any order (the kept day is not reused for another)', () => {
    const day = dayBounds('Australia/Sydney');
    const sydneyMidnight = Date.parse('2026-03-02T13:00:00Z');
    expect(iso(day(sydneyMidnight - 1).end)).toBe('2026-03-02T13:00:00.000Z');
    expect(iso(day(sydneyMidnight).start)).toBe('2026-03-02T13:00:00.000Z');
    expect(iso(day(sydneyMidnight - 1).start)).toBe('2026-03-01T13:00:00.000Z');
    expect(iso(day(sydneyMidnight - 86_400_000 * 30).start)).toBe('2026-01-31T13:00:00.000Z'); // 1 Feb, 00:00 +11:00
  });

  it('refuses a zone the runtime does not know, naming it', () => {
    expect(() => dayBounds('Mars/Olympus_Mons')).toThrow('timeZone "Mars/Olympus_Mons"');
  });
});

describe('createApiLimits', () => {
  const limits = (over: Partial<Parameters<typeof createApiLimits>[0]> = {}) =>
    createApiLimits({ requestsPerSecond: 1, dailyQuota: 1000, timeZone: 'UTC', ...over });

  it('accepts one call per interval, counted from the last accepted one', () => {
    const l = limits({ requestsPerSecond: 4 }); // 250 ms
    expect(l.admit('a', T0).outcome).toBe('accepted');
    expect(l.admit('a', T0 + 249)).toEqual({ outcome: 'rate', nextAllowedAt: T0 + 250 });
    expect(l.admit('a', T0 + 250).outcome).toBe('accepted');
    expect(l.admit('a', T0 + 300)).toEqual({ outcome: 'rate', nextAllowedAt: T0 + 500 });
  });

  it('keeps clients apart: one client spending its second or its day leaves another untouched', () => {
    const l = limits({ dailyQuota: 1 });
    expect(l.admit('a', T0).outcome).toBe('accepted');
    expect(l.admit('b', T0).outcome).toBe('accepted');
    expect(l.admit('a', T0 + 1000).outcome).toBe('quota');
    expect(l.quota('b', T0 + 1000)).toEqual({ used: 1, remaining: 0, resetsAt: Date.parse('2026-03-03T00:00:00Z') });
    expect(l.quota('c', T0 + 1000)).toEqual({ used: 0, remaining: 1, resetsAt: Date.parse('2026-03-03T00:00:00Z') });
  });

  it('says how much of the day is used with each accepted call, and when it resets', () => {
    const l = limits({ dailyQuota: 2 });
    const resetsAt = Date.parse('2026-03-03T00:00:00Z');
    expect(l.admit('a', T0)).toEqual({ outcome: 'accepted', usedToday: 1, resetsAt });
    expect(l.admit('a', T0 + 1000)).toEqual({ outcome: 'accepted', usedToday: 2, resetsAt });
    expect(l.admit('a', T0 + 2000)).toEqual({ outcome: 'quota', usedToday: 2, resetsAt });
    expect(l.admit('a', resetsAt)).toEqual({ outcome: 'accepted', usedToday: 1, resetsAt: resetsAt + 86_400_000 });
  });

  it('counts a 25-hour day as one day: Sydney on the day summer time ends', () => {
    const l = limits({ dailyQuota: 1, timeZone: 'Australia/Sydney' });
    const start = Date.parse('2025-04-05T13:00:00Z'); // 00:00 +11:00
    expect(l.admit('a', start).outcome).toBe('accepted');
    expect(l.admit('a', start + 24 * 3600_000)).toEqual({ outcome: 'quota', usedToday: 1, resetsAt: start + 25 * 3600_000 });
    expect(l.admit('a', start + 25 * 3600_000).outcome).toBe('accepted');
  });

  it('does not refuse for long after the clock steps back: beyond one interval it is a new arrival', () => {
    const l = limits();
    expect(l.admit('a', T0).outcome).toBe('accepted');
    expect(l.admit('a', T0 - 500).outcome).toBe('rate');
    expect(l.admit('a', T0 - 60_000).outcome).toBe('accepted');
  });

  it.each([
    [{ requestsPerSecond: 0 }, 'requestsPerSecond'],
    [{ requestsPerSecond: -1 }, 'requestsPerSecond'],
    [{ requestsPerSecond: Number.POSITIVE_INFINITY }, 'requestsPerSecond'],
    [{ dailyQuota: 0 }, 'dailyQuota'],
    [{ dailyQuota: 1.5 }, 'dailyQuota'],
    [{ timeZone: 'Nowhere/Special' }, 'timeZone'],
  ])('refuses %j, naming the option', (over, named) => {
    expect(() => limits(over)).toThrow(named);
  });
});
