/**
 * @module Clock: the time source for token lifetimes, budgets, cool-downs and pacing, and the one
 * way to wait for a time.
 *
 * Injectable because in workerd `Date.now()` only moves across I/O, so lifetime tests would
 * otherwise have to sleep for an hour; a test clock's `sleep` moves its own time instead. Production
 * never calls `setClock`.
 */

/** Something that tells the time in epoch milliseconds, and waits. */
export interface Clock {
  now(): number;
  /** Resolve once `ms` have passed on this clock (at once for `ms` ≤ 0). */
  sleep?(ms: number): Promise<void>;
}

const systemClock: Clock = { now: () => Date.now() };
let current: Clock = systemClock;

const realSleep = (ms: number) => new Promise<void>((resolve) => setTimeout(resolve, Math.max(0, ms)));

/** The clock every token and pacing decision reads. */
export const clock: Required<Clock> = {
  now: () => current.now(),
  sleep: (ms) => (current.sleep ?? realSleep)(ms),
};

/** Replace the clock (tests); `undefined` restores the system clock. */
export function setClock(c: Clock | undefined): void {
  current = c ?? systemClock;
}

/**
 * Whole seconds from `now` until `at`, rounded up (a wait of 0.2 s is 1 s, never 0), and never below
 * `min`: Retry-After (min 1: a 0 invites a busy loop), cool-downs in logs, the status page.
 */
export function secondsUntil(at: number, now: number, min = 0): number {
  return Math.max(min, Math.ceil((at - now) / 1000));
}
