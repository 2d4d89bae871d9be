/**
 * @module The API's day: which day an instant falls in as an API counts its daily quota (from a
 * local time in an IANA time zone, 00:00 UTC for API Gateway usage plans), and when that day ends,
 * across DST changes too. Reads the runtime's Intl time-zone data; imports nothing.
 */

/** Where the API's day starts: a local time in an IANA time zone. */
export interface DayRule {
  timeZone: string;
  /** Minutes after local midnight. */
  startsAtMinute: number;
}

const formats = new Map<string, Intl.DateTimeFormat>();

function formatOf(timeZone: string): Intl.DateTimeFormat {
  let f = formats.get(timeZone);
  if (f === undefined) {
    f = new Intl.DateTimeFormat('en-US', { timeZone, hourCycle: 'h23', year: 'numeric', month: 'numeric', day: 'numeric', hour: 'numeric', minute: 'numeric', second: 'numeric' });
    formats.set(timeZone, f);
  }
  return f;
}

/** Whether `timeZone` is an IANA zone this runtime knows. */
export function isTimeZone(timeZone: string): boolean {
  try {
    formatOf(timeZone);
    return true;
  } catch {
    return false;
  }
}

/** The wall-clock fields of instant `t` in `timeZone`. */
function wallClock(t: number, timeZone: string): { y: number; mo: number; d: number; h: number; mi: number; s: number } {
  const parts: Record<string, number> = {};
  for (const p of formatOf(timeZone).formatToParts(t)) if (p.type !== 'literal') parts[p.type] = Number(p.value);
  return { y: parts.year!, mo: parts.month!, d: parts.day!, h: parts.hour!, mi: parts.minute!, s: parts.second! };
}

/** The instant at which `timeZone`'s wall clock shows the given fields (the later one in a DST fold). */
function instantOf(y: number, mo: number, d: number, minute: number, timeZone: string): number {
  const asUtc = Date.UTC(y, mo - 1, d, 0, minute);
  // The zone's offset at a guess, then at the corrected guess (once more covers a DST change).
  let t = asUtc;
  for (let i = 0; i < 3; i++) {
    const w = wallClock(t, timeZone);
    const offset = Date.UTC(w.y, w.mo - 1, w.d, w.h, w.mi, w.s) - Math.floor(t / 1000) * 1000;
    const next = asUtc - offset;
    if (next === t) break;
    t = next;
  }
  return t;
}

/**
 * The last day worked out per rule, and the earliest instant it was asked for: any instant from
 * there to the day's end is in the same day (the Pacer asks on every submission; Intl is slow).
 */
const lastDays = new Map<string, { from: number; day: { key: string; endsAt: number } }>();

/** The API day instant `t` falls in: its key (the local date it started on) and when it ends. */
export function apiDay(t: number, rule: DayRule): { key: string; endsAt: number } {
  const ruleKey = `${rule.timeZone}|${rule.startsAtMinute}`;
  const last = lastDays.get(ruleKey);
  if (last !== undefined && t >= last.from && t < last.day.endsAt) return last.day;
  const day = workOutDay(t, rule);
  lastDays.set(ruleKey, { from: t, day });
  return day;
}

function workOutDay(t: number, rule: DayRule): { key: string; endsAt: number } {
  // Shifted back by the start, every instant of one API day shares one local date.
  const w = wallClock(t - rule.startsAtMinute * 60_000, rule.timeZone);
  const key = `${w.y}-${String(w.mo).padStart(2, '0')}-${String(w.d).padStart(2, '0')}`;
  const next = new Date(Date.UTC(w.y, w.mo - 1, w.d + 1));
  let endsAt = instantOf(next.getUTCFullYear(), next.getUTCMonth() + 1, next.getUTCDate(), rule.startsAtMinute, rule.timeZone);
  // A start inside a skipped hour (DST) lands after it; never before `t`.
  if (endsAt <= t) endsAt = t + 1;
  return { key, endsAt };
}
