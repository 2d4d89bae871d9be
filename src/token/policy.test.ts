/**
 * Unit tests of the pure token policy: every rule as a function of state and a time, with inputs
 * built inline. Expected values are the numbers docs/token-engine.md and issue 7 promise (10 s skew, 1/20 of
 * a short lifetime, 2 s budget slack, backoff 1 s … 60 s, distrust 10 min doubling to 1 h), written
 * out here rather than read from the module's constants, so a changed constant fails a test.
 */
import { describe, expect, it } from 'vitest';
import { upstreamSchema } from '../config/schema';
import {
  emptyState,
  holdToken,
  isUsable,
  judgeRejection,
  mayRequest,
  NO_HARD_END,
  policyOf,
  recordFailedCycle,
  recordIssued,
  recordSend,
  recordUse,
  refreshAt,
  skewMs,
  startDistrust,
  usableUntil,
  type CredentialState,
  type HeldToken,
  type Policy,
  type TokenRequestRecord,
} from './policy';

const S = 1000;
const MIN = 60 * S;
const HOUR = 60 * MIN;
/** An arbitrary epoch, so no rule can lean on times starting at 0. */
const T0 = Date.UTC(2026, 0, 15, 9);

/** A policy as the defaults make it (`refresh_margin_seconds` 60, guard 10 per 60 s), with overrides. */
function policy(over: Partial<Policy> = {}): Policy {
  return {
    sliding: false,
    refreshMarginMs: 60 * S,
    defaultLifetimeMs: HOUR,
    budget: { max: 10, windowMs: MIN, explicit: false },
    requestTimeoutMs: 10 * S,
    throttleCooldownMs: 300 * S,
    ...over,
  };
}

/** The ABS budget: 1 token request per hour, a hard limit. */
const ABS_BUDGET = { max: 1, windowMs: HOUR, explicit: true };

/** A fixed-expiry token obtained by a request sent at `sentAt`, living `lifetimeMs`. */
function fixed(sentAt: number, lifetimeMs: number, over: Partial<HeldToken> = {}): HeldToken {
  return { token: 'tok-current', sentAt, expiresAt: sentAt + lifetimeMs, lifetimeMs, lastUsedAt: sentAt, replacement: false, ...over };
}

/** A sliding token (no hard end unless given) last used at `lastUsedAt`. */
function sliding(sentAt: number, lifetimeMs: number, lastUsedAt = sentAt, over: Partial<HeldToken> = {}): HeldToken {
  return { token: 'tok-current', sentAt, expiresAt: NO_HARD_END, lifetimeMs, lastUsedAt, replacement: false, ...over };
}

function stateWith(requests: TokenRequestRecord[], over: Partial<CredentialState> = {}): CredentialState {
  return { ...emptyState(), requests, ...over };
}

function gateAt(g: ReturnType<typeof mayRequest>): number | 'ok' {
  return g.ok ? 'ok' : g.at;
}

describe('skewMs: the margin kept before a token expires', () => {
  it('is 10 s for an hour-long token', () => {
    expect(skewMs(HOUR)).toBe(10 * S);
  });

  it('is 1/20 of a 5 s token (250 ms), not 10 s', () => {
    expect(skewMs(5 * S)).toBe(250);
  });

  it('is 10 s from a 200 s lifetime on (where 1/20 reaches 10 s)', () => {
    expect(skewMs(200 * S)).toBe(10 * S);
    expect(skewMs(199 * S)).toBe(9_950);
  });
});

describe('usableUntil / isUsable: the one validity rule', () => {
  it('a fixed token is usable until 10 s before its expiry', () => {
    expect(usableUntil(fixed(T0, HOUR), policy())).toBe(T0 + HOUR - 10 * S);
  });

  it('is usable 1 ms before that instant, and not at it', () => {
    const t = fixed(T0, HOUR);
    expect(isUsable(t, policy(), T0 + HOUR - 10 * S - 1)).toBe(true);
    expect(isUsable(t, policy(), T0 + HOUR - 10 * S)).toBe(false);
  });

  it('a sliding token is usable until its lifetime after the last use, minus the skew', () => {
    const t = sliding(T0, 60 * S, T0 + 100 * S);
    // 60 s lifetime: skew 1/20 = 3 s.
    expect(usableUntil(t, policy({ sliding: true }))).toBe(T0 + 157 * S);
  });

  it('a sliding token with a hard end (a JWT exp) stops at that end minus the skew, however recently used', () => {
    const t = sliding(T0, 300 * S, T0 + 200 * S, { expiresAt: T0 + 400 * S });
    expect(usableUntil(t, policy({ sliding: true }))).toBe(T0 + 390 * S);
  });
});

