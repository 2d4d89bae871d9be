/**
 * `GET /status` (issue 10): without credentials 401; with the admin token or a valid Cloudflare
 * Access JWT 200, and its figures match what the test did (token requests, budget use, cool-down,
 * failures, rejections); an Access JWT with the wrong audience, expired, from another issuer,
 * unsigned or signed by another key: 401. Never a token, never CORS-enabled, never cached.
 *
 * The Access team's certs endpoint is the stand-in (`test/standin/upstreams.ts`), serving a key
 * pair made here with jose; the JWTs are signed here too.
 */
import { createExecutionContext, env } from 'cloudflare:test';
import { exportJWK, generateKeyPair, SignJWT, type CryptoKey } from 'jose';
import { beforeAll, describe, expect, it } from 'vitest';
import worker from '../../src/index';
import { ACCESS_AUD, ACCESS_TEAM } from '../fixtures/ops';
import { SECRETS, UPSTREAMS } from '../fixtures/config';
import { call, issuedTokens, post, setApi, setToken, tokenHits, type Answer } from '../helpers';
import { logged } from './log-capture';
import { fakeClock, SECOND } from './token-helpers';

const ADMIN = { Authorization: `Bearer ${SECRETS.TEST_STATUS_TOKEN}` };
const KID = 'test-access-key-1';

let accessKey: CryptoKey;
let otherKey: CryptoKey;

beforeAll(async () => {
  const pair = await generateKeyPair('RS256', { extractable: true });
  accessKey = pair.privateKey;
  otherKey = (await generateKeyPair('RS256')).privateKey;
  const jwk = { ...(await exportJWK(pair.publicKey)), kid: KID, alg: 'RS256', use: 'sig' };
  await fetch('http://control.standin/access-keys', { method: 'POST', body: JSON.stringify({ keys: [jwk] }) });
});

/** An Access JWT as Cloudflare Access would send it, with `over` changing its claims or key. */
async function accessJwt(over: { aud?: string; iss?: string; expiresIn?: number | null; key?: CryptoKey } = {}): Promise<string> {
  const now = Math.floor(Date.now() / 1000);
  const jwt = new SignJWT({ email: 'operator@example.org', type: 'app' })
    .setProtectedHeader({ alg: 'RS256', kid: KID })
    .setIssuer(over.iss ?? ACCESS_TEAM)
    .setAudience(over.aud ?? ACCESS_AUD)
    .setSubject('operator-1')
    .setIssuedAt(now - 60);
  // null: no `exp` at all (a JWT that would never expire).
  if (over.expiresIn !== null) jwt.setExpirationTime(now + (over.expiresIn ?? 600));
  return jwt.sign(over.key ?? accessKey);
}

const status = (path = '/status', headers: Record<string, string> = {}) => call(path, { origin: null, headers: { Accept: 'application/json', ...headers } });

interface Report {
  generated_at: string;
  credential_sets: Array<Record<string, unknown> & { upstream: string; scopes?: Array<Record<string, unknown>> }>;
}

const setOf = (a: Answer, upstream: string) => (a.json() as Report).credential_sets.find((s) => s.upstream === upstream)!;

/** A 401 problem with a challenge, never cached, never readable by another origin's script. */
function expect401(a: Answer, error: boolean): void {
  expect(a.status, a.text).toBe(401);
  expect(a.headers.get('Content-Type')).toContain('application/problem+json');
  expect(a.json()).toMatchObject({ reason: 'unauthorized', status: 401 });
  expect(a.headers.get('WWW-Authenticate')).toBe(error ? 'Bearer realm="status", error="invalid_token"' : 'Bearer realm="status"');
  expect(a.headers.get('Cache-Control')).toBe('no-store');
  expect(a.headers.get('Access-Control-Allow-Origin')).toBeNull();
}

