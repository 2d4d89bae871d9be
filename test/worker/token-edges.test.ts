/**
 * The token layer at its edges (issue 14). Each test names the one-line mutation it fails on; unless
 * it says "also caught by", no other test failed on that mutation. Observed as a caller sees it:
 * the Worker's answers, the token the API received, the TokenStore calls an isolate makes, the
 * stand-in's token requests. On a fake clock (src/clock.ts): in workerd `Date.now()` only moves
 * across I/O.
 */
import { describe, expect, it, vi } from 'vitest';
import { clearIsolateCache } from '../../src/token/cache';
import { TokenStore } from '../../src/token/store';
import { apiHits, post, setApi, setToken, tokenHits } from '../helpers';
import { countStoreCalls, failStoreCalls, fakeClock, scopeStatus, SECOND } from './token-helpers';

const bearer = (h: { headers: Record<string, string> }) => h.headers.authorization ?? '';
/** The token the API received with the last call to `upstream`. */
const lastToken = async (upstream: string) => bearer((await apiHits(upstream)).at(-1)!);

/** A fake clock an hour past the previous one: cases that share an upstream never meet its back-off or budget. */
let hours = 0;
const nextHourClock = () => fakeClock(Date.UTC(2026, 11, 1, 12) + ++hours * 3_600_000);

/** Count TokenStore.reportRejected calls for `upstream` (RPC dispatches through the class). */
function countRejectionReports(upstream: string) {
  const proto = TokenStore.prototype;
  const original = proto.reportRejected;
  const counter = {
    calls: 0,
    restore: () => {
      proto.reportRejected = original;
    },
  };
  proto.reportRejected = function (this: TokenStore, ref) {
    if (ref.upstream === upstream) counter.calls++;
    return original.call(this, ref);
  };
  return counter;
}

describe('refresh-ahead reaches the isolates (the refresh margin is in the lease they hold)', () => {
  // Mutation: the lease's hardRefreshAt without the margin (`hardRefreshAt: hard`). Also fails on
  // the lease's hard end without the skew, and on the isolate's `now < refreshAt` as `<=`.
  it('a sliding token with a JWT exp: a warm isolate asks the store refresh_margin (capped at 1/20) before the hard end, and the refresh runs in the background', async () => {
    const clock = fakeClock();
    const t0 = clock.now();
    // Sliding 300 s from each use, but the JWT ends at 600 s: usable until 590 s (10 s skew),
    // refreshed from 575 s (the 30 s margin capped at 300 s / 20).
    await setToken('edgeslidejwt', { expiresIn: null, jwtExpSeconds: 600, jwtNow: t0 / 1000 });
    expect((await post('/t/edgeslidejwt', {})).status).toBe(200);
    const first = await lastToken('edgeslidejwt');
    const store = countStoreCalls('edgeslidejwt');
    try {
      for (const s of [100, 200, 300, 400, 500, 574]) {
        clock.set(t0 + s * SECOND);
        expect((await post('/t/edgeslidejwt', { s })).status).toBe(200);
      }
      expect(store.calls).toBe(0); // each use slid the token in this isolate: no store call
      // The store heard of the uses: its view of the token ends at the JWT's exp.
      await vi.waitFor(async () => expect((await scopeStatus('edgeslidejwt')).token?.expiresAt).toBe(t0 + 600 * SECOND));

      clock.set(t0 + 576 * SECOND);
      // The next token's JWT ends 600 s from now.
      await setToken('edgeslidejwt', { expiresIn: null, jwtExpSeconds: 600, jwtNow: clock.now() / 1000 });
      expect((await post('/t/edgeslidejwt', {})).status).toBe(200);
      expect(store.calls).toBe(1);
      expect(await lastToken('edgeslidejwt')).toBe(first); // still good: handed out while the next is fetched
      await vi.waitFor(async () => expect(await tokenHits('edgeslidejwt')).toHaveLength(2));

      clock.set(t0 + 577 * SECOND);
      expect((await post('/t/edgeslidejwt', {})).status).toBe(200);
      expect(await lastToken('edgeslidejwt')).not.toBe(first);
      expect(await tokenHits('edgeslidejwt')).toHaveLength(2);
    } finally {
      store.restore();
    }
  });

  // Mutation: the lease's refreshAt without the margin (`refreshAt: until`); also caught by the
  // hiccup test in token-promises.test.ts (this one says what the margin is for).
  it('a fixed-expiry JWT (no expires_in): a warm isolate asks the store refresh_margin before the usable end, and the refresh runs in the background', async () => {
    const clock = fakeClock();
    const t0 = clock.now();
    // 600 s from exp: usable until 590 s, refreshed from 560 s.
    await setToken('edgejwtfixed', { expiresIn: null, jwtExpSeconds: 600, jwtNow: t0 / 1000 });
    expect((await post('/t/edgejwtfixed', {})).status).toBe(200);
    const first = await lastToken('edgejwtfixed');
    const store = countStoreCalls('edgejwtfixed');
    try {
      clock.set(t0 + 559 * SECOND);
      expect((await post('/t/edgejwtfixed', {})).status).toBe(200);
      expect(store.calls).toBe(0);

      clock.set(t0 + 561 * SECOND);
      await setToken('edgejwtfixed', { expiresIn: null, jwtExpSeconds: 600, jwtNow: clock.now() / 1000 });
      expect((await post('/t/edgejwtfixed', {})).status).toBe(200);
      expect(store.calls).toBe(1);
      expect(await lastToken('edgejwtfixed')).toBe(first);
      await vi.waitFor(async () => expect(await tokenHits('edgejwtfixed')).toHaveLength(2));

      clock.set(t0 + 562 * SECOND);
      expect((await post('/t/edgejwtfixed', {})).status).toBe(200);
      expect(await lastToken('edgejwtfixed')).not.toBe(first);
      expect(await tokenHits('edgejwtfixed')).toHaveLength(2);
    } finally {
      store.restore();
    }
  });
});