describe('refreshAt: when to fetch the next token', () => {
  it('fixed, 1 h token: 60 s (the margin) before the end of use', () => {
    expect(refreshAt(fixed(T0, HOUR), policy())).toBe(T0 + HOUR - 10 * S - 60 * S);
  });

  it('fixed, 5 s token with the default 60 s margin: at 4.5 s, not at half-life', () => {
    // Skew 250 ms, margin capped at 1/20 = 250 ms.
    expect(refreshAt(fixed(T0, 5 * S), policy())).toBe(T0 + 4_500);
  });

  it('fixed, 600 s token: the 60 s margin is capped at 1/20 of the lifetime (30 s)', () => {
    expect(refreshAt(fixed(T0, 600 * S), policy())).toBe(T0 + 560 * S);
  });

  it('fixed, margin 0: refreshed only when it stops being usable', () => {
    expect(refreshAt(fixed(T0, HOUR), policy({ refreshMarginMs: 0 }))).toBe(T0 + HOUR - 10 * S);
  });

  it('sliding: never ahead, whatever the margin: due when it stops being usable', () => {
    const t = sliding(T0, 60 * S, T0 + 30 * S);
    expect(refreshAt(t, policy({ sliding: true, refreshMarginMs: 30 * S }))).toBe(T0 + 87 * S);
  });

  it('sliding with a hard end that comes first: refreshed ahead of the hard end like a fixed token', () => {
    // Hard end at 400 s, lifetime 300 s: skew 10 s, margin capped at 15 s.
    const t = sliding(T0, 300 * S, T0 + 200 * S, { expiresAt: T0 + 400 * S });
    expect(refreshAt(t, policy({ sliding: true }))).toBe(T0 + 375 * S);
  });
});

describe('holdToken: the expiry is anchored at send time', () => {
  const sentAt = T0 + 123;

  it('expires_in counts from when the request was sent', () => {
    expect(holdToken('tok-a', { expiresInS: 3600 }, sentAt, policy(), false)).toEqual({
      token: 'tok-a',
      sentAt,
      expiresAt: sentAt + HOUR,
      lifetimeMs: HOUR,
      lastUsedAt: sentAt,
      replacement: false,
    });
  });

  it("a JWT's exp is taken as it is (absolute), not moved by the round trip", () => {
    const exp = Math.floor(sentAt / 1000) + 900;
    const t = holdToken('tok-a', { jwtExp: exp }, sentAt, policy(), false);
    expect(t).toMatchObject({ expiresAt: exp * 1000, lifetimeMs: exp * 1000 - sentAt });
  });

  it('expires_in wins over a JWT exp', () => {
    const t = holdToken('tok-a', { expiresInS: 60, jwtExp: Math.floor(sentAt / 1000) + 900 }, sentAt, policy(), false);
    expect(t).toMatchObject({ expiresAt: sentAt + 60 * S, lifetimeMs: 60 * S });
  });

  it('a JWT exp at or before the send time gives no token, and says which field', () => {
    const t = holdToken('tok-a', { jwtExp: Math.floor(sentAt / 1000) }, sentAt, policy(), false);
    expect(t).toEqual({ invalid: expect.stringContaining('"exp"') });
  });

  it('neither: the configured default lifetime, from send', () => {
    const t = holdToken('tok-a', {}, sentAt, policy({ defaultLifetimeMs: 900 * S }), false);
    expect(t).toMatchObject({ expiresAt: sentAt + 900 * S, lifetimeMs: 900 * S });
  });

  it('sliding with expires_in: the lifetime per use, no hard end', () => {
    const t = holdToken('tok-a', { expiresInS: 60 }, sentAt, policy({ sliding: true }), false);
    expect(t).toMatchObject({ expiresAt: NO_HARD_END, lifetimeMs: 60 * S, lastUsedAt: sentAt });
  });

  it('sliding with only a JWT exp: the default lifetime per use, the exp as a hard end', () => {
    const exp = Math.floor(sentAt / 1000) + 7200;
    const t = holdToken('tok-a', { jwtExp: exp }, sentAt, policy({ sliding: true, defaultLifetimeMs: 600 * S }), false);
    expect(t).toMatchObject({ expiresAt: exp * 1000, lifetimeMs: 600 * S });
  });

  it('remembers that a token replaces a rejected one', () => {
    expect(holdToken('tok-a', { expiresInS: 60 }, sentAt, policy(), true)).toMatchObject({ replacement: true });
  });
});

