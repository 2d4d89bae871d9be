/**
 * Issue 10: a route's per-client rate limit, on Miniflare's simulation of the Rate Limiting binding
 * (wrangler.toml's FORM_LIMIT and vitest.config.ts's small ones). Over the limit: 429 problem+json
 * with Retry-After, and the request never reaches the upstream; other clients and other routes
 * keep their own counts. The simulation counts in fixed windows on the wall clock, so each test
 * starts early enough in a window to finish inside it.
 */
import { describe, expect, it } from 'vitest';
import { ABUSE_SORRY, ABUSE_THANKS } from '../fixtures/abuse';
import { apiHits, call, post, tokenHits, type Answer } from '../helpers';
import { expectProblem, formBody } from './gateway.support';
import { capturedLines } from './log-capture';

const HOST = 'abuserl';

/** Wait until at least `needMs` are left in the binding's current window of `period` seconds. */
async function freshWindow(period: number, needMs: number): Promise<void> {
  const left = period * 1000 - (Date.now() % (period * 1000));
  if (left < needMs) await new Promise((r) => setTimeout(r, left + 100));
}

/** An address of its own for each test (the counts live as long as the test run). */
const anyIpv4 = () => `198.51.${Math.floor(Math.random() * 256)}.${1 + Math.floor(Math.random() * 254)}`;
const from = (ip: string | undefined, extra: Record<string, string> = {}) => ({ headers: { ...(ip === undefined ? {} : { 'CF-Connecting-IP': ip }), ...extra } });

const upstreamCalls = async () => (await apiHits(HOST)).length;

function expectLimited(res: Answer, retryAfter: string): void {
  expectProblem(res, 429, /too many requests to this route from your address; try again in \d+ s/, 'rate-limited');
  expect(res.headers.get('Retry-After')).toBe(retryAfter);
}

/** Request lines of refused requests on `route`: one each, outcome the problem's slug, no upstream status. */
const rateLimitedLines = (route: string) =>
  capturedLines.filter((l) => l.includes('"event":"request"') && l.includes(`"route":"${route}"`) && l.includes('"outcome":"rate-limited"') && !l.includes('upstream_status'));

