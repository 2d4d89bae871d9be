/**
 * @module Pacing policy: when a call to a rate-limited API may leave, and how its daily quota is
 * counted. Pure functions of state and a time, so every rule can be read and tested here; the
 * Pacer Durable Object applies them.
 *
 * An upstream's rate (`requests_per_second`) becomes a least interval between the moments calls
 * leave, plus a margin for the network making two calls arrive closer than they left. Its daily
 * quota is counted per day *as the API counts it*: a day starts at `starts_at` in `time_zone`
 * (API Gateway usage plans: 00:00 UTC), so the count resets when the API's does, across DST too.
 */
import type { PacingConfig } from '../config/schema';
import { apiDay, type DayRule } from './day';

/** The pacing rules of an upstream's `pacing` table. */
export function paceRulesOf(pacing: PacingConfig): PaceRules {
  const [h, m] = pacing.day.starts_at.split(':').map(Number);
  return {
    intervalMs: Math.ceil(1000 / pacing.requests_per_second) + pacing.margin_ms,
    ...(pacing.requests_per_day === undefined ? {} : { perDay: pacing.requests_per_day }),
    day: { timeZone: pacing.day.time_zone, startsAtMinute: h! * 60 + m! },
    maxWaitMs: pacing.max_wait_ms,
  };
}

/** The pacing rules of one credential set, from its upstream's config. */
export interface PaceRules {
  /** Least time between two calls leaving: 1 / rate, plus the margin. */
  intervalMs: number;
  /** Calls per API day; undefined: no daily quota. */
  perDay?: number;
  /** The API's day. */
  day: DayRule;
  /** Longest a caller is held for a slot before it is told to come back. */
  maxWaitMs: number;
}

/** A credential set's pacing state (persisted by the Pacer). */
export interface PaceState {
  /** The earliest the next call may leave. */
  nextAt: number;
  /** The API day the count is for (`YYYY-MM-DD` of its start), and calls counted in it. */
  day: string;
  usedToday: number;
}

export function emptyPaceState(): PaceState {
  return { nextAt: 0, day: '', usedToday: 0 };
}

/** What a caller gets: a time to leave at, or why not. */
export type SlotVerdict =
  | { kind: 'slot'; at: number }
  /** The day's quota is spent: nothing leaves before the API's day ends. */
  | { kind: 'quota'; resetsAt: number; perDay: number }
  /** The next free slot is further away than the longest hold: come back then. */
  | { kind: 'busy'; retryAt: number };

/**
 * Reserve the next slot for a call that may leave no earlier than `now` (and, for a caller that may
 * wait, no later than `now + maxWaitMs`). Mutates `s` only when a slot is given. The quota is
 * counted in the API day of the slot, not of the request.
 */
export function reserveSlot(s: PaceState, r: PaceRules, now: number, maxWaitMs = r.maxWaitMs): SlotVerdict {
  const at = Math.max(now, s.nextAt);
  if (at - now > maxWaitMs) return { kind: 'busy', retryAt: at };
  if (r.perDay !== undefined) {
    const day = apiDay(at, r.day);
    const used = day.key === s.day ? s.usedToday : 0;
    if (used >= r.perDay) return { kind: 'quota', resetsAt: day.endsAt, perDay: r.perDay };
    s.day = day.key;
    s.usedToday = used + 1;
  }
  s.nextAt = at + r.intervalMs;
  return { kind: 'slot', at };
}

/**
 * A reserved slot was not used (its caller went away before it left): the quota count is given
 * back. The time stays taken, since another caller may already be waiting behind it.
 */
export function releaseSlot(s: PaceState, r: PaceRules, at: number): void {
  if (r.perDay !== undefined && apiDay(at, r.day).key === s.day && s.usedToday > 0) s.usedToday--;
}

/** Calls left today at `now`, and when the count resets; undefined without a daily quota. */
export function quotaLeft(s: PaceState, r: PaceRules, now: number): { left: number; resetsAt: number } | undefined {
  if (r.perDay === undefined) return undefined;
  const day = apiDay(now, r.day);
  return { left: Math.max(0, r.perDay - (day.key === s.day ? s.usedToday : 0)), resetsAt: day.endsAt };
}
