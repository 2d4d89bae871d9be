/**
 * @module Clock: the time source for token lifetimes, budgets and cool-downs.
 *
 * Injectable because in workerd `Date.now()` only moves across I/O, so lifetime tests would
 * otherwise have to sleep for an hour. Production never calls `setClock`.
 */

/** Something that tells the time in epoch milliseconds. */
export interface Clock {
  now(): number;
}

const systemClock: Clock = { now: () => Date.now() };
let current: Clock = systemClock;

/** The clock every token decision reads. */
export const clock: Clock = { now: () => current.now() };

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