describe('who may read /status', () => {
  it('without credentials: 401 with a Bearer challenge, and nothing else', async () => {
    expect401(await status(), false);
    expect401(await call('/status', { origin: 'https://forms.example.org' }), false);
    expect(logged()).toContain('"event":"status_refused"');
  });

  it('the admin token: 200; a wrong one, or one that only starts like it: 401', async () => {
    const ok = await status('/status', ADMIN);
    expect(ok.status, ok.text).toBe(200);
    expect(ok.headers.get('Content-Type')).toBe('application/json; charset=utf-8');
    expect(ok.headers.get('Cache-Control')).toBe('no-store');
    expect(ok.headers.get('Cross-Origin-Resource-Policy')).toBe('same-origin');
    expect(ok.headers.get('X-Request-Id')).toMatch(/^[0-9a-f-]{36}$/);
    expect401(await status('/status', { Authorization: `Bearer ${SECRETS.TEST_STATUS_TOKEN}x` }), true);
    expect401(await status('/status', { Authorization: `Bearer ${SECRETS.TEST_STATUS_TOKEN.slice(0, -1)}` }), true);
    expect401(await status('/status', { Authorization: `Basic ${btoa(`admin:${SECRETS.TEST_STATUS_TOKEN}`)}` }), true);
  });

  it('a valid Access JWT: 200; wrong audience, expired, no exp, another issuer, another key, alg none, garbage: 401', async () => {
    const ok = await status('/status', { 'Cf-Access-Jwt-Assertion': await accessJwt() });
    expect(ok.status, ok.text).toBe(200);
    const cases: Array<[string, string]> = [
      ['wrong audience', await accessJwt({ aud: 'f'.repeat(64) })],
      ['expired', await accessJwt({ expiresIn: -120 })],
      ['never expiring (no exp)', await accessJwt({ expiresIn: null })],
      ['another issuer', await accessJwt({ iss: 'https://otherteam.cloudflareaccess.com' })],
      ['another key', await accessJwt({ key: otherKey })],
      ['alg none', `${b64url({ alg: 'none', typ: 'JWT' })}.${b64url({ iss: ACCESS_TEAM, aud: ACCESS_AUD, exp: Math.floor(Date.now() / 1000) + 600 })}.`],
      ['garbage', 'not.a.jwt'],
    ];
    for (const [what, jwt] of cases) {
      const res = await status('/status', { 'Cf-Access-Jwt-Assertion': jwt });
      expect(res.status, what).toBe(401);
      expect(logged(), what).not.toContain(jwt);
    }
    // Each refusal is told apart in the log (jose's codes), never with the JWT.
    const whys = logged()
      .split('\n')
      .filter((l) => l.includes('"event":"status_refused"'))
      .map((l) => (JSON.parse(l) as { why: string }).why);
    expect(whys).toEqual([
      'ERR_JWT_CLAIM_VALIDATION_FAILED:aud',
      'ERR_JWT_EXPIRED:exp',
      'ERR_JWT_CLAIM_VALIDATION_FAILED:exp',
      'ERR_JWT_CLAIM_VALIDATION_FAILED:iss',
      'ERR_JWS_SIGNATURE_VERIFICATION_FAILED',
      'ERR_JOSE_ALG_NOT_ALLOWED',
      'ERR_JWS_INVALID',
    ]);
    // The team's certs were fetched once and then reused.
    const { fetches } = (await (await fetch('http://control.standin/access-keys')).json()) as { fetches: number };
    expect(fetches).toBe(1);
  });

  it('a Worker without STATUS has no /status at all: 404, like any unknown path', async () => {
    const off = { ...env, STATUS: undefined };
    const res = await worker.fetch(new Request('https://injector.example/status', { headers: ADMIN }), off, createExecutionContext());
    expect(res.status).toBe(404);
    expect(await res.json()).toMatchObject({ reason: 'not-found' });
  });
});