describe('mayRequest: the budget', () => {
  it('with nothing sent, a request may go', () => {
    expect(mayRequest(emptyState(), policy({ budget: ABS_BUDGET }), T0, 'cold')).toEqual({ ok: true });
  });

  it('explicit 1 per hour: the window counts from when the answer came back, plus 2 s of slack', () => {
    const s = stateWith([{ sentAt: T0, doneAt: T0 + 1_500, cause: 'cold' }]);
    const p = policy({ budget: ABS_BUDGET });
    expect(gateAt(mayRequest(s, p, T0 + 1_500 + HOUR, 'expired'))).toBe(T0 + 1_500 + HOUR + 2 * S);
    expect(gateAt(mayRequest(s, p, T0 + 1_500 + HOUR + 2 * S - 1, 'expired'))).toBe(T0 + 1_500 + HOUR + 2 * S);
    expect(gateAt(mayRequest(s, p, T0 + 1_500 + HOUR + 2 * S, 'expired'))).toBe('ok');
  });

  it('a request never answered (a crash mid-request) counts from its deadline', () => {
    const s = stateWith([{ sentAt: T0, cause: 'cold' }]);
    const p = policy({ budget: ABS_BUDGET, requestTimeoutMs: 5 * S });
    expect(gateAt(mayRequest(s, p, T0 + HOUR + 6 * S, 'cold'))).toBe(T0 + 5 * S + HOUR + 2 * S);
  });

  it('says why, in words that name the budget', () => {
    const s = stateWith([{ sentAt: T0, doneAt: T0, cause: 'cold' }]);
    expect(mayRequest(s, policy({ budget: ABS_BUDGET }), T0 + MIN, 'rejected')).toMatchObject({
      ok: false,
      reason: 'budget',
      detail: 'the token budget (1 per 3600 s) is spent',
    });
  });

  it('an explicit budget is a hard limit: the one-per-lifetime refresh waits too', () => {
    const s = stateWith([{ sentAt: T0, doneAt: T0, cause: 'cold' }]);
    const p = policy({ budget: ABS_BUDGET });
    expect(mayRequest(s, p, T0 + 30 * MIN, 'expiring').ok).toBe(false);
    expect(mayRequest(s, p, T0 + 30 * MIN, 'expired').ok).toBe(false);
  });

  it('with 3 allowed, the window reopens when the oldest of the 3 stops counting', () => {
    const s = stateWith([
      { sentAt: T0, doneAt: T0 + 100, cause: 'cold' },
      { sentAt: T0 + 10 * S, doneAt: T0 + 10 * S, cause: 'rejected' },
      { sentAt: T0 + 20 * S, doneAt: T0 + 20 * S, cause: 'rejected' },
    ]);
    const p = policy({ budget: { max: 3, windowMs: MIN, explicit: true } });
    expect(gateAt(mayRequest(s, p, T0 + 30 * S, 'rejected'))).toBe(T0 + 100 + MIN + 2 * S);
  });

  const tenInTheLastMinute = () =>
    stateWith(Array.from({ length: 10 }, (_, i): TokenRequestRecord => ({ sentAt: T0 + i * 5 * S, doneAt: T0 + i * 5 * S, cause: 'rejected' })));

  it('the default guard (10 per 60 s) stops an 11th request made for a rejection', () => {
    expect(mayRequest(tenInTheLastMinute(), policy(), T0 + 50 * S, 'rejected')).toMatchObject({ ok: false, reason: 'budget' });
  });

  it('the default guard stops an 11th cold request and an 11th retry', () => {
    expect(mayRequest(tenInTheLastMinute(), policy(), T0 + 50 * S, 'cold').ok).toBe(false);
    expect(mayRequest(tenInTheLastMinute(), policy(), T0 + 50 * S, 'retry').ok).toBe(false);
  });

  it('the default guard lets an expiring or expired refresh through, 1 s after the last send', () => {
    // The last of the ten was sent at 45 s.
    expect(mayRequest(tenInTheLastMinute(), policy(), T0 + 46 * S, 'expiring')).toEqual({ ok: true });
    expect(mayRequest(tenInTheLastMinute(), policy(), T0 + 46 * S, 'expired')).toEqual({ ok: true });
  });

  it('the default guard spaces those refreshes at least 1 s apart', () => {
    expect(mayRequest(tenInTheLastMinute(), policy(), T0 + 45 * S + 999, 'expiring').ok).toBe(false);
  });

  it('refused within the 1 s spacing, the earliest time given is when the spacing ends (1 s after the last send)', () => {
    // `mayRequest` promises "the earliest time it may": an expiring refresh may go at 46 s.
    expect(gateAt(mayRequest(tenInTheLastMinute(), policy(), T0 + 45 * S + 500, 'expired'))).toBe(T0 + 46 * S);
  });
});