describe('an isolate repeats a negative answer for at most 30 s (token/cache.ts promises it)', () => {
  // Mutation: the refusal remembered until the store's retryAt (`until: outcome.retryAt`).
  it('a 120 s throttle: the isolate answers for 30 s without the store, then asks it again (and again 30 s later)', async () => {
    const clock = nextHourClock();
    const t0 = clock.now();
    await setToken('edgerefuse', { status: 429, body: '{"error":"slow_down"}', headers: { 'Retry-After': '120' } });
    const first = await post('/t/edgerefuse', {});
    expect(first.status).toBe(503);
    expect(first.headers.get('Retry-After')).toBe('120');
    const store = countStoreCalls('edgerefuse');
    try {
      clock.set(t0 + 30 * SECOND - 1);
      const held = await post('/t/edgerefuse', {});
      expect([held.status, held.headers.get('Retry-After')]).toEqual([503, '91']);
      expect(store.calls).toBe(0);

      clock.set(t0 + 30 * SECOND);
      const asked = await post('/t/edgerefuse', {});
      expect([asked.status, asked.headers.get('Retry-After')]).toEqual([503, '90']);
      expect(store.calls).toBe(1);

      clock.set(t0 + 60 * SECOND - 1);
      expect((await post('/t/edgerefuse', {})).status).toBe(503);
      expect(store.calls).toBe(1);
      clock.set(t0 + 60 * SECOND);
      expect((await post('/t/edgerefuse', {})).status).toBe(503);
      expect(store.calls).toBe(2);
      expect(await tokenHits('edgerefuse')).toHaveLength(1); // the store still honours the 120 s
    } finally {
      store.restore();
    }
  });

  // Mutations: the kept answer remembered until its retryAt (`until: outcome.retryAt`), or held at
  // its end (`now <= kept.until`).
  it('a token kept on a rejection (budget spent for an hour): the isolate repeats the 502 for 30 s, then reports again', async () => {
    const clock = fakeClock();
    const t0 = clock.now();
    await setApi('edgekept', { denyPaths: { '/api/forbidden': 403 } });
    expect((await post('/t/edgekept', {})).status).toBe(200);
    const kept = await post('/t/edgekept/forbidden', {});
    expect(kept.status).toBe(502);
    expect(kept.json()).toMatchObject({ reason: 'token-rejected', detail: expect.stringContaining('token budget (1 per 3600 s) is spent') });
    const reports = countRejectionReports('edgekept');
    try {
      clock.set(t0 + 30 * SECOND - 1);
      expect((await post('/t/edgekept/forbidden', {})).status).toBe(502);
      expect(reports.calls).toBe(0);
      clock.set(t0 + 30 * SECOND);
      expect((await post('/t/edgekept/forbidden', {})).status).toBe(502);
      expect(reports.calls).toBe(1);
    } finally {
      reports.restore();
    }
    expect(await tokenHits('edgekept')).toHaveLength(1);
  });
});

