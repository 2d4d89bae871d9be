/**
 * Property: a token is never sent after `expiry − skew` under any clock, and an explicit budget is
 * never exceeded as the issuer counts it (issue 7, "Must show").
 *
 * A `TokenEngine` runs against a fake issuer that models the token endpoint truthfully, on fake
 * time (vitest's fake timers drive the clock, the endpoint's latencies and the engine's own retry
 * pauses alike). Generated: fixed or sliding expiry; the token's real lifetime and how the answer
 * states it (`expires_in`, a JWT `exp`, or nothing: the configured default); endpoint latencies
 * (send → arrival/issue → answer); endpoint failures (503, timeouts, lost requests, 429 with or
 * without Retry-After, refused credentials); use times; uses the engine hears about or not;
 * rejections reported by the API; two scope sets sharing a budget; explicit and default budgets.
 *
 * The issuer issues a token at the moment the request arrives (somewhere between send and answer).
 * Fixed expiry: that moment plus the lifetime (or the JWT's `exp`). Sliding expiry: the last use
 * that reached it while valid, plus the lifetime (capped by a JWT `exp`).
 *
 * - Expiry: every token the engine hands out is sent at once; each use must come before the
 *   token's true expiry minus the promised skew (10 s, or 1/20 of a short lifetime), and the
 *   lease's `usableUntil` (how long a cache may reuse it) must not reach past that either.
 * - Budget: callers send a token only while its lease says it is usable (as the isolate cache
 *   does); with an explicit budget, the token requests that *arrived* at the issuer never number
 *   more than `max_requests` in any `window_seconds` + 1 s (an issuer counting in whole seconds).
 */
import fc from 'fast-check';
import { afterEach, beforeEach, describe, expect, it, vi } from 'vitest';
import { setClock } from '../clock';
import { upstreamSchema } from '../config/schema';
import { TokenEngine } from './engine';
import type { GrantResult } from './grant';
import type { RejectionOutcome, TokenOutcome } from './outcome';
import { emptyState, policyOf } from './policy';

const START = Date.UTC(2026, 5, 1, 8);
const SCOPES = ['', 'read'] as const;

/** The promise, written out: never in the last 10 s of a token's life, nor its last 1/20. */
const promisedSkew = (lifetimeMs: number) => Math.min(10_000, lifetimeMs / 20);

type Fate = 'ok' | 'unavailable' | 'timeout' | 'lost' | 'throttled' | 'refused';

interface RequestScript {
  fate: Fate;
  /** Send → arrival at the issuer (where it is counted, and a token issued). */
  arriveMs: number;
  /** Arrival → answer back. */
  answerMs: number;
  /** Throttled: Retry-After in seconds, if any. */
  retryAfterS: number | null;
}

interface UseScript {
  /**
   * When it happens: a time after the previous use (small, or a share of the lifetime), or close to
   * the real end of the last token handed out for its scope set (a share of its promised skew
   * before it, or just past it), where a token must no longer be sent; or around the time the
   * engine last said to come back (`retryAt`), where the budget and cool-downs reopen.
   */
  gap: { ms: number } | { share: number } | { nearEnd: number } | { afterRetry: number };
  scope: 0 | 1;
  /** The isolate tells the engine the use was accepted. */
  reported: boolean;
  /** The API answers it with a "token rejected" status (visitor-caused or not) and the engine is told. */
  rejected: boolean;
}

interface Scenario {
  sliding: boolean;
  /** The token's real lifetime (sliding: per use), seconds. */
  lifetimeS: number;
  /** How the answer states the lifetime. */
  stated: 'expires_in' | 'jwt' | 'default';
  /** JWT `exp`: this many seconds after issue (sliding tokens: a hard end on top of the lifetime). */
  jwtExpS: number;
  marginS: number;
  budget: { max: number; windowS: number } | null;
  timeoutMs: number;
  maxAttempts: number;
  cooldownS: number;
  requests: RequestScript[];
  uses: UseScript[];
}

const fate: fc.Arbitrary<Fate> = fc.oneof(
  { arbitrary: fc.constant<Fate>('ok'), weight: 8 },
  { arbitrary: fc.constantFrom<Fate>('unavailable', 'timeout', 'lost', 'throttled', 'refused'), weight: 3 },
);

