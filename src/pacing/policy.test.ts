/** Unit tests beside pacing/policy.ts (in workerd, whose Intl is the one the Pacer reads days with). */
import { describe, expect, it } from 'vitest';
import { apiDay, isTimeZone } from './day';
import { emptyPaceState, quotaLeft, releaseSlot, reserveSlot, type PaceRules } from './policy';

const UTC = { timeZone: 'UTC', startsAtMinute: 0 };
const rules = (extra: Partial<PaceRules> = {}): PaceRules => ({ intervalMs: 1000, day: UTC, maxWaitMs: 2000, ...extra });
const T0 = Date.UTC(2026, 11, 3, 12, 0, 0);

describe('reserveSlot: the rate', () => {
  it('gives the first caller now and each next one an interval later', () => {
    const s = emptyPaceState();
    expect(reserveSlot(s, rules(), T0)).toEqual({ kind: 'slot', at: T0 });
    expect(reserveSlot(s, rules(), T0)).toEqual({ kind: 'slot', at: T0 + 1000 });
    expect(reserveSlot(s, rules(), T0 + 10)).toEqual({ kind: 'slot', at: T0 + 2000 });
  });

  it('a caller whose slot is further than its longest hold is told when to come back, and takes nothing', () => {
    const s = emptyPaceState();
    for (let i = 0; i < 3; i++) expect(reserveSlot(s, rules(), T0).kind).toBe('slot'); // T0, +1 s, +2 s
    expect(reserveSlot(s, rules(), T0)).toEqual({ kind: 'busy', retryAt: T0 + 3000 });
    expect(s.nextAt).toBe(T0 + 3000);
    // Exactly the longest hold away is still a slot.
    expect(reserveSlot(s, rules({ maxWaitMs: 3000 }), T0)).toEqual({ kind: 'slot', at: T0 + 3000 });
  });

  it('a free pace does not bank slots: a caller after a quiet spell leaves now, the next an interval later', () => {
    const s = emptyPaceState();
    reserveSlot(s, rules(), T0);
    expect(reserveSlot(s, rules(), T0 + 60_000)).toEqual({ kind: 'slot', at: T0 + 60_000 });
    expect(reserveSlot(s, rules(), T0 + 60_000)).toEqual({ kind: 'slot', at: T0 + 61_000 });
  });
});

describe('reserveSlot: the daily quota', () => {
  it('counts calls per API day and refuses the one over, until the day ends', () => {
    const s = emptyPaceState();
    const r = rules({ perDay: 2, maxWaitMs: 60_000 });
    expect(reserveSlot(s, r, T0).kind).toBe('slot');
    expect(reserveSlot(s, r, T0).kind).toBe('slot');
    const end = Date.UTC(2026, 11, 4);
    expect(reserveSlot(s, r, T0)).toEqual({ kind: 'quota', resetsAt: end, perDay: 2 });
    expect(quotaLeft(s, r, T0)).toEqual({ left: 0, resetsAt: end });
    expect(reserveSlot(s, r, end - 1).kind).toBe('quota');
    expect(reserveSlot(s, r, end)).toEqual({ kind: 'slot', at: end });
    expect(quotaLeft(s, r, end)).toEqual({ left: 1, resetsAt: end + 86_400_000 });
  });

  it('a slot that falls in the next day counts there', () => {
    const s = emptyPaceState();
    const r = rules({ perDay: 1, intervalMs: 10_000, maxWaitMs: 20_000 });
    const late = Date.UTC(2026, 11, 3, 23, 59, 55);
    expect(reserveSlot(s, r, late).kind).toBe('slot'); // today's one
    // The next slot is 00:00:05 tomorrow: tomorrow's quota, not today's.
    expect(reserveSlot(s, r, late)).toEqual({ kind: 'slot', at: late + 10_000 });
  });

  it('a released slot gives its count back', () => {
    const s = emptyPaceState();
    const r = rules({ perDay: 1, maxWaitMs: 60_000 });
    const slot = reserveSlot(s, r, T0);
    expect(slot.kind).toBe('slot');
    releaseSlot(s, r, T0);
    expect(reserveSlot(s, r, T0).kind).toBe('slot');
  });
});

describe('apiDay: the day as the API counts it', () => {
  it('UTC midnight by default', () => {
    expect(apiDay(T0, UTC)).toEqual({ key: '2026-12-03', endsAt: Date.UTC(2026, 11, 4) });
    expect(apiDay(Date.UTC(2026, 11, 4) - 1, UTC).key).toBe('2026-12-03');
    expect(apiDay(Date.UTC(2026, 11, 4), UTC).key).toBe('2026-12-04');
  });

  it('a day starting at 10:00 in Sydney (AEDT, UTC+11 in December)', () => {
    const rule = { timeZone: 'Australia/Sydney', startsAtMinute: 600 };
    // 2026-12-03 22:00 UTC is 2026-12-04 09:00 in Sydney: still the day that began on the 3rd.
    const t = Date.UTC(2026, 11, 3, 22, 0);
    expect(apiDay(t, rule)).toEqual({ key: '2026-12-03', endsAt: Date.UTC(2026, 11, 3, 23, 0) });
    expect(apiDay(Date.UTC(2026, 11, 3, 23, 0), rule).key).toBe('2026-12-04');
  });

  it('across a DST change the day is still 00:00 to 00:00 local (23 or 25 hours long)', () => {
    const sydney = { timeZone: 'Australia/Sydney', startsAtMinute: 0 };
    // Sydney moves its clocks forward on 2026-10-04 at 02:00 (to AEDT): that day has 23 hours.
    const day = apiDay(Date.UTC(2026, 9, 3, 14, 30), sydney); // 00:30 local on the 4th (AEST, UTC+10)
    expect(day.key).toBe('2026-10-04');
    expect(day.endsAt).toBe(Date.UTC(2026, 9, 4, 13, 0)); // 00:00 on the 5th, AEDT (UTC+11)
    const newYork = { timeZone: 'America/New_York', startsAtMinute: 0 };
    // New York falls back on 2026-11-01: that day has 25 hours.
    const nov1 = apiDay(Date.UTC(2026, 10, 1, 4, 30), newYork); // 00:30 EDT
    expect(nov1.key).toBe('2026-11-01');
    expect(nov1.endsAt - Date.UTC(2026, 10, 1, 4, 0)).toBe(25 * 3_600_000);
  });

  it('knows time zones from unknown strings', () => {
    expect(isTimeZone('Australia/Canberra')).toBe(true);
    expect(isTimeZone('Mars/Olympus_Mons')).toBe(false);
  });
});