describe('an isolate does not remember what the store did not say', () => {
  // Mutations: any refusal remembered (`retryAt - now > 0`, or `>= STORE_RETRY_MS`): a store call
  // that failed (retryAt 1 s ahead) then answers for the store.
  it('a store call that failed is not repeated: the next request, at the same moment, asks the store again', async () => {
    nextHourClock();
    expect((await post('/t/edgehiccup', {})).status).toBe(200); // a token in the store
    clearIsolateCache(); // a cold isolate: no token in hand to fall back on
    const failing = failStoreCalls('edgehiccup');
    let res: Awaited<ReturnType<typeof post>>;
    try {
      res = await post('/t/edgehiccup', {});
    } finally {
      failing.restore();
    }
    expect(res.json()).toMatchObject({ reason: 'token-store-unavailable' });
    const store = countStoreCalls('edgehiccup');
    try {
      const again = await post('/t/edgehiccup', {});
      expect(again.status, again.text).toBe(200);
      expect(store.calls).toBe(1);
    } finally {
      store.restore();
    }
  });
});

describe('Retry-After is never below 1 (a 0 invites a busy loop)', () => {
  const retryAfter = (res: { headers: Headers }) => res.headers.get('Retry-After');

  // Mutations (each with the other clamp dropped too, as each alone is also pinned by the unit
  // tests beside problem.ts and token-problems.ts): Retry-After as floor, or not clamped at 1.
  it('throttled, 5 ms before the cool-down ends: 1, from the isolate and from the store', async () => {
    const clock = nextHourClock();
    const t0 = clock.now();
    await setToken('edgeretry', { status: 429, body: '{}', headers: { 'Retry-After': '30' } });
    expect(retryAfter(await post('/t/edgeretry', {}))).toBe('30');
    clock.set(t0 + 30 * SECOND - 5);
    const fromIsolate = await post('/t/edgeretry', {});
    expect(fromIsolate.json()).toMatchObject({ reason: 'token-endpoint-throttling' });
    expect(retryAfter(fromIsolate)).toBe('1');
    clearIsolateCache();
    const fromStore = await post('/t/edgeretry', {});
    expect(fromStore.json()).toMatchObject({ reason: 'token-endpoint-throttling' });
    expect(retryAfter(fromStore)).toBe('1');
  });

  it.each([['0'], ['Wed, 21 Oct 2015 07:28:00 GMT']])('a token endpoint throttling with Retry-After %s: 1', async (value) => {
    nextHourClock();
    await setToken('edgeretry', { status: 429, body: '{}', headers: { 'Retry-After': value } });
    const res = await post('/t/edgeretry', {});
    expect(res.json()).toMatchObject({ reason: 'token-endpoint-throttling' });
    expect(retryAfter(res)).toBe('1');
  });

  it('an outage, 5 ms before the back-off ends: 1', async () => {
    const clock = nextHourClock();
    await setToken('edgeretryoutage', { status: 503, body: '' });
    const first = await post('/t/edgeretryoutage', {});
    expect(first.json()).toMatchObject({ reason: 'token-endpoint-unavailable' });
    const until = (await scopeStatus('edgeretryoutage')).block!.until;
    clock.set(until - 5);
    const res = await post('/t/edgeretryoutage', {});
    expect(res.json()).toMatchObject({ reason: 'token-endpoint-unavailable' });
    expect(retryAfter(res)).toBe('1');
  });

  it('a spent budget, 5 ms before the window (and its 2 s slack) frees a request: 1', async () => {
    const clock = nextHourClock();
    const t0 = clock.now();
    await setToken('edgeretrybudget', { expiresIn: 20 });
    expect((await post('/t/edgeretrybudget', {})).status).toBe(200);
    clock.set(t0 + 62 * SECOND - 5);
    const res = await post('/t/edgeretrybudget', {});
    expect(res.json()).toMatchObject({ reason: 'token-budget-exhausted' });
    expect(retryAfter(res)).toBe('1');
  });

  it('a rejected token kept because the budget is spent, 5 ms before it frees: 1', async () => {
    const clock = nextHourClock();
    const t0 = clock.now();
    await setToken('edgeretrykept', { expiresIn: 7200 });
    await setApi('edgeretrykept', { denyPaths: { '/api/forbidden': 403 } });
    expect((await post('/t/edgeretrykept', {})).status).toBe(200);
    clock.set(t0 + 3602 * SECOND - 5);
    const res = await post('/t/edgeretrykept/forbidden', {});
    expect(res.json()).toMatchObject({ reason: 'token-rejected' });
    expect(retryAfter(res)).toBe('1');
  });
});

