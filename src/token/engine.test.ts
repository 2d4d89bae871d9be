/**
 * Unit tests of the token engine with its I/O injected: a scripted token endpoint (answering at
 * once, or when the test releases an answer) and a fake clock (`setClock`). The policy's rules are
 * tested in policy.test.ts and the contract cases (test/contract/); these are the engine's own
 * duties: single-flight, background refresh, rejection reports joining a refresh, the budget shared
 * by scope sets and spent by retries, never handing out a token that is not usable now, and the one
 * fresh retry of a refused client assertion.
 */
import { afterEach, describe, expect, it } from 'vitest';
import { setClock } from '../clock';
import { TokenEngine } from './engine';
import type { GrantResult } from './grant';
import { emptyState, type Policy } from './policy';

const S = 1000;
const HOUR = 3600 * S;
const T0 = Date.UTC(2026, 2, 3, 4);

function policy(over: Partial<Policy> = {}): Policy {
  return {
    sliding: false,
    refreshMarginMs: 60 * S,
    defaultLifetimeMs: HOUR,
    budget: { max: 10, windowMs: 60 * S, explicit: false },
    requestTimeoutMs: 10 * S,
    throttleCooldownMs: 300 * S,
    ...over,
  };
}

const ABS_BUDGET = { max: 1, windowMs: HOUR, explicit: true };
const tokenAnswer = (token: string, expiresInS = 3600): GrantResult => ({ ok: true, value: { token, expiresInS } });
const unavailable503: GrantResult = { ok: false, failure: { kind: 'transient', detail: 'token endpoint answered 503' } };

type Answerer = (n: number) => GrantResult | { after: number; answer: GrantResult };

/**
 * An engine over a fake token endpoint. With `answerAll(f)` each request is answered at once by
 * `f(n)` (or `{after, answer}`: the clock moves on by `after` ms before the answer arrives); with
 * `answerAll(undefined)` requests wait until `release(answer)`.
 */
function harness(p: Policy, limits = { maxAttempts: 1, timeoutMs: 10 * S }) {
  let now = T0;
  setClock({ now: () => now });
  const waiting: Array<(r: GrantResult) => void> = [];
  let answerer: Answerer | undefined;
  let sent = 0;
  const engine = new TokenEngine(emptyState(), p, limits, {
    request: async () => {
      const n = ++sent;
      if (answerer === undefined) return new Promise<GrantResult>((resolve) => waiting.push(resolve));
      const a = answerer(n);
      if ('after' in a) {
        now += a.after;
        return a.answer;
      }
      return a;
    },
    save: () => {},
    log: () => {},
  });
  return {
    engine,
    sent: () => sent,
    now: () => now,
    at: (ms: number) => {
      now = T0 + ms;
    },
    answerAll: (f: Answerer | undefined) => {
      answerer = f;
    },
    /** Answer the oldest request still waiting. */
    release: async (r: GrantResult) => {
      const next = waiting.shift();
      if (next === undefined) throw new Error('no token request is waiting');
      next(r);
      for (let i = 0; i < 20; i++) await Promise.resolve();
    },
  };
}

const tokenOf = (o: { kind: string; token?: string }) => (o.kind === 'token' ? o.token : o.kind);

afterEach(() => setClock(undefined));

describe('TokenEngine: single-flight and background refresh', () => {
  it('100 concurrent callers on a cold start share one token request', async () => {
    const h = harness(policy());
    const calls = Array.from({ length: 100 }, () => h.engine.getToken(''));
    await h.release(tokenAnswer('tok-first-one'));
    const outcomes = await Promise.all(calls);
    expect(h.sent()).toBe(1);
    expect(new Set(outcomes.map(tokenOf))).toEqual(new Set(['tok-first-one']));
  });

  it('due for a refresh, callers get the current token at once while one request fetches the next', async () => {
    const h = harness(policy({ refreshMarginMs: 30 * S }));
    h.answerAll(() => tokenAnswer('tok-first-one', 600));
    await h.engine.getToken('');
    h.answerAll(undefined); // the endpoint now answers only when released
    h.at(560 * S); // 600 s − 10 s skew − 30 s margin
    const during = await Promise.all([h.engine.getToken(''), h.engine.getToken(''), h.engine.getToken('')]);
    expect(during.map(tokenOf)).toEqual(['tok-first-one', 'tok-first-one', 'tok-first-one']);
    expect(h.sent()).toBe(2);
    await h.release(tokenAnswer('tok-second-one', 600));
    expect(tokenOf(await h.engine.getToken(''))).toBe('tok-second-one');
  });

  it('a rejection reported while the replacement is being fetched joins that request', async () => {
    const h = harness(policy({ refreshMarginMs: 30 * S }));
    h.answerAll(() => tokenAnswer('tok-first-one', 600));
    await h.engine.getToken('');
    h.answerAll(undefined);
    h.at(560 * S);
    await h.engine.getToken(''); // starts the background refresh
    const report = h.engine.reportRejected('', 'tok-first-one');
    await h.release(tokenAnswer('tok-second-one', 600));
    expect(tokenOf(await report)).toBe('tok-second-one');
    expect(h.sent()).toBe(2);
  });
});

