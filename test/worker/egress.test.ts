/**
 * Issue 8: all of an IP-bound upstream's traffic leaves through its one egress. With a binding and
 * with an egress origin, every token request and API call is counted at the egress and at the
 * upstream, and none reaches the upstream another way; an egress that refuses (wrong secret, a host
 * not on its list) gives the caller a clear 502 that names no secret.
 */
import { describe, expect, it } from 'vitest';
import { SECRETS } from '../fixtures/config';
import { apiHits, call, hits, post, revoke, setApi, setToken, tokenHits } from '../helpers';
import type { EgressHit } from '../standin/upstreams';

const CONTROL = 'http://control.standin';

async function egressHits(host: string): Promise<EgressHit[]> {
  return (await fetch(`${CONTROL}/egress-hits?host=${host}.test`)).json();
}

async function acceptEgressKeys(egress: string, keys: string[]): Promise<void> {
  await fetch(`${CONTROL}/egress-keys?egress=${egress}`, { method: 'POST', body: JSON.stringify(keys) });
}

describe.each([
  ['binding', 'egbinding'],
  ['origin', 'egorigin'],
] as const)('egress = %s', (mode, name) => {
  it(`every token request and API call of the upstream goes through the ${mode} egress, none directly`, async () => {
    // Cold: one token request, then API calls, some concurrent.
    expect((await post(`/t/${name}`, { n: 0 })).status).toBe(200);
    const answers = await Promise.all(Array.from({ length: 10 }, (_, i) => post(`/t/${name}`, { n: i + 1 })));
    expect(answers.map((a) => a.status)).toEqual(Array(10).fill(200));
    // A visitor naming another host or a secret of their own changes nothing.
    const sneaky = await post(`/t/${name}`, { n: 11 }, { headers: { 'X-Egress-Host': 'evil.test', 'X-Egress-Secret': SECRETS.TEST_EGRESS_WRONG } });
    expect(sneaky.status).toBe(200);
    // The API rejects the token once: the replacement is fetched and used through the egress too.
    await revoke(name);
    expect((await post(`/t/${name}`, { n: 12 })).status).toBe(200);
    for (let i = 13; i < 20; i++) expect((await post(`/t/${name}`, { n: i })).status).toBe(200);

    const tokens = await tokenHits(name);
    const api = await apiHits(name);
    expect(tokens).toHaveLength(2);
    // 20 calls, plus the retry of the one whose token was rejected.
    expect(api).toHaveLength(21);
    const upstream = await hits(name);
    expect(upstream).toHaveLength(23);
    expect(upstream.filter((h) => h.headers['x-standin-via'] !== mode), 'requests that reached the upstream without the egress').toEqual([]);

    const atEgress = await egressHits(name);
    expect(atEgress).toHaveLength(23);
    expect(atEgress.every((h) => h.via === mode && h.target === `${name}.test` && h.refused === null)).toBe(true);
    expect(atEgress.filter((h) => h.path === '/oauth2/token')).toHaveLength(2);
    if (mode === 'origin') expect(new Set(atEgress.map((h) => h.egress))).toEqual(new Set(['egress.test']));
  });
});