describe('which token endpoint answers are transient', () => {
  // Mutations: 408 classified as a refusal (`s >= 500` only); 500 left out (`s > 500 || s === 408`).
  it.each([[408], [500], [502], [503], [504]])('%i is transient like 5xx: retried within the call (max_attempts = 2), then 503 + Retry-After', async (status) => {
    nextHourClock();
    const before = (await tokenHits('edgestatus')).length;
    await setToken('edgestatus', { status, body: '' });
    const res = await post('/t/edgestatus', {});
    expect(res.status).toBe(503);
    expect(res.json()).toMatchObject({ reason: 'token-endpoint-unavailable', detail: `token endpoint answered ${status}` });
    expect(Number(res.headers.get('Retry-After'))).toBeGreaterThanOrEqual(1);
    expect((await tokenHits('edgestatus')).length - before).toBe(2);
  });

  // Mutation: 405 left out of the configuration errors (`s === 404` only): it read as refused credentials.
  it.each([[404], [405]])('%i at token_url is a configuration error: sent once, 502 naming token_url and token_method', async (status) => {
    nextHourClock();
    const before = (await tokenHits('edgestatus')).length;
    await setToken('edgestatus', { status, body: '' });
    const res = await post('/t/edgestatus', {});
    expect(res.status).toBe(502);
    expect(res.json()).toMatchObject({ reason: 'token-endpoint-misconfigured', detail: `token endpoint answered ${status}: check token_url and token_method` });
    expect((await tokenHits('edgestatus')).length - before).toBe(1);
  });

  it.each([[400], [401], [409], [499]])('%i is a refusal: sent once, 502 naming the credentials', async (status) => {
    nextHourClock();
    const before = (await tokenHits('edgestatus')).length;
    await setToken('edgestatus', { status, body: '' });
    const res = await post('/t/edgestatus', {});
    expect(res.status).toBe(502);
    expect(res.json()).toMatchObject({ reason: 'credentials-refused' });
    expect((await tokenHits('edgestatus')).length - before).toBe(1);
  });
});