const scenario: fc.Arbitrary<Scenario> = fc.record({
  sliding: fc.boolean(),
  lifetimeS: fc.oneof(fc.integer({ min: 1, max: 20 }), fc.integer({ min: 21, max: 400 }), fc.integer({ min: 401, max: 7200 })),
  stated: fc.constantFrom('expires_in', 'jwt', 'default'),
  jwtExpS: fc.integer({ min: 1, max: 14_400 }),
  marginS: fc.constantFrom(0, 30, 60, 300),
  budget: fc.option(fc.record({ max: fc.integer({ min: 1, max: 3 }), windowS: fc.oneof(fc.integer({ min: 1, max: 30 }), fc.integer({ min: 1, max: 3600 })) }), {
    nil: null,
    freq: 3,
  }),
  timeoutMs: fc.integer({ min: 500, max: 10_000 }),
  maxAttempts: fc.integer({ min: 1, max: 3 }),
  cooldownS: fc.integer({ min: 1, max: 600 }),
  requests: fc.array(
    fc.record({
      fate,
      arriveMs: fc.oneof(fc.integer({ min: 0, max: 50 }), fc.integer({ min: 0, max: 3000 })),
      answerMs: fc.oneof(fc.integer({ min: 0, max: 50 }), fc.integer({ min: 0, max: 3000 })),
      retryAfterS: fc.option(fc.integer({ min: 0, max: 300 }), { nil: null }),
    }),
    { minLength: 1, maxLength: 8 },
  ),
  uses: fc.array(
    fc.record({
      gap: fc.oneof(
        fc.record({ ms: fc.integer({ min: 0, max: 2000 }) }),
        fc.record({ share: fc.integer({ min: 0, max: 1300 }).map((x) => x / 1000) }),
        fc.record({ nearEnd: fc.integer({ min: -500, max: 2000 }).map((x) => x / 1000) }),
        fc.record({ afterRetry: fc.integer({ min: -50, max: 50 }) }),
      ),
      scope: fc.constantFrom<0 | 1>(0, 1),
      reported: fc.oneof({ arbitrary: fc.constant(true), weight: 4 }, { arbitrary: fc.constant(false), weight: 1 }),
      rejected: fc.oneof({ arbitrary: fc.constant(false), weight: 9 }, { arbitrary: fc.constant(true), weight: 1 }),
    }),
    { minLength: 10, maxLength: 40, size: "max" },
  ),
});

/** What the issuer knows of a token it issued. */
interface Issued {
  issuedAt: number;
  /** Fixed: its expiry. Sliding: the JWT `exp` on top of the sliding lifetime, or Infinity. */
  hardEnd: number;
  /** Sliding: the lifetime counted from each use. */
  slidingMs?: number;
  /** Sliding: the last use that reached the issuer while the token was valid (starts at issue). */
  extendedAt: number;
}

function trueExpiry(t: Issued): number {
  return t.slidingMs === undefined ? t.hardEnd : Math.min(t.extendedAt + t.slidingMs, t.hardEnd);
}

/** The promised skew for a token, from its real lifetime. */
function trueSkew(t: Issued): number {
  return promisedSkew(t.slidingMs ?? t.hardEnd - t.issuedAt);
}

/** Resolve `p` while moving fake time forward through whatever it waits on (endpoint answers, retry pauses). */
async function drive<T>(p: Promise<T>): Promise<T> {
  let out: { value: T } | { error: unknown } | undefined;
  p.then(
    (value) => (out = { value }),
    (error: unknown) => (out = { error }),
  );
  for (let i = 0; ; i++) {
    await vi.advanceTimersByTimeAsync(0);
    if (out !== undefined) break;
    if (vi.getTimerCount() === 0) throw new Error('the engine waits on nothing');
    if (i > 1_000) throw new Error('the engine never settles');
    await vi.advanceTimersToNextTimerAsync();
  }
  if ('error' in out) throw out.error;
  return out.value;
}