describe('TokenEngine: rejections keep the token until a replacement is stored', () => {
  it('the replacement request fails: the rejected token is kept, and still handed out', async () => {
    const h = harness(policy());
    h.answerAll(() => tokenAnswer('tok-first-one'));
    await h.engine.getToken('');
    h.answerAll(() => unavailable503);
    h.at(10 * S);
    expect(await h.engine.reportRejected('', 'tok-first-one')).toMatchObject({ kind: 'kept', why: 'outage', retryAt: T0 + 11 * S });
    expect(tokenOf(await h.engine.getToken(''))).toBe('tok-first-one');
    expect(h.sent()).toBe(2);
  });
});

describe('TokenEngine: the budget is the credential set’s', () => {
  it('budget 1 per hour across three scope sets: 1 token request, the others wait', async () => {
    const h = harness(policy({ budget: ABS_BUDGET }));
    h.answerAll((n) => tokenAnswer(`tok-number-${n}`));
    const outcomes = [await h.engine.getToken('a'), await h.engine.getToken('b'), await h.engine.getToken('c')];
    expect(outcomes.map((o) => (o.kind === 'unavailable' ? o.reason : o.kind))).toEqual(['token', 'budget', 'budget']);
    expect(h.sent()).toBe(1);
  });

  it('retries within a cycle count: budget 2 per hour, an endpoint down, 3 attempts allowed → 2 token requests', async () => {
    const h = harness(policy({ budget: { max: 2, windowMs: HOUR, explicit: true } }), { maxAttempts: 3, timeoutMs: 10 * S });
    h.answerAll(() => unavailable503);
    expect(await h.engine.getToken('')).toMatchObject({ kind: 'unavailable', reason: 'outage' });
    expect(h.sent()).toBe(2);
  });
});

describe('TokenEngine: never a token that is not usable now', () => {
  it('a 5 s token whose answer took 4.8 s (past its usable end at 4.75 s) is not handed out', async () => {
    const h = harness(policy());
    h.answerAll(() => ({ after: 4_800, answer: tokenAnswer('tok-late-one', 5) }));
    const o = await h.engine.getToken('');
    // Anchored at the send, the token is usable until 5 s − 250 ms skew: already over when it arrives.
    expect(o, 'answered at 4.8 s, usable until 4.75 s').toMatchObject({ kind: 'unavailable' });
  });

  it('a token whose answer came back in time is usable for the rest of its life', async () => {
    const h = harness(policy());
    h.answerAll(() => ({ after: 1_500, answer: tokenAnswer('tok-timely-one', 60) }));
    // 60 s from the send, minus 3 s (1/20): usable until 57 s although it arrived at 1.5 s.
    expect(await h.engine.getToken('')).toMatchObject({ kind: 'token', usableUntil: T0 + 57 * S });
  });
});

describe('TokenEngine: a refused client assertion gets one fresh retry (issue 16)', () => {
  const refusedAssertion: GrantResult = { ok: false, failure: { kind: 'refused', detail: 'token endpoint answered 401 (invalid_client)', freshRetry: true } };
  const refused: GrantResult = { ok: false, failure: { kind: 'refused', detail: 'token endpoint answered 401 (invalid_client)' } };

  /** An engine whose endpoint answers `answers[n]` in turn, recording what each request was told. */
  function scripted(answers: GrantResult[], limits = { maxAttempts: 3, timeoutMs: 10 * S }, p = policy()) {
    setClock({ now: () => T0 });
    const told: boolean[] = [];
    const engine = new TokenEngine(emptyState(), p, limits, {
      request: async (_scope, _timeoutMs, afterRefusal) => {
        told.push(afterRefusal);
        return answers[told.length - 1] ?? refused;
      },
      save: () => {},
      log: () => {},
    });
    return { engine, told };
  }

  it('refused once (a replayed jti): the next request, told so, gets the token', async () => {
    const { engine, told } = scripted([refusedAssertion, tokenAnswer('tok-after-fresh-one')]);
    expect(tokenOf(await engine.getToken(''))).toBe('tok-after-fresh-one');
    expect(told).toEqual([false, true]);
  });

  it('refused twice: the cycle ends after two requests, not max_attempts', async () => {
    const { engine, told } = scripted([refusedAssertion, refusedAssertion, tokenAnswer('tok-never-asked')]);
    expect(await engine.getToken('')).toMatchObject({ kind: 'unavailable', reason: 'refused' });
    expect(told).toEqual([false, true]);
  });

  it('a refusal that is not about the assertion is not retried', async () => {
    const { engine, told } = scripted([refused, tokenAnswer('tok-never-asked')]);
    expect(await engine.getToken('')).toMatchObject({ kind: 'unavailable', reason: 'refused' });
    expect(told).toEqual([false]);
  });

  it('the retry is a token request like any other: max_attempts = 1 and a spent budget both stop it', async () => {
    const one = scripted([refusedAssertion, tokenAnswer('tok-never-asked')], { maxAttempts: 1, timeoutMs: 10 * S });
    expect(await one.engine.getToken('')).toMatchObject({ kind: 'unavailable', reason: 'refused' });
    expect(one.told).toEqual([false]);
    const budget = scripted([refusedAssertion, tokenAnswer('tok-never-asked')], undefined, policy({ budget: { max: 1, windowMs: HOUR, explicit: true } }));
    expect(await budget.engine.getToken('')).toMatchObject({ kind: 'unavailable' });
    expect(budget.told).toEqual([false]);
  });
});
