/**
 * A failing token endpoint (issue 2, point 6): bounded retries, cool-downs, clear errors, and the
 * first success recovers everyone. On a fake clock; retry pauses are real but short.
 */
import { describe, expect, it } from 'vitest';
import { MAX_OUTAGE_BACKOFF_MS } from '../../src/token/policy';
import { apiHits, post, setToken, tokenHits } from '../helpers';
import { countStoreCalls, fakeClock, MINUTE, SECOND } from './token-helpers';

/**
 * The documented bound: during an outage a refresh cycle sends at most `max_attempts` requests, and
 * cycles are spaced by a cool-down of 1 s, 2 s, 4 s … capped at 60 s. So an outage of T seconds
 * costs at most attempts × (cycles that fit in T).
 */
function outageBound(seconds: number, attempts: number): number {
  let cycles = 0;
  for (let t = 0, k = 0; t <= seconds; k++) {
    cycles++;
    t += Math.min(2 ** k, MAX_OUTAGE_BACKOFF_MS / 1000);
  }
  return cycles * attempts;
}

describe('token endpoint down', () => {
  it('during a 10-minute outage token requests stay within the bound, callers get 503 + Retry-After; the first success recovers everyone', async () => {
    const clock = fakeClock();
    await setToken('outage', { status: 503, body: '<html>down</html>', contentType: 'text/html' });
    for (let s = 0; s <= 600; s += 2) {
      const answers = await Promise.all(Array.from({ length: 5 }, () => post('/t/outage', { s })));
      for (const a of answers) {
        expect(a.status).toBe(503);
        expect(a.headers.get('Content-Type')).toContain('application/problem+json');
        expect(Number(a.headers.get('Retry-After'))).toBeGreaterThanOrEqual(1);
        expect(a.json()).toMatchObject({ title: 'Upstream token endpoint unavailable', detail: 'token endpoint answered 503' });
      }
      clock.advance(2 * SECOND);
    }
    const during = (await tokenHits('outage')).length;
    console.info(`outage of 600 s, 5 callers every 2 s: ${during} token requests (documented bound ${outageBound(600, 3)})`);
    expect(during).toBeLessThanOrEqual(outageBound(600, 3));
    expect(during).toBeGreaterThan(3); // it did keep trying
    expect(await apiHits('outage')).toHaveLength(0);

    await setToken('outage', {}); // back up
    clock.advance(MAX_OUTAGE_BACKOFF_MS);
    const answers = await Promise.all(Array.from({ length: 50 }, (_, i) => post('/t/outage', { i })));
    expect(answers.every((a) => a.status === 200)).toBe(true);
    expect((await tokenHits('outage')).length).toBe(during + 1);
  });

  it('a transient failure is retried within the same call: two 503s, then a token → 200', async () => {
    fakeClock();
    await setToken('flaky', { failNext: 2 });
    const res = await post('/t/flaky', {});
    expect(res.status).toBe(200);
    expect(await tokenHits('flaky')).toHaveLength(3);
  });

  it('timeouts: each attempt is bounded by the deadline; the caller gets 503 within it', async () => {
    fakeClock();
    await setToken('slow', { delayMs: 2000 });
    const res = await post('/t/slow', {});
    expect(res.status).toBe(503);
    expect(res.json()).toMatchObject({ detail: 'token request timed out' });
    expect((await tokenHits('slow')).length).toBeLessThanOrEqual(2);
  });
});

describe('an outage with a token in hand', () => {
  it('uses the current token inside the refresh margin, and never once it has expired', async () => {
    const clock = fakeClock();
    const t0 = clock.now();
    await setToken('expiring', { expiresIn: 300 });
    expect((await post('/t/expiring', {})).status).toBe(200);
    const [first] = await apiHits('expiring');
    await setToken('expiring', { status: 503, body: 'down' });

    clock.set(t0 + 280 * SECOND); // inside the 60 s margin: a refresh is tried, fails, the token is still good
    expect((await post('/t/expiring', {})).status).toBe(200);
    clock.set(t0 + 301 * SECOND); // expired, endpoint still down
    const late = await post('/t/expiring', {});
    expect(late.status).toBe(503);
    const api = await apiHits('expiring');
    expect(api).toHaveLength(2); // the 301 s request never reached the API
    expect(api[1]!.headers.authorization).toBe(first!.headers.authorization);
  });
});