describe('per-client rate limit', () => {
  it('the N+1th request in the window gets 429 with Retry-After and never reaches the upstream; other clients and routes are unaffected', async () => {
    await freshWindow(60, 5000);
    const ip = anyIpv4();
    const before = await upstreamCalls();
    // N = 3 (RL_THREE_PER_MINUTE).
    for (let i = 1; i <= 3; i++) expect((await post('/abuserl/a', { n: i }, from(ip))).status).toBe(200);
    expect(await upstreamCalls()).toBe(before + 3);

    expectLimited(await post('/abuserl/a', { n: 4 }, from(ip)), '60');
    expectLimited(await post('/abuserl/a', { n: 5 }, from(ip)), '60');
    // The two refused requests cost no upstream call (and no token request).
    expect(await upstreamCalls()).toBe(before + 3);
    expect(rateLimitedLines('abuserl_a')).toHaveLength(2);

    // Another client on the same route, and the same client on another route (same binding): their own counts.
    expect((await post('/abuserl/a', { n: 6 }, from(anyIpv4()))).status).toBe(200);
    expect((await post('/abuserl/b', { n: 7 }, from(ip))).status).toBe(200);
    expect(await upstreamCalls()).toBe(before + 5);
    const bodies = (await apiHits(HOST)).slice(before).map((h) => JSON.parse(h.body) as { n: number });
    expect(bodies.map((b) => b.n)).toEqual([1, 2, 3, 6, 7]);
  });

  it('Retry-After is the route’s period (10 s here); a plain HTML form gets its 303 to error_redirect with the reason', async () => {
    await freshWindow(10, 4000);
    const ip = anyIpv4();
    const browser = { Accept: 'text/html,application/xhtml+xml,*/*;q=0.8', 'CF-Connecting-IP': ip };
    for (let i = 0; i < 2; i++) {
      const ok = await call('/abuserl/fast', formBody({ name: 'x' }, { headers: browser }));
      expect(ok.status).toBe(303);
      expect(ok.headers.get('Location')).toMatch(new RegExp(`^${ABUSE_THANKS}\\?status=ok&code=200`));
    }
    const before = await upstreamCalls();
    const refused = await call('/abuserl/fast', formBody({ name: 'x' }, { headers: browser }));
    expect(refused.status).toBe(303);
    const to = new URL(refused.headers.get('Location')!);
    expect(`${to.origin}${to.pathname}`).toBe(ABUSE_SORRY);
    expect(Object.fromEntries(to.searchParams)).toMatchObject({ status: 'error', code: '429', reason: 'rate-limited' });
    // A fetch client of the same address is over the limit too, and learns when to come back.
    expectLimited(await post('/abuserl/fast', { name: 'x' }, from(ip)), '10');
    expect(await upstreamCalls()).toBe(before);
  });

  it('the binding declared in wrangler.toml (FORM_LIMIT, 100 a minute) is simulated: the 101st request is refused', async () => {
    await freshWindow(60, 10_000);
    const ip = anyIpv4();
    const before = await upstreamCalls();
    // Every request counts, whatever comes of it later: these all fail the route's field check.
    for (let i = 1; i <= 100; i++) {
      const res = await post('/abuserl/demo', {}, from(ip));
      expect(res.status, `request ${i}`).toBe(422);
    }
    expectLimited(await post('/abuserl/demo', { name: 'x' }, from(ip)), '60');
    expect(await upstreamCalls()).toBe(before);
  });

  it('counts by CF-Connecting-IP only: X-Forwarded-For is ignored, IPv6 counts per /64, requests without an address share one count', async () => {
    await freshWindow(60, 5000);
    const ip = anyIpv4();
    for (let i = 0; i < 3; i++) expect((await post('/abuserl/a', {}, from(ip, { 'X-Forwarded-For': anyIpv4(), 'X-Real-IP': anyIpv4() }))).status).toBe(200);
    expectLimited(await post('/abuserl/a', {}, from(ip, { 'X-Forwarded-For': anyIpv4() })), '60');

    // A bot rotating addresses inside its /64 is one client; the next /64 is another.
    const net = `2001:db8:${Math.floor(Math.random() * 0xffff).toString(16)}`;
    for (const host of ['1', 'a:b:c', '0:0:ff']) expect((await post('/abuserl/a', {}, from(`${net}:7::${host}`))).status).toBe(200);
    expectLimited(await post('/abuserl/a', {}, from(`${net}:0007:0:0:0:9`)), '60');
    expect((await post('/abuserl/a', {}, from(`${net}:8::1`))).status).toBe(200);

    // No address (local runs): one shared count, never none.
    for (let i = 0; i < 3; i++) expect((await post('/abuserl/b', {}, from(undefined))).status).toBe(200);
    expectLimited(await post('/abuserl/b', {}, from(undefined)), '60');
    expectLimited(await post('/abuserl/b', {}, from('not-an-address')), '60');
  });

  it('runs after the origin guard and before the body: preflights are not counted, and a refused body is never read', async () => {
    await freshWindow(60, 5000);
    const ip = anyIpv4();
    for (let i = 0; i < 5; i++) {
      const pre = await call('/abuserl/a', { method: 'OPTIONS', headers: { 'Access-Control-Request-Method': 'POST', 'CF-Connecting-IP': ip } });
      expect(pre.status).toBe(204);
    }
    // A page that may not call the route is refused before anything is counted.
    const foreign = await post('/abuserl/a', {}, { ...from(ip), origin: 'https://evil.example.com' });
    expectProblem(foreign, 403, undefined, 'origin-not-allowed');
    for (let i = 0; i < 3; i++) expect((await post('/abuserl/a', {}, from(ip))).status).toBe(200);
    // Over the limit, a body that would be refused (too large, not JSON) is not even looked at.
    const big = await call('/abuserl/a', { method: 'POST', body: '{'.repeat(200_000), headers: { 'Content-Type': 'application/json', 'CF-Connecting-IP': ip } });
    expectLimited(big, '60');
    const tokens = (await tokenHits(HOST)).length;
    expectLimited(await post('/abuserl/a', {}, from(ip)), '60');
    expect((await tokenHits(HOST)).length).toBe(tokens);
  });
});