describe('times are half-open: [from, until)', () => {
  // Mutations: the isolate's `now < lease.refreshAt` as `<=`; the store's `now < refreshAt` as `<=`
  // (also caught by the fast-check property in policy.property.test.ts).
  it('a fixed 600 s token (30 s margin) is due for refresh at 560 s exactly: the isolate asks, the store refreshes in the background', async () => {
    const clock = fakeClock();
    const t0 = clock.now();
    await setToken('edgefixed', { expiresIn: 600 });
    expect((await post('/t/edgefixed', {})).status).toBe(200);
    const first = await lastToken('edgefixed');
    const store = countStoreCalls('edgefixed');
    try {
      clock.set(t0 + 560 * SECOND - 1);
      expect((await post('/t/edgefixed', {})).status).toBe(200);
      expect(store.calls).toBe(0);
      clock.set(t0 + 560 * SECOND);
      expect((await post('/t/edgefixed', {})).status).toBe(200);
      expect(store.calls).toBe(1);
      expect(await lastToken('edgefixed')).toBe(first);
      await vi.waitFor(async () => expect(await tokenHits('edgefixed')).toHaveLength(2));
    } finally {
      store.restore();
    }
  });

  // Mutation: `isUsable` as `now <= usableUntil` (the token handed out at its usable end); also
  // caught by policy.test.ts, this is what a caller sees of it.
  it('at its usable end exactly (590 s of 600 s), a token is not injected: a new one is fetched first', async () => {
    const clock = nextHourClock();
    const t0 = clock.now();
    await setToken('edgefixed', { expiresIn: 600 });
    const before = (await tokenHits('edgefixed')).length;
    expect((await post('/t/edgefixed', {})).status).toBe(200);
    const first = await lastToken('edgefixed');
    clock.set(t0 + 590 * SECOND);
    const res = await post('/t/edgefixed', {});
    expect(res.status, res.text).toBe(200);
    expect(await lastToken('edgefixed')).not.toBe(first);
    expect((await tokenHits('edgefixed')).length - before).toBe(2);
  });

  // Mutation: with the store unreachable, the held token used while `later <= usableUntil`.
  it('with the store unreachable, the held token is used up to its usable end, not at it', async () => {
    const clock = nextHourClock();
    const t0 = clock.now();
    await setToken('edgefixed', { expiresIn: 600 });
    expect((await post('/t/edgefixed', {})).status).toBe(200);
    const first = await lastToken('edgefixed');
    const failing = failStoreCalls('edgefixed');
    try {
      clock.set(t0 + 590 * SECOND - 1);
      expect((await post('/t/edgefixed', {})).status).toBe(200);
      expect(await lastToken('edgefixed')).toBe(first);
      clock.set(t0 + 590 * SECOND);
      const res = await post('/t/edgefixed', {});
      expect(res.status).toBe(503);
      expect(res.json()).toMatchObject({ reason: 'token-store-unavailable' });
    } finally {
      failing.restore();
    }
  });

  // Mutations: the isolate's remembered refusal held at its `until` (`now <= until`); the store's
  // cool-down likewise (also caught by the contract cases).
  it('a client that comes back exactly when Retry-After said gets through (a throttle of 30 s)', async () => {
    const clock = nextHourClock();
    const t0 = clock.now();
    await setToken('edgeretry', { status: 429, body: '{}', headers: { 'Retry-After': '30' } });
    const res = await post('/t/edgeretry', {});
    expect(res.headers.get('Retry-After')).toBe('30');
    await setToken('edgeretry', {});
    clock.set(t0 + 30 * SECOND);
    const again = await post('/t/edgeretry', {});
    expect(again.status, again.text).toBe(200);
  });

  // Mutation: a token request still counted at `countsUntil` exactly (`countsUntil(r, p) >= now`);
  // also caught by the contract case ct-fixed-budget, this is the Retry-After a caller was given.
  it('... and when a spent budget said so (1 per 60 s: the answer came back at 0 s, so it frees at 62 s)', async () => {
    const clock = nextHourClock();
    const t0 = clock.now();
    await setToken('edgebudget', { expiresIn: 20 });
    expect((await post('/t/edgebudget', {})).status).toBe(200);
    clock.set(t0 + 30 * SECOND);
    const spent = await post('/t/edgebudget', {});
    expect(spent.json()).toMatchObject({ reason: 'token-budget-exhausted' });
    expect(spent.headers.get('Retry-After')).toBe('32');
    clock.set(t0 + 62 * SECOND);
    const again = await post('/t/edgebudget', {});
    expect(again.status, again.text).toBe(200);
  });
});

describe('a token that ends while the store\'s answer travels', () => {
  /** Make the store's answer for `upstream` arrive at `at` (a slow RPC), as seen by the fake clock. */
  function arriveAt(upstream: string, clock: ReturnType<typeof fakeClock>, at: () => number) {
    const proto = TokenStore.prototype;
    const original = proto.getToken;
    proto.getToken = async function (this: TokenStore, k) {
      const r = await original.call(this, k);
      if (k.upstream === upstream) clock.set(at());
      return r;
    };
    return { restore: () => void (proto.getToken = original) };
  }

  // Mutation: the isolate takes a lease that is already at its usable end (`now > usableUntil`).
  it('is not injected when it arrives at its usable end; 1 ms earlier it is', async () => {
    const clock = nextHourClock();
    const t0 = clock.now();
    await setToken('edgelate', { expiresIn: 600 }); // usable until 590 s
    expect((await post('/t/edgelate', {})).status).toBe(200);
    const calls = (await apiHits('edgelate')).length;
    let arrival = t0 + 590 * SECOND - 1;
    const slow = arriveAt('edgelate', clock, () => arrival);
    try {
      clearIsolateCache();
      clock.set(t0 + 100 * SECOND);
      expect((await post('/t/edgelate', {})).status).toBe(200);
      clearIsolateCache();
      clock.set(t0 + 100 * SECOND);
      arrival = t0 + 590 * SECOND;
      const late = await post('/t/edgelate', {});
      expect(late.status).toBe(503);
      expect(late.json()).toMatchObject({ reason: 'token-endpoint-unavailable', detail: 'the token store returned a token that is no longer usable' });
      expect((await apiHits('edgelate')).length - calls).toBe(1);
    } finally {
      slow.restore();
    }
  });
});