describe('mayRequest: cool-downs', () => {
  const blocked = () => stateWith([], { block: { until: T0 + 120 * S, reason: 'throttled', detail: 'token endpoint answered 429' } });

  it('no request until the block ends, with its reason and detail', () => {
    expect(mayRequest(blocked(), policy(), T0 + 119 * S, 'cold')).toEqual({ ok: false, at: T0 + 120 * S, reason: 'throttled', detail: 'token endpoint answered 429' });
  });

  it('a block stops the one-per-lifetime refresh under the default guard too', () => {
    expect(mayRequest(blocked(), policy(), T0 + 119 * S, 'expired').ok).toBe(false);
  });

  it('at the instant the block ends, a request may go', () => {
    expect(mayRequest(blocked(), policy(), T0 + 120 * S, 'cold')).toEqual({ ok: true });
  });
});

describe('recordSend', () => {
  it('counts a request before it is answered', () => {
    const s = emptyState();
    const p = policy({ budget: ABS_BUDGET });
    recordSend(s, p, T0, 'cold');
    expect(mayRequest(s, p, T0 + 1, 'rejected').ok).toBe(false);
  });

  it('forgets requests that no longer count, but keeps the last one (the guard spaces from it)', () => {
    const p = policy({ budget: { max: 10, windowMs: MIN, explicit: false } });
    const s = stateWith([
      { sentAt: T0, doneAt: T0, cause: 'cold' },
      { sentAt: T0 + S, doneAt: T0 + S, cause: 'expiring' },
    ]);
    recordSend(s, p, T0 + 10 * MIN, 'expired');
    expect(s.requests.map((r) => r.sentAt)).toEqual([T0 + S, T0 + 10 * MIN]);
  });
});

describe('recordIssued', () => {
  it('holds the token for its scope set, and ends the failures and the block', () => {
    const s = stateWith([], { failures: 3, block: { until: T0 + 4 * S, reason: 'outage', detail: 'x' } });
    const t = fixed(T0, HOUR);
    recordIssued(s, 'read write', t);
    expect(s.tokens['read write']).toBe(t);
    expect(s.failures).toBe(0);
    expect(s.block).toBeUndefined();
    expect(s.counts.issued).toBe(1);
  });
});

describe('recordFailedCycle: backoff and throttling', () => {
  it('an outage backs off 1 s, 2 s, 4 s … and never more than 60 s', () => {
    const s = emptyState();
    const waits: number[] = [];
    for (let i = 0; i < 9; i++) {
      recordFailedCycle(s, policy(), { kind: 'transient', detail: 'token endpoint answered 503' }, T0);
      waits.push((s.block!.until - T0) / S);
    }
    expect(waits).toEqual([1, 2, 4, 8, 16, 32, 60, 60, 60]);
    expect(s.block!.reason).toBe('outage');
  });

  it('after a token is issued, the backoff starts again at 1 s', () => {
    const s = emptyState();
    for (let i = 0; i < 4; i++) recordFailedCycle(s, policy(), { kind: 'transient', detail: 'x' }, T0);
    recordIssued(s, '', fixed(T0, HOUR));
    recordFailedCycle(s, policy(), { kind: 'transient', detail: 'x' }, T0 + MIN);
    expect(s.block!.until).toBe(T0 + MIN + S);
  });

  it('refused credentials back off alike, and the block says refused', () => {
    const s = emptyState();
    recordFailedCycle(s, policy(), { kind: 'refused', detail: 'token endpoint answered 401 (invalid_client)' }, T0);
    expect(s.block).toEqual({ until: T0 + S, reason: 'refused', detail: 'token endpoint answered 401 (invalid_client)' });
  });

  it('throttled with Retry-After: no request until then', () => {
    const s = emptyState();
    recordFailedCycle(s, policy(), { kind: 'throttled', detail: 'token endpoint answered 429', retryAfterMs: 120 * S }, T0);
    expect(s.block).toMatchObject({ until: T0 + 120 * S, reason: 'throttled' });
  });

  it('throttled without Retry-After: the configured cool-down', () => {
    const s = emptyState();
    recordFailedCycle(s, policy({ throttleCooldownMs: 3600 * S }), { kind: 'throttled', detail: 'token endpoint answered 403' }, T0);
    expect(s.block!.until).toBe(T0 + 3600 * S);
  });

  it('a hostile Retry-After (30 days) is capped at 24 h', () => {
    const s = emptyState();
    recordFailedCycle(s, policy(), { kind: 'throttled', detail: 'x', retryAfterMs: 30 * 24 * HOUR }, T0);
    expect(s.block!.until).toBe(T0 + 24 * HOUR);
  });
});

