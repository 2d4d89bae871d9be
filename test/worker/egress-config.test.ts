/**
 * Issue 8: the egress config is checked at start (ip_bound needs a non-direct egress; an egress
 * origin is https except on loopback, has no userinfo, and its secret is a Worker secret that is
 * set), and a change of egress is a new credential set while a rotated egress secret is not.
 */
import { createExecutionContext, env, waitOnExecutionContext } from 'cloudflare:test';
import { describe, expect, it } from 'vitest';
import { loadConfig, parseConfig } from '../../src/config/load';
import worker from '../../src/index';
import { fingerprint } from '../../src/token/credential-set';
import { SECRETS } from '../fixtures/config';
import { configIssues, loadIssues } from '../helpers';
import { capturedLines } from './log-capture';

const good = { api_origin: 'https://api.example', token_url: 'https://auth.example/token', client_id: 'c', client_secret_from: 'TEST_CLIENT_SECRET' };
const origin = { mode: 'origin', url: 'https://egress.example.org', secret_from: 'TEST_EGRESS_SECRET' };

/**
 * What every request of a Worker with this one upstream answers, and what it logged: the answer
 * only says the Worker is misconfigured; the keys and how to fix them go to the log.
 */
async function startWith(upstream: Record<string, unknown>): Promise<{ status: number; text: string; log: string }> {
  const before = capturedLines.length;
  const vars = { ...env, UPSTREAMS: { a: upstream }, ROUTES: { r: { path: '/r', upstream: 'a', target: '/y', allowed_origins: ['https://forms.example.org'] } } };
  const ctx = createExecutionContext();
  const res = await worker.fetch(
    new Request('https://injector.example/r', { method: 'POST', headers: { Origin: 'https://forms.example.org', 'Content-Type': 'application/json' }, body: '{}' }),
    vars,
    ctx,
  );
  await waitOnExecutionContext(ctx);
  const text = await res.text();
  expect(text).not.toContain('UPSTREAMS');
  return { status: res.status, text, log: capturedLines.slice(before).join('\n') };
}

describe('ip_bound', () => {
  it('without a non-direct egress is refused at start, and the message says how to fix it', async () => {
    for (const upstream of [{ ...good, ip_bound: true }, { ...good, ip_bound: true, egress: { mode: 'direct' } }]) {
      const { status, log } = await startWith(upstream);
      expect(status).toBe(500);
      const detail = log;
      expect(detail).toContain('UPSTREAMS.a.ip_bound: tokens bound to the address that obtained them need all of this upstream\'s traffic to leave through one fixed egress');
      expect(detail).toContain('set egress = { mode = \\"origin\\", url = \\"https://<your egress host>\\", secret_from = \\"<Worker secret>\\" }');
      expect(detail).toContain('egress = { mode = \\"binding\\", binding = \\"<Fetcher binding>\\" }');
    }
  });

  it('with a binding or an egress origin is accepted; false is the default', () => {
    expect(configIssues({ UPSTREAMS: { a: { ...good, ip_bound: true, egress: { mode: 'binding', binding: 'EGRESS' } } } })).toEqual([]);
    expect(configIssues({ UPSTREAMS: { a: { ...good, ip_bound: true, egress: origin } } })).toEqual([]);
    expect(parseConfig({ UPSTREAMS: { a: good } }).upstreams.a!.ip_bound).toBe(false);
  });
});