describe('a rejection reported while the isolate already holds a newer token', () => {
  // Mutation: the isolate answers a report of an old token with its newer one even when that is no
  // longer usable (`usableUntil` check dropped).
  it('the newer token is retried with only while it is usable: expired too, the store is asked for a good one', async () => {
    const clock = nextHourClock();
    const t0 = clock.now();
    await setToken('edgenewer', { expiresIn: 600 }); // usable until 590 s after it was sent
    expect((await post('/t/edgenewer', { r: 0 })).status).toBe(200); // token A
    const a = await lastToken('edgenewer');
    // R1 sets off with A; the API holds every call 3 s (real time: room for what follows) and
    // rejects the first to wake.
    await setApi('edgenewer', { delayMs: 3000, rejectNext: 1 });
    const before = (await apiHits('edgenewer')).length;
    const r1 = post('/t/edgenewer', { r: 1 });
    await vi.waitFor(async () => expect((await apiHits('edgenewer')).length).toBe(before + 1), { interval: 5, timeout: 1000 });
    // Meanwhile A expires and another request brings token B (usable until 1181 s) into the isolate...
    clock.set(t0 + 591 * SECOND);
    const r2 = post('/t/edgenewer', { r: 2 });
    await vi.waitFor(async () => expect(await tokenHits('edgenewer')).toHaveLength(2), { interval: 5, timeout: 1500 });
    // ...and B expires too before R1's rejection comes back.
    clock.set(t0 + 1200 * SECOND);
    const [res1, res2] = await Promise.all([r1, r2]);
    expect([res1.status, res2.status], res1.text).toEqual([200, 200]);
    const calls = (await apiHits('edgenewer')).slice(before);
    const b = bearer(calls.find((h) => h.body === '{"r":2}')!);
    const retried = calls.filter((h) => h.body === '{"r":1}').map(bearer);
    expect(retried[0]).toBe(a);
    expect(retried).toHaveLength(2);
    expect(retried[1]).not.toBe(b); // B was not usable any more at 1200 s
    expect(retried[1]).not.toBe(a);
    expect(await tokenHits('edgenewer')).toHaveLength(3);
  });
});

describe('a sliding token\'s hard end (its JWT exp) holds in the isolate too', () => {
  // Mutations: the isolate slides past the hard end (`until = slid`); the lease's hard end without
  // the skew (`hard = t.expiresAt`). Seen when the store cannot be asked.
  it('with the store unreachable, a busy sliding token is used until 10 s before its exp, not after', async () => {
    const clock = nextHourClock();
    const t0 = clock.now();
    await setToken('edgeslidejwt', { expiresIn: null, jwtExpSeconds: 600, jwtNow: t0 / 1000 });
    expect((await post('/t/edgeslidejwt', {})).status).toBe(200);
    const first = await lastToken('edgeslidejwt');
    for (const s of [100, 200, 300, 400, 500]) {
      clock.set(t0 + s * SECOND);
      expect((await post('/t/edgeslidejwt', { s })).status).toBe(200);
    }
    const failing = failStoreCalls('edgeslidejwt');
    try {
      clock.set(t0 + 590 * SECOND - 1);
      expect((await post('/t/edgeslidejwt', {})).status).toBe(200);
      expect(await lastToken('edgeslidejwt')).toBe(first);
      clock.set(t0 + 590 * SECOND);
      const res = await post('/t/edgeslidejwt', {});
      expect(res.status).toBe(503);
      expect(res.json()).toMatchObject({ reason: 'token-store-unavailable' });
    } finally {
      failing.restore();
    }
  });
});