/** The answer of a request that failed at the endpoint (undefined: it issues a token). */
function failureOf(r: RequestScript): GrantResult | undefined {
  switch (r.fate) {
    case 'ok':
    case 'timeout':
      return undefined;
    case 'unavailable':
    case 'lost':
      return { ok: false, failure: { kind: 'transient', detail: 'token endpoint answered 503' } };
    case 'throttled':
      return { ok: false, failure: { kind: 'throttled', detail: 'token endpoint answered 429', ...(r.retryAfterS === null ? {} : { retryAfterMs: r.retryAfterS * 1000 }) } };
    case 'refused':
      return { ok: false, failure: { kind: 'refused', detail: 'token endpoint answered 401 (invalid_client)' } };
  }
}

/**
 * Run one scenario; throws (an expectation) when the promise checked is broken. `expiry`: every
 * token the engine hands out is sent at once, and checked against its real expiry. `budget`: a
 * token is sent only while its lease says it is usable (as the isolate cache does), and the token
 * requests' arrivals are checked against an explicit budget.
 */
async function run(sc: Scenario, check: 'expiry' | 'budget'): Promise<void> {
  const lifetimeMs = sc.lifetimeS * 1000;
  const u = upstreamSchema.parse({
    api_origin: 'https://api.test',
    token_url: 'https://api.test/oauth2/token',
    client_id: 'client1',
    client_secret_from: 'SECRET',
    expiry: sc.sliding ? 'sliding' : 'fixed',
    // Honest config: where the answer states no lifetime (or only a JWT exp on a sliding token),
    // the configured default is the token's real lifetime.
    default_lifetime_seconds: sc.lifetimeS,
    refresh_margin_seconds: sc.marginS,
    token_timeout_ms: sc.timeoutMs,
    max_attempts: sc.maxAttempts,
    cooldown_seconds: sc.cooldownS,
    ...(sc.budget === null ? {} : { token_budget: { max_requests: sc.budget.max, window_seconds: sc.budget.windowS } }),
  });

  const issued = new Map<string, Issued>();
  /** When each token request arrived at the issuer (where an upstream counts it). */
  const arrivals: number[] = [];
  let n = 0;

  /**
   * The fake token endpoint: the request arrives (and a token is issued) after `arriveMs`, the
   * answer comes back `answerMs` later. An answer not back within `timeoutMs` is a timeout (the
   * request may still have arrived, and a token been issued that is never delivered).
   */
  const request = (_scope: string, timeoutMs: number): Promise<GrantResult> => {
    const r = sc.requests[n % sc.requests.length]!;
    const token = `tok-${++n}-issued`;
    const timedOut = r.fate === 'timeout' || r.arriveMs + r.answerMs > timeoutMs;
    const arrives = r.fate !== 'lost' && r.arriveMs <= timeoutMs;
    let answer: GrantResult = { ok: false, failure: { kind: 'transient', detail: 'token request timed out' } };
    if (!timedOut) answer = failureOf(r) ?? answer;
    if (arrives) {
      setTimeout(() => {
        const at = Date.now();
        arrivals.push(at);
        if (r.fate !== 'ok' && r.fate !== 'timeout') return;
        const jwtExp = Math.floor(at / 1000) + (sc.sliding ? sc.jwtExpS : sc.lifetimeS);
        issued.set(token, {
          issuedAt: at,
          hardEnd: sc.stated === 'jwt' ? jwtExp * 1000 : sc.sliding ? Infinity : at + lifetimeMs,
          extendedAt: at,
          ...(sc.sliding ? { slidingMs: lifetimeMs } : {}),
        });
        if (timedOut) return;
        answer = { ok: true, value: sc.stated === 'expires_in' ? { token, expiresInS: sc.lifetimeS } : sc.stated === 'jwt' ? { token, jwtExp } : { token } };
      }, r.arriveMs);
    }
    // The arrival timer, if any, fires first (earlier, or same time and set first).
    return new Promise((resolve) => setTimeout(() => resolve(answer), timedOut ? timeoutMs : r.arriveMs + r.answerMs));
  };

  const engine = new TokenEngine(emptyState(), policyOf(u), { maxAttempts: u.max_attempts, timeoutMs: u.token_timeout_ms }, { request, save: () => {}, log: () => {} });

  /** The last token handed out per scope set. */
  const last = new Map<string, Issued>();
  /** The last time the engine said to come back. */
  let retryAt: number | undefined;

  /** A caller sends `outcome`'s token (if any) now; checks the promise and tells the issuer. */
  const send = (scope: string, outcome: TokenOutcome | RejectionOutcome, use: UseScript): string | undefined => {
    if (outcome.kind !== 'token') {
      if (outcome.retryAt !== undefined) retryAt = outcome.retryAt;
      return undefined;
    }
    const now = Date.now();
    const t = issued.get(outcome.token);
    if (t === undefined) throw new Error('the engine handed out a token the issuer never issued');
    if (check === 'budget' && now >= outcome.usableUntil) return undefined;
    const end = trueExpiry(t);
    const skew = trueSkew(t);
    const story = `issued at +${t.issuedAt - START} ms, really expires at +${end - START} ms (skew ${skew} ms), scope "${scope}"`;
    if (check === 'expiry') {
      expect(now, `token sent at +${now - START} ms; ${story}`).toBeLessThan(end - skew);
      // Nor may a cache holding the lease use it that late.
      expect(outcome.usableUntil - START, `lease usable until +${outcome.usableUntil - START} ms; ${story}`).toBeLessThanOrEqual(end - skew - START);
    }
    // It reached the issuer while valid: a sliding token is extended from this use.
    t.extendedAt = Math.max(t.extendedAt, now);
    last.set(scope, t);
    if (use.reported && !use.rejected) engine.reportUse(scope, outcome.token, now);
    return outcome.token;
  };

  for (const use of sc.uses) {
    const scope = SCOPES[use.scope];
    const g = use.gap;
    const held = last.get(scope);
    const at =
      'ms' in g
        ? Date.now() + g.ms
        : 'share' in g
          ? Date.now() + Math.round(g.share * lifetimeMs)
          : 'nearEnd' in g
            ? held === undefined
              ? Date.now()
              : Math.round(trueExpiry(held) - g.nearEnd * trueSkew(held))
            : (retryAt ?? Date.now()) + g.afterRetry;
    const gap = Math.max(0, at - Date.now());
    await vi.advanceTimersByTimeAsync(gap);
    const token = send(scope, await drive(engine.getToken(scope)), use);
    if (token !== undefined && use.rejected) {
      // The isolate retries once with what the engine answers.
      send(scope, await drive(engine.reportRejected(scope, token)), { ...use, rejected: false });
    }
  }
  // Let what is under way (background refreshes) finish, so its arrival is counted.
  for (let i = 0; i < 50 && vi.getTimerCount() > 0; i++) await vi.advanceTimersToNextTimerAsync();

  if (check === 'budget' && sc.budget !== null) {
    // An upstream counting arrivals, even in whole seconds: never more than `max` in any window.
    const windowMs = sc.budget.windowS * 1000 + 1000;
    for (const a of arrivals) {
      const inWindow = arrivals.filter((b) => b >= a && b < a + windowMs).length;
      expect(inWindow, `token requests arriving in the ${sc.budget.windowS} s (+1 s) from +${a - START} ms`).toBeLessThanOrEqual(sc.budget.max);
    }
  }
}

describe('token policy under any clock (fast-check)', () => {
  beforeEach(() => {
    vi.useFakeTimers({ toFake: ['setTimeout', 'clearTimeout', 'Date'], now: START });
    setClock({ now: () => Date.now() });
    // The engine's retry jitter: fixed, so a counterexample replays the same way.
    vi.spyOn(Math, 'random').mockReturnValue(0.5);
  });
  afterEach(() => {
    vi.useRealTimers();
    vi.restoreAllMocks();
    setClock(undefined);
  });

  const property = (check: 'expiry' | 'budget') =>
    fc.asyncProperty(scenario, async (sc) => {
      vi.clearAllTimers();
      vi.setSystemTime(START);
      await run(sc, check);
    });

  it('a token is never sent after its real expiry − skew (10 s, or 1/20 of a short lifetime)', async () => {
    await fc.assert(property('expiry'), { numRuns: 300 });
  });

  it('an explicit budget is never exceeded as the issuer counts (by arrival, even in whole seconds)', async () => {
    await fc.assert(property('budget'), { numRuns: 300 });
  });
});