describe('egress origin config', () => {
  it.each([
    [{ ...origin, url: 'http://egress.example.org' }, 'UPSTREAMS.a.egress.url: must be https'],
    [{ ...origin, url: 'https://user:pw@egress.example.org' }, 'UPSTREAMS.a.egress.url: must not contain user:password@'],
    [{ ...origin, url: 'https://egress.example.org/relay' }, 'UPSTREAMS.a.egress.url: must be an origin only'],
    [{ ...origin, url: 'https://egress.example.org/?x=1' }, 'UPSTREAMS.a.egress.url: must be an origin only'],
    [{ ...origin, url: 'egress.example.org' }, 'UPSTREAMS.a.egress.url: must be an absolute http(s) URL'],
    [{ mode: 'origin', url: 'https://egress.example.org' }, 'UPSTREAMS.a.egress.secret_from'],
    [{ ...origin, secret_from: 'not a name' }, 'UPSTREAMS.a.egress.secret_from: must be the name of a Worker secret'],
    [{ ...origin, address: 'not an address!' }, 'UPSTREAMS.a.egress.address'],
    [{ ...origin, secret: 'inline-secret-value' }, 'UPSTREAMS.a.egress'],
  ])('refuses %j naming %s', (egress, key) => {
    const found = configIssues({ UPSTREAMS: { a: { ...good, egress } } });
    expect(found.some((i) => i.startsWith(key)), found.join('\n')).toBe(true);
    for (const s of Object.values(SECRETS)) expect(found.join('\n')).not.toContain(s);
  });

  it('accepts plain http to an egress only on loopback, and a trailing slash', () => {
    for (const url of ['http://127.0.0.1:8443', 'http://localhost:8443', 'https://127.0.0.1:8443', 'https://egress.example.org/']) {
      expect(configIssues({ UPSTREAMS: { a: { ...good, egress: { ...origin, url } } } })).toEqual([]);
    }
  });

  it('refuses an http upstream behind an egress origin (it forwards over https only) and an injection into its headers', () => {
    const local = { ...good, api_origin: 'http://127.0.0.1:8790', token_url: 'http://127.0.0.1:8790/token', egress: origin };
    const found = configIssues({ UPSTREAMS: { a: local } });
    expect(found).toContain('UPSTREAMS.a.api_origin: must be https: an egress origin forwards over https only');
    expect(found).toContain('UPSTREAMS.a.token_url: must be https: an egress origin forwards over https only');
    const port = configIssues({ UPSTREAMS: { a: { ...good, api_origin: 'https://api.example:8443', egress: origin } } });
    expect(port).toEqual(['UPSTREAMS.a.api_origin: must use port 443: an egress origin forwards to https on 443 only']);
    expect(configIssues({ UPSTREAMS: { a: { ...good, egress: origin, inject_header: 'X-Egress-Secret' } } })).toEqual([
      "UPSTREAMS.a.inject_header: X-Egress-Secret is the egress origin's own header; name the header the API reads the token from (Authorization, X-Api-Key, …)",
    ]);
  });

  it('a Worker secret that is not set is named at start, by key and secret name', async () => {
    const { status, log } = await startWith({ ...good, egress: { ...origin, secret_from: 'NO_SUCH_EGRESS_SECRET' } });
    expect(status).toBe(500);
    expect(log).toContain('UPSTREAMS.a.egress.secret_from: Worker secret \\"NO_SUCH_EGRESS_SECRET\\" is not set');
  });

  it('a secret too weak to keep the egress from being an open relay is refused at start, its value not shown', async () => {
    // TEST_CLIENT_SECRET (p@ss:w/rd+%) is short and has characters nginx's map would need quoted.
    const { status, text, log } = await startWith({ ...good, egress: { ...origin, secret_from: 'TEST_CLIENT_SECRET' } });
    expect(status).toBe(500);
    expect(log).toContain('UPSTREAMS.a.egress.secret_from: Worker secret \\"TEST_CLIENT_SECRET\\" must be 32 to 100 characters');
    expect(log).toContain('openssl rand -hex 32');
    for (const s of Object.values(SECRETS)) expect(`${text}\n${log}`).not.toContain(s);
  });

  it('a secret nginx would read as a pattern (~, .) or that its map hash cannot hold (over 100) is refused', () => {
    const vars = { ...env, UPSTREAMS: { a: { ...good, egress: origin } }, ROUTES: {} };
    for (const secret of [`~${'.'.repeat(40)}`, `${'a'.repeat(40)}.b`, 'f'.repeat(128)]) {
      expect(loadIssues({ ...vars, TEST_EGRESS_SECRET: secret })).toEqual([expect.stringContaining('must be 32 to 100 characters of A-Z a-z 0-9 _ -')]);
    }
  });

  it('a good egress origin config passes the start checks, with its secret set', () => {
    const vars = { ...env, UPSTREAMS: { a: { ...good, egress: origin } }, ROUTES: {} };
    expect(loadIssues(vars)).toEqual([]);
    expect(loadConfig(vars).upstreams.a!.egress).toEqual(origin);
    const unset = { ...vars, TEST_EGRESS_SECRET: '' };
    expect(loadIssues(unset)).toEqual(['UPSTREAMS.a.egress.secret_from: Worker secret "TEST_EGRESS_SECRET" is not set']);
    expect(loadConfig(unset).upstreams.a).toBeUndefined();
  });
});

describe('the egress is part of the credential set', () => {
  const base = parseConfig({ UPSTREAMS: { a: { ...good, egress: origin } } }).upstreams.a!;
  const fp = (egress: Record<string, unknown>) => fingerprint(parseConfig({ UPSTREAMS: { a: { ...good, egress } } }).upstreams.a!, 'c', undefined);

  it('a new egress origin, an egress moved to a new address, or a change of mode is a new credential set', async () => {
    const same = await fingerprint(base, 'c', undefined);
    const changed = [
      await fp({ ...origin, url: 'https://egress2.example.org' }),
      await fp({ ...origin, url: 'https://egress.example.org:8443' }),
      await fp({ ...origin, address: '203.0.113.10' }),
      await fp({ mode: 'binding', binding: 'EGRESS' }),
      await fp({ mode: 'direct' }),
    ];
    expect(new Set([same, ...changed]).size).toBe(6);
    expect(await fp({ ...origin, address: '203.0.113.10' })).not.toBe(await fp({ ...origin, address: '203.0.113.11' }));
  });

  it('a rotated egress secret (same name or another) or a trailing slash is the same credential set', async () => {
    const same = await fingerprint(base, 'c', undefined);
    expect(await fp({ ...origin, secret_from: 'EGRESS_SECRET_NEXT' })).toBe(same);
    expect(await fp({ ...origin, url: 'https://egress.example.org/' })).toBe(same);
  });

  it('direct and binding egresses keep the fingerprints they had before the egress origin existed (a deploy costs them no token)', async () => {
    const before = { api_origin: 'https://api.example', token_url: 'https://auth.example/token', client_id: 'c1', client_secret_from: 'S' };
    const of = (u: Record<string, unknown>) => fingerprint(parseConfig({ UPSTREAMS: { a: u } }).upstreams.a!, 'c1', undefined);
    // Computed by the previous version (commit df51a51) for these two configs.
    expect(await of(before)).toBe('13400215450c573a69641d83b51a23e3');
    expect(await of({ ...before, egress: { mode: 'binding', binding: 'EGRESS' } })).toBe('7bd3d3d2cfc25b38eb5795e5d78a180c');
  });
});