describe('an egress origin that refuses', () => {
  it('a secret the egress does not accept: 502 that names no secret, and nothing reaches the upstream', async () => {
    const res = await post('/t/egwrongkey', {});
    expect(res.status).toBe(502);
    expect(res.headers.get('Content-Type')).toContain('application/problem+json');
    const body = res.json() as { title: string; detail: string };
    expect(body.title).toBe('Upstream token endpoint misconfigured');
    expect(body.detail).toContain('the egress refused to forward to egwrongkey.test: it did not accept the egress secret');
    // Neither value appears (call() checks every secret; the two egress secrets are named here).
    expect(res.text).not.toContain(SECRETS.TEST_EGRESS_WRONG);
    expect(res.text).not.toContain(SECRETS.TEST_EGRESS_SECRET);
    expect(res.text).not.toContain('TEST_EGRESS_WRONG');
    expect(await hits('egwrongkey')).toEqual([]);
    const refused = await egressHits('egwrongkey');
    expect(refused.map((h) => h.refused)).toEqual(['key']);
  });

  it('a host not on the egress list: 502 naming the host, nothing reaches it', async () => {
    const res = await post('/t/egunlisted', {});
    expect(res.status).toBe(502);
    expect((res.json() as { detail: string }).detail).toContain('the egress refused to forward to egunlisted.test: that host is not on its list');
    expect(await hits('egunlisted')).toEqual([]);
    expect((await egressHits('egunlisted')).map((h) => h.refused)).toEqual(['host']);
  });

  it('the egress stops accepting the secret mid-way: API calls get a 502 and the token is kept; accepting it again heals', async () => {
    expect((await post('/t/egrotate', { n: 1 })).status).toBe(200);
    // The egress now takes only the next secret (a rotation done in the wrong order).
    await acceptEgressKeys('egress-rotate.test', [SECRETS.TEST_EGRESS_NEXT]);
    const refused = await post('/t/egrotate', { n: 2 });
    expect(refused.status).toBe(502);
    expect(refused.json()).toMatchObject({ title: 'Egress refused the request' });
    expect((refused.json() as { detail: string }).detail).toContain('it did not accept the egress secret');
    expect(refused.text).not.toContain(SECRETS.TEST_EGRESS_SECRET);
    // Not taken for a rejected token: no token request, the token is still the one in use.
    expect(await tokenHits('egrotate')).toHaveLength(1);
    // During a rotation the egress accepts both: the Worker's secret works again, same token.
    await acceptEgressKeys('egress-rotate.test', [SECRETS.TEST_EGRESS_SECRET, SECRETS.TEST_EGRESS_NEXT]);
    expect((await post('/t/egrotate', { n: 3 })).status).toBe(200);
    expect(await tokenHits('egrotate')).toHaveLength(1);
    const api = await apiHits('egrotate');
    expect(api).toHaveLength(2);
    expect(new Set(api.map((h) => h.headers.authorization)).size).toBe(1);
    expect((await egressHits('egrotate')).map((h) => h.refused)).toEqual([null, null, 'key', null]);
  });

  it('the API and token timeouts hold through the egress origin (its abort signal is passed on)', async () => {
    await setToken('egslow', { delayMs: 3_000 });
    const slowToken = await post('/t/egslow', {});
    expect(slowToken.status).toBe(503);
    expect(slowToken.json()).toMatchObject({ detail: 'token request timed out' });
    await setApi('egslowapi', { delayMs: 3_000 });
    const slowApi = await post('/t/egslowapi', {});
    expect(slowApi.status).toBe(504);
    expect(slowApi.json()).toMatchObject({ title: 'Upstream timed out' });
  });

  it('a GET route through the egress origin keeps its path, method and no body', async () => {
    const res = await call('/t/egorigin', { method: 'GET' });
    expect(res.status).toBe(200);
    const last = (await apiHits('egorigin')).at(-1)!;
    expect(last).toMatchObject({ method: 'GET', path: '/api/echo', search: '', body: '', headers: { 'x-standin-via': 'origin' } });
  });
});

describe('an egress that does not strip its headers, before an API that echoes them', () => {
  it('the egress secret is cut out of the answer like the token (call() checks every secret and token)', async () => {
    expect((await post('/t/egecho', {})).status).toBe(200);
    await setApi('egecho', { reflectHeaders: true });
    try {
      const res = await post('/t/egecho', {});
      expect(res.status).toBe(200);
      // The echo did carry it: the secret's place shows the cut.
      expect(res.json()).toMatchObject({ headers: { 'x-egress-secret': '[redacted]' } });
    } finally {
      await setApi('egecho', {});
    }
  });
});