describe('judgeRejection', () => {
  const withToken = (t: HeldToken, over: Partial<CredentialState> = {}) => stateWith([], { tokens: { '': t }, ...over });

  it('a token that is no longer current is stale (use the current one)', () => {
    expect(judgeRejection(withToken(fixed(T0, HOUR)), '', 'tok-older', T0)).toEqual({ kind: 'stale' });
  });

  it('a token of a scope set that holds none is stale', () => {
    expect(judgeRejection(emptyState(), 'read', 'tok-current', T0)).toEqual({ kind: 'stale' });
  });

  it('the current token, obtained normally: replace it', () => {
    expect(judgeRejection(withToken(fixed(T0, HOUR)), '', 'tok-current', T0 + S)).toEqual({ kind: 'replace' });
  });

  it('a replacement no API ever accepted, rejected in turn: distrust the rejections', () => {
    expect(judgeRejection(withToken(fixed(T0, HOUR, { replacement: true })), '', 'tok-current', T0 + S)).toEqual({ kind: 'distrust' });
  });

  it('a replacement the API accepted once, rejected later: replace it (the rejection may be about the token)', () => {
    const t = fixed(T0, HOUR, { replacement: true, acceptedAt: T0 + S });
    expect(judgeRejection(withToken(t), '', 'tok-current', T0 + MIN)).toEqual({ kind: 'replace' });
  });

  it('while rejections are distrusted, they are ignored until the distrust ends', () => {
    const s = withToken(fixed(T0, HOUR), { distrust: { until: T0 + 10 * MIN, level: 0 } });
    expect(judgeRejection(s, '', 'tok-current', T0 + 10 * MIN - 1)).toEqual({ kind: 'ignore', until: T0 + 10 * MIN });
    expect(judgeRejection(s, '', 'tok-current', T0 + 10 * MIN)).toEqual({ kind: 'replace' });
  });

  it('a stale token is stale even while rejections are distrusted', () => {
    const s = withToken(fixed(T0, HOUR), { distrust: { until: T0 + 10 * MIN, level: 0 } });
    expect(judgeRejection(s, '', 'tok-older', T0)).toEqual({ kind: 'stale' });
  });
});

describe('startDistrust', () => {
  it('distrusts for 10 min the first time', () => {
    const s = emptyState();
    expect(startDistrust(s, T0)).toBe(T0 + 10 * MIN);
  });

  it('doubles each time it happens again soon after, up to 1 h: 10, 20, 40, 60, 60 min', () => {
    const s = emptyState();
    const lengths: number[] = [];
    let now = T0;
    for (let i = 0; i < 5; i++) {
      const until = startDistrust(s, now);
      lengths.push((until - now) / MIN);
      now = until; // rejected again as soon as the distrust ended
    }
    expect(lengths).toEqual([10, 20, 40, 60, 60]);
  });

  it('starts again at 10 min when the last distrust ended over an hour ago', () => {
    const s = emptyState();
    const first = startDistrust(s, T0);
    startDistrust(s, first); // 20 min
    const later = s.distrust!.until + HOUR + 1;
    expect(startDistrust(s, later)).toBe(later + 10 * MIN);
  });
});