describe('isolates remember a refusal', () => {
  it('while the store has said "no token for 30 s", requests get 503 without a Durable Object call', async () => {
    const clock = fakeClock();
    await setToken('refused', { status: 429, body: '{}', headers: { 'Retry-After': '30' } });
    expect((await post('/t/refused', {})).status).toBe(503);
    const store = countStoreCalls('refused');
    try {
      clock.advance(5 * SECOND);
      const answers = await Promise.all(Array.from({ length: 50 }, () => post('/t/refused', {})));
      expect(answers.every((a) => a.status === 503 && a.headers.get('Retry-After') === '25')).toBe(true);
      expect(store.calls).toBe(0);
      clock.advance(26 * SECOND); // the cool-down is over: the store is asked again
      await setToken('refused', {});
      expect((await post('/t/refused', {})).status).toBe(200);
      expect(store.calls).toBe(1);
    } finally {
      store.restore();
    }
  });
});

describe('a slow-dripping token answer', () => {
  it('cannot stall a refresh: the deadline covers reading the body too', async () => {
    fakeClock();
    await setToken('drip', { bodyDelayMs: 3000 });
    const started = Date.now();
    const res = await post('/t/drip', {});
    expect(res.status).toBe(503);
    expect(res.json()).toMatchObject({ detail: 'token request timed out' });
    expect(Date.now() - started).toBeLessThan(2500);
  });
});

describe('token endpoint throttling (429, or ABS 403)', () => {
  it('429 with Retry-After opens a cool-down: no token request until it ends, callers get 503 + Retry-After', async () => {
    const clock = fakeClock();
    await setToken('throttled', { status: 429, body: '{"error":"slow_down"}', headers: { 'Retry-After': '30' } });
    const first = await post('/t/throttled', {});
    expect(first.status).toBe(503);
    expect(first.headers.get('Retry-After')).toBe('30');
    expect(await tokenHits('throttled')).toHaveLength(1);

    clock.advance(10 * SECOND);
    await setToken('throttled', {});
    const during = await Promise.all(Array.from({ length: 20 }, () => post('/t/throttled', {})));
    expect(during.every((a) => a.status === 503 && a.headers.get('Retry-After') === '20')).toBe(true);
    expect(await tokenHits('throttled')).toHaveLength(1);

    clock.advance(21 * SECOND);
    expect((await post('/t/throttled', {})).status).toBe(200);
    expect(await tokenHits('throttled')).toHaveLength(2);
  });

  it('403 without Retry-After uses the configured cool-down', async () => {
    const clock = fakeClock(Date.UTC(2026, 10, 24));
    await setToken('throttled', { status: 403, body: '{"message":"Too many token requests"}' });
    const before = (await tokenHits('throttled')).length;
    const res = await post('/t/throttled', {});
    expect(res.status).toBe(503);
    expect(res.headers.get('Retry-After')).toBe('120');
    clock.advance(110 * SECOND);
    // 10 s of cool-down left: within the 15 s hold, so the caller waits it out and the next token
    // request leaves when it ends (refused again here: a new cool-down, and a 503).
    const held = await post('/t/throttled', {});
    expect(held.status).toBe(503);
    expect(clock.now()).toBeGreaterThanOrEqual(Date.UTC(2026, 10, 24) + 120 * SECOND);
    expect((await tokenHits('throttled')).length - before).toBe(2);
    clock.advance(2 * MINUTE);
    await setToken('throttled', {});
    expect((await post('/t/throttled', {})).status).toBe(200);
  });
});

describe('credentials refused', () => {
  it('401 invalid_client → 502 with a clear message that echoes no credential', async () => {
    fakeClock();
    await setToken('badcreds', { status: 401, body: '{"error":"invalid_client","error_description":"bad secret definitely-wrong-secret for client1"}' });
    const res = await post('/t/badcreds', {});
    expect(res.status).toBe(502);
    const body = res.json() as { title: string; detail: string };
    expect(body.title).toBe('Upstream refused the credentials');
    expect(body.detail).toContain('invalid_client');
    expect(res.text).not.toContain('client1');
    // Not retried within the call (retrying a refused credential cannot help).
    expect(await tokenHits('badcreds')).toHaveLength(1);
  });
});