describe('what /status shows matches what happened', () => {
  it('budget use and token requests: 3 calls, 1 token request, 1 of 1 in the window; then a rejection kept for the budget', async () => {
    const clock = fakeClock();
    const t0 = clock.now();
    await setToken('opsstatus', { expiresIn: 3600 });
    for (let i = 0; i < 3; i++) expect((await post('/t/opsstatus', { i })).status).toBe(200);
    expect(await tokenHits('opsstatus')).toHaveLength(1);
    clock.advance(100 * SECOND);

    const res = await status('/status?upstream=opsstatus', ADMIN);
    expect(res.status, res.text).toBe(200);
    const report = res.json() as Report;
    expect(report.generated_at).toBe(new Date(t0 + 100 * SECOND).toISOString());
    expect(report.credential_sets).toHaveLength(1);
    expect(setOf(res, 'opsstatus')).toEqual({
      upstream: 'opsstatus',
      credential_set: expect.stringMatching(/^[0-9a-f]{8}$/),
      scopes: [{ scope: '', has_token: true, expires_in_s: 3500, usable_for_s: 3490, refresh_in_s: 3430, last_refresh: new Date(t0).toISOString(), accepted: true, replacement: false }],
      budget: { max_requests: 1, window_seconds: 3600, explicit: true, requests_in_window: 1 },
      cooldown: null,
      failures: { consecutive: 0, failed_cycles: 0 },
      rejections: { reported: 0, ignored: 0, distrusted_until: null },
      tokens_issued: 1,
      last_token_request: { sent_at: new Date(t0).toISOString(), cause: 'cold', answered: true },
    });

    // The API rejects the token: no replacement within the budget, the token kept; /status counts it.
    await setApi('opsstatus', { rejectNext: 1, rejectStatus: 403 });
    expect((await post('/t/opsstatus', {})).status).toBe(502);
    const after = setOf(await status('/status?upstream=opsstatus', ADMIN), 'opsstatus');
    expect(after).toMatchObject({ rejections: { reported: 1, ignored: 0 }, tokens_issued: 1, budget: { requests_in_window: 1 }, scopes: [{ has_token: true }] });
    expect(await tokenHits('opsstatus')).toHaveLength(1);
  });

  it('a throttling token endpoint: the cool-down, its reason and what is left of it, the failure counts', async () => {
    const clock = fakeClock();
    await setToken('opsstatus2', { status: 429, headers: { 'Retry-After': '120' }, body: '{"error":"slow_down"}' });
    expect((await post('/t/opsstatus2', {})).status).toBe(503);
    clock.advance(20 * SECOND);
    const s = setOf(await status('/status?upstream=opsstatus2', ADMIN), 'opsstatus2');
    expect(s).toMatchObject({
      scopes: [{ scope: '', has_token: false }],
      budget: { max_requests: 10, window_seconds: 60, explicit: false, requests_in_window: 1 },
      cooldown: { reason: 'throttled', remaining_s: 100, detail: expect.stringContaining('429') },
      failures: { consecutive: 1, failed_cycles: 1 },
      tokens_issued: 0,
      last_token_request: { cause: 'cold', answered: true },
    });
    expect(await tokenHits('opsstatus2')).toHaveLength(1);
  });

  it('without a filter: every configured upstream, each with its figures or why there are none; never a token', async () => {
    await setToken('opsstatus', { expiresIn: 3600 });
    expect((await post('/t/opsstatus', {})).status).toBe(200);
    const res = await status('/status', ADMIN);
    expect(res.status).toBe(200);
    const report = res.json() as Report;
    expect(report.credential_sets.map((s) => s.upstream).sort()).toEqual(Object.keys(UPSTREAMS).sort());
    for (const s of report.credential_sets) expect(s.error === undefined ? s.budget : s.error, s.upstream).toBeDefined();
    const tokens = await issuedTokens();
    expect(tokens.length).toBeGreaterThan(0);
    for (const t of tokens) expect(res.text).not.toContain(t);
  });

  it('an unknown upstream, an unknown parameter or format: refused', async () => {
    expect((await status('/status?upstream=nope', ADMIN)).status).toBe(404);
    expect((await status('/status?token=1', ADMIN)).status).toBe(400);
    expect((await status('/status?format=xml', ADMIN)).status).toBe(400);
    expect((await call('/status', { method: 'POST', origin: null, headers: ADMIN, body: '{}' })).status).toBe(405);
  });
});

describe('/status in a browser', () => {
  it('HTML with every value escaped, no script, and a CSP that allows only its own style', async () => {
    const res = await call('/status?upstream=opshtml&upstream=opsstatus', { origin: null, headers: { ...ADMIN, Accept: 'text/html,application/xhtml+xml' } });
    expect(res.status).toBe(200);
    expect(res.headers.get('Content-Type')).toBe('text/html; charset=utf-8');
    const csp = res.headers.get('Content-Security-Policy')!;
    expect(csp).toMatch(/^default-src 'none'; style-src 'sha256-[A-Za-z0-9+/]+=*'; base-uri 'none'; form-action 'none'; frame-ancestors 'none'$/);
    // The hash is the page's own style block's.
    const style = /<style>([\s\S]*?)<\/style>/.exec(res.text)![1]!;
    const digest = btoa(String.fromCharCode(...new Uint8Array(await crypto.subtle.digest('SHA-256', new TextEncoder().encode(style)))));
    expect(csp).toContain(`'sha256-${digest}'`);
    // The scope set (normalised: sorted) as text, never as markup.
    expect(res.text).not.toMatch(/<script|<img/i);
    expect(res.text).toContain('<td>&lt;img onerror=alert(1)&gt; read src=x</td>');
    expect(res.text).toContain('<h2>opsstatus <small>credential set');
  });
});

function b64url(v: unknown): string {
  return btoa(JSON.stringify(v)).replace(/\+/g, '-').replace(/\//g, '_').replace(/=+$/, '');
}
