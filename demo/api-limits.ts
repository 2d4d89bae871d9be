/**
 * @module API limits of the demo coding service: the ABS public tier's "1 request per second" and
 * "1,000 requests per day", per client.
 *
 * Pure policy: the caller passes each call's arrival time (ms since the epoch) and the client it is
 * charged to; nothing here reads a clock. A call is *accepted* when it passes both limits, and only
 * accepted calls count: one arriving less than `1 / requestsPerSecond` s after the client's last
 * accepted call is refused by the rate (and does not move that mark), and one arriving when the
 * client's accepted calls of the day already reach `dailyQuota` is refused by the quota. The rate is
 * checked first, so a call refused for coming too soon never counts against the day.
 *
 * The day is the calendar day in `timeZone` (API Gateway resets quotas at 00:00 UTC; any IANA zone
 * or "+10:00" style offset may be given for a demo elsewhere). Its bounds are worked out once per
 * day, so a call only compares numbers.
 */

export interface ApiLimitsOptions {
  /** Accepted calls per second per client; a call sooner than `1000 / requestsPerSecond` ms after the last is refused. */
  requestsPerSecond: number;
  /** Accepted calls per client per day. */
  dailyQuota: number;
  /** The zone whose midnight starts a new day: an IANA name ("UTC", "Australia/Sydney") or an offset ("+10:00"). */
  timeZone: string;
}

/** What the limits make of one call. Times are ms since the epoch. */
export type LimitDecision =
  | { outcome: 'accepted'; usedToday: number; resetsAt: number }
  /** `nextAllowedAt`: the first instant the client's next call would pass the rate. */
  | { outcome: 'rate'; nextAllowedAt: number }
  | { outcome: 'quota'; usedToday: number; resetsAt: number };

/** A client's quota on the day holding some instant. */
export interface QuotaState {
  used: number;
  remaining: number;
  /** Start of the next day: when `used` goes back to 0. */
  resetsAt: number;
}

export interface ApiLimits {
  /** Decides on a call arriving at `at` from `client`, and counts it when accepted. */
  admit(client: string, at: number): LimitDecision;
  /** The client's quota on the day holding `at` (nothing is counted). */
  quota(client: string, at: number): QuotaState;
}

/** Bounds of one calendar day: `start` ≤ t < `end`. */
export interface DayBounds {
  start: number;
  end: number;
}

/**
 * Builds the limits. Throws an Error naming the option when one cannot work: a rate or quota that
 * is not a positive number (the quota a whole one), or a time zone the runtime does not know.
 */
export function createApiLimits(options: ApiLimitsOptions): ApiLimits {
  const { requestsPerSecond, dailyQuota, timeZone } = options;
  if (!(Number.isFinite(requestsPerSecond) && requestsPerSecond > 0)) {
    throw new Error(`requestsPerSecond must be a positive number, not ${String(requestsPerSecond)}`);
  }
  if (!(Number.isSafeInteger(dailyQuota) && dailyQuota > 0)) {
    throw new Error(`dailyQuota must be a positive whole number, not ${String(dailyQuota)}`);
  }
  const intervalMs = 1000 / requestsPerSecond;
  const dayOf = dayBounds(timeZone);

  const lastAccepted = new Map<string, number>();
  const days = new Map<string, { start: number; used: number }>();

  /** The client's count for the day holding `at`, started afresh when the day has changed. */
  function today(client: string, day: DayBounds): { start: number; used: number } {
    let counted = days.get(client);
    if (counted === undefined || counted.start !== day.start) days.set(client, (counted = { start: day.start, used: 0 }));
    return counted;
  }

  return {
    admit(client, at) {
      const last = lastAccepted.get(client);
      // Either side of the last accepted call: a clock stepped back by more than one interval is a
      // new arrival, not a reason to refuse for that long.
      if (last !== undefined && Math.abs(at - last) < intervalMs) return { outcome: 'rate', nextAllowedAt: last + intervalMs };
      const day = dayOf(at);
      const counted = today(client, day);
      if (counted.used >= dailyQuota) return { outcome: 'quota', usedToday: counted.used, resetsAt: day.end };
      counted.used++;
      lastAccepted.set(client, at);
      return { outcome: 'accepted', usedToday: counted.used, resetsAt: day.end };
    },
    quota(client, at) {
      const day = dayOf(at);
      const counted = days.get(client);
      const used = counted !== undefined && counted.start === day.start ? counted.used : 0;
      return { used, remaining: Math.max(0, dailyQuota - used), resetsAt: day.end };
    },
  };
}

const DAY_MS = 24 * 60 * 60 * 1000;
const HOUR_MS = 60 * 60 * 1000;

/**
 * The calendar days of `timeZone`: a function from an instant to the bounds of its day. UTC is
 * plain arithmetic; another zone's midnights are found by bisection on its local date (so DST
 * changes, and zones whose midnight is skipped, come out right), once per day: the last day found
 * is kept. Throws when the zone is unknown.
 */
export function dayBounds(timeZone: string): (at: number) => DayBounds {
  let format: Intl.DateTimeFormat;
  try {
    format = new Intl.DateTimeFormat('en-US', { timeZone, year: 'numeric', month: '2-digit', day: '2-digit' });
  } catch {
    throw new Error(`timeZone "${timeZone}" is not a time zone this runtime knows (an IANA name such as "UTC" or "Australia/Sydney", or an offset such as "+10:00")`);
  }
  if (format.resolvedOptions().timeZone === 'UTC') {
    return (at) => {
      const start = Math.floor(at / DAY_MS) * DAY_MS;
      return { start, end: start + DAY_MS };
    };
  }

  const dateOf = (t: number) => format.format(t);
  /** The first instant after `lo` for which `before` is false, given `before(lo)` and not `before(hi)`. */
  const bisect = (lo: number, hi: number, before: (t: number) => boolean): number => {
    while (hi - lo > 1) {
      const mid = lo + Math.floor((hi - lo) / 2);
      if (before(mid)) lo = mid;
      else hi = mid;
    }
    return hi;
  };

  let last: DayBounds | undefined;
  return (at) => {
    if (last !== undefined && last.start <= at && at < last.end) return last;
    const date = dateOf(at);
    let earlier = at - 26 * HOUR_MS;
    while (dateOf(earlier) === date) earlier -= DAY_MS;
    let later = at + 26 * HOUR_MS;
    while (dateOf(later) === date) later += DAY_MS;
    // Both searches keep `at` on their own side, so start <= at < end whatever the zone does.
    last = {
      start: bisect(earlier, at, (t) => dateOf(t) !== date),
      end: bisect(at, later, (t) => dateOf(t) === date),
    };
    return last;
  };
}
