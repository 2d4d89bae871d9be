/** Config is validated at start: a bad key makes every request a 500 that names it (issue 2). */
import { createExecutionContext, env, waitOnExecutionContext } from 'cloudflare:test';
import { describe, expect, it } from 'vitest';
import { parseConfig } from '../../src/config';
import worker from '../../src/index';
import { SECRETS } from '../fixtures/config';
import { configIssues } from '../helpers';

const good = { api_origin: 'https://api.example', token_url: 'https://auth.example/token', client_id: 'c', client_secret_from: 'TEST_CLIENT_SECRET' };

const issues = configIssues;

describe('config validation', () => {
  it('accepts a minimal upstream and fills documented defaults', () => {
    const c = parseConfig({ UPSTREAMS: { a: good } });
    expect(c.upstreams.a).toMatchObject({
      token_method: 'POST',
      client_auth: 'client_secret_basic',
      grant: 'client_credentials',
      token_field: 'access_token',
      expires_in_field: 'expires_in',
      inject_header: 'Authorization',
      inject_format: 'Bearer {token}',
      token_rejected_statuses: [401],
      expiry: 'fixed',
    });
  });

  it.each([
    [{ UPSTREAMS: { a: { ...good, token_url: 'not a url' } } }, 'UPSTREAMS.a.token_url'],
    [{ UPSTREAMS: { a: { ...good, client_secret_from: undefined } } }, 'UPSTREAMS.a.client_secret_from'],
    [{ UPSTREAMS: { a: { ...good, tokn_url: 'x' } } }, 'UPSTREAMS.a'],
    [{ UPSTREAMS: { a: { ...good, inject_format: 'Bearer' } } }, 'UPSTREAMS.a.inject_format'],
    [{ UPSTREAMS: { a: { ...good, client_auth: 'client_secret_post', token_method: 'GET' } } }, 'UPSTREAMS.a.token_method'],
    [{ UPSTREAMS: { a: { ...good, extra_params: { grant_type: 'password' } } } }, 'UPSTREAMS.a.extra_params.grant_type'],
    [{ UPSTREAMS: { a: { ...good, grant: 'password' } } }, 'UPSTREAMS.a.username'],
    [{ UPSTREAMS: { a: good }, ROUTES: { r: { path: '/x', upstream: 'b', target: '/y' } } }, 'ROUTES.r.upstream'],
    [{ UPSTREAMS: { a: good }, ROUTES: { r: { path: '/x', upstream: 'a', target: '/y', allowed_origins: ['*'] } } }, 'ROUTES.r.allowed_origins'],
    [{ UPSTREAMS: { a: good }, ROUTES: { r: { path: '/x/:id', upstream: 'a', target: '/y/{other}' } } }, 'ROUTES.r.target'],
    [{}, 'UPSTREAMS'],
    // Credentials and tokens travel only over https (http only on loopback), never with userinfo.
    [{ UPSTREAMS: { a: { ...good, token_url: 'http://auth.example/token' } } }, 'UPSTREAMS.a.token_url: must be https'],
    [{ UPSTREAMS: { a: { ...good, api_origin: 'http://api.example' } } }, 'UPSTREAMS.a.api_origin: must be https'],
    [{ UPSTREAMS: { a: { ...good, token_url: 'https://client:secret@auth.example/token' } } }, 'UPSTREAMS.a.token_url: must not contain user:password@'],
    [{ UPSTREAMS: { a: { ...good, api_origin: 'https://key@api.example' } } }, 'UPSTREAMS.a.api_origin: must not contain user:password@'],
    [{ UPSTREAMS: { a: { ...good, scope: '   ' } } }, 'UPSTREAMS.a.scope'],
    [{ UPSTREAMS: { a: { ...good, token_throttled_statuses: [200] } } }, 'UPSTREAMS.a.token_throttled_statuses'],
  ])('refuses %j naming %s', (vars, key) => {
    const found = issues(vars);
    expect(found.length).toBeGreaterThan(0);
    expect(found.some((i) => i.startsWith(key))).toBe(true);
  });

  it('accepts plain http only on loopback (local runs)', () => {
    for (const host of ['127.0.0.1:8790', 'localhost:8790', '127.0.0.3', '[::1]:9000']) {
      expect(issues({ UPSTREAMS: { a: { ...good, api_origin: `http://${host}`, token_url: `http://${host}/oauth2/token` } } })).toEqual([]);
    }
    expect(issues({ UPSTREAMS: { a: { ...good, token_url: 'http://127.0.0.1.example.com/token' } } })).toHaveLength(1);
  });

  it('a token budget is a hard limit only when configured; 429 and 403 throttle by default', () => {
    const c = parseConfig({ UPSTREAMS: { a: good, b: { ...good, token_budget: { max_requests: 1, window_seconds: 3600 } } } });
    expect(c.upstreams.a!.token_budget).toBeUndefined();
    expect(c.upstreams.a!.token_throttled_statuses).toEqual([429, 403]);
    expect(c.upstreams.b!.token_budget).toEqual({ max_requests: 1, window_seconds: 3600 });
  });

  it('a Worker with a bad config answers every request with a 500 problem that names the key', async () => {
    const bad = { ...env, UPSTREAMS: { a: { ...good, token_url: 'ftp://nope' } } };
    for (const path of ['/', '/t/basic', '/anything']) {
      const ctx = createExecutionContext();
      const res = await worker.fetch(new Request(`https://injector.example${path}`, { method: 'POST' }), bad, ctx);
      await waitOnExecutionContext(ctx);
      expect(res.status).toBe(500);
      expect(res.headers.get('Content-Type')).toContain('application/problem+json');
      const body = (await res.json()) as { detail: string };
      expect(body.detail).toContain('UPSTREAMS.a.token_url');
    }
  });

  it('an egress binding that is not bound is named at start', async () => {
    const unbound = { ...env, UPSTREAMS: { a: { ...good, egress: { mode: 'binding', binding: 'NO_SUCH_BINDING' } } }, ROUTES: {} };
    const ctx = createExecutionContext();
    const res = await worker.fetch(new Request('https://injector.example/anything'), unbound, ctx);
    await waitOnExecutionContext(ctx);
    expect(res.status).toBe(500);
    const text = await res.text();
    expect(text, text).toContain('UPSTREAMS.a.egress.binding: no service binding named \\"NO_SUCH_BINDING\\"');
  });

  it('a missing Worker secret is named by its key and secret name, and no secret value is shown', async () => {
    const missing = { ...env, UPSTREAMS: { a: { ...good, client_secret_from: 'NOT_SET_ANYWHERE' } }, ROUTES: { r: { path: '/r', upstream: 'a', target: '/y', allowed_origins: ['https://forms.example.org'] } } };
    const ctx = createExecutionContext();
    const res = await worker.fetch(new Request('https://injector.example/r', { method: 'POST', headers: { Origin: 'https://forms.example.org', 'Content-Type': 'application/json' }, body: '{}' }), missing, ctx);
    await waitOnExecutionContext(ctx);
    expect(res.status).toBe(500);
    const text = await res.text();
    expect(text).toContain('UPSTREAMS.a.client_secret_from: Worker secret \\"NOT_SET_ANYWHERE\\" is not set');
    for (const s of Object.values(SECRETS)) expect(text).not.toContain(s);
  });
});