describe('recordUse', () => {
  const withToken = (t: HeldToken) => stateWith([], { tokens: { '': t } });

  it('a use keeps a sliding token alive: usable until lifetime after it, minus the skew', () => {
    const s = withToken(sliding(T0, 60 * S));
    expect(recordUse(s, '', 'tok-current', T0 + 50 * S, T0 + 50 * S)).toBe(true);
    expect(usableUntil(s.tokens['']!, policy({ sliding: true }))).toBe(T0 + 107 * S);
  });

  it('an older use than the last known does not shorten the token', () => {
    const s = withToken(sliding(T0, 60 * S, T0 + 50 * S, { acceptedAt: T0 + 10 * S }));
    expect(recordUse(s, '', 'tok-current', T0 + 20 * S, T0 + 60 * S)).toBe(false);
    expect(s.tokens['']!.lastUsedAt).toBe(T0 + 50 * S);
  });

  it('a use reported from the future counts as now', () => {
    const s = withToken(sliding(T0, 60 * S));
    recordUse(s, '', 'tok-current', T0 + 90 * S, T0 + 40 * S);
    expect(s.tokens['']!.lastUsedAt).toBe(T0 + 40 * S);
  });

  it('marks the token accepted once, at its first use', () => {
    const s = withToken(fixed(T0, HOUR, { replacement: true }));
    recordUse(s, '', 'tok-current', T0 + 5 * S, T0 + 6 * S);
    recordUse(s, '', 'tok-current', T0 + 9 * S, T0 + 9 * S);
    expect(s.tokens['']!.acceptedAt).toBe(T0 + 5 * S);
  });

  it('a use of another token changes nothing', () => {
    const s = withToken(sliding(T0, 60 * S));
    expect(recordUse(s, '', 'tok-older', T0 + 50 * S, T0 + 50 * S)).toBe(false);
    expect(s.tokens['']).toEqual(sliding(T0, 60 * S));
  });
});

describe('policyOf: the rules from an upstream config', () => {
  const base = { api_origin: 'https://api.test', token_url: 'https://api.test/oauth2/token', client_id: 'c', client_secret_from: 'SECRET' };

  it('without token_budget: the default guard, 10 per 60 s, not a hard limit', () => {
    expect(policyOf(upstreamSchema.parse(base)).budget).toEqual({ max: 10, windowMs: MIN, explicit: false });
  });

  it('with token_budget: that budget, as a hard limit', () => {
    const u = upstreamSchema.parse({ ...base, token_budget: { max_requests: 1, window_seconds: 3600 } });
    expect(policyOf(u).budget).toEqual({ max: 1, windowMs: HOUR, explicit: true });
  });

  it('config seconds become milliseconds', () => {
    const u = upstreamSchema.parse({ ...base, expiry: 'sliding', refresh_margin_seconds: 30, default_lifetime_seconds: 900, cooldown_seconds: 120, token_timeout_ms: 4000 });
    expect(policyOf(u)).toMatchObject({ sliding: true, refreshMarginMs: 30 * S, defaultLifetimeMs: 900 * S, throttleCooldownMs: 120 * S, requestTimeoutMs: 4000 });
  });
});

describe('a clock that jumps', () => {
  it('stepped back after a send: the request still counts (it cannot count less than a full window)', () => {
    const s = stateWith([{ sentAt: T0, doneAt: T0 + S, cause: 'cold' }]);
    // The clock now reads 10 min before the send it recorded: still inside the window, refused.
    expect(gateAt(mayRequest(s, policy({ budget: ABS_BUDGET }), T0 - 10 * MIN, 'expired'))).toBe(T0 + S + HOUR + 2 * S);
  });

  it('stepped back after a use: a sliding token is never extended past what the API saw', () => {
    const s = stateWith([]);
    s.tokens[''] = sliding(T0, MIN, T0 + 30 * S);
    // A report of a use "in the future" (another clock) counts only up to now.
    recordUse(s, '', 'tok-current', T0 + 10 * MIN, T0 + 40 * S);
    expect(s.tokens['']!.lastUsedAt).toBe(T0 + 40 * S);
  });

  it('jumped forward past the end: the token is not usable, whatever was planned', () => {
    const t = fixed(T0, HOUR);
    expect(isUsable(t, policy(), T0 + 5 * HOUR)).toBe(false);
    expect(refreshAt(t, policy())).toBeLessThan(T0 + 5 * HOUR);
  });
});
