/** Config is validated at start: a bad key makes every request a 500 that names it (issue 2). */
import { createExecutionContext, env, waitOnExecutionContext } from 'cloudflare:test';
import { describe, expect, it, vi } from 'vitest';
import { parseConfig } from '../../src/config/load';
import worker from '../../src/index';
import { ROUTES, SECRETS, UPSTREAMS } from '../fixtures/config';
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
    // Injection settings that cannot work (issue 13): a value no header can hold throws on every
    // call after a token was spent; a header the runtime, a proxy or the Worker owns never carries it.
    [{ UPSTREAMS: { a: { ...good, inject_format: 'Bearer {token}\r\nX-Evil: 1' } } }, 'UPSTREAMS.a.inject_format: must be printable ASCII'],
    [{ UPSTREAMS: { a: { ...good, inject_format: 'Bearer {token}\n' } } }, 'UPSTREAMS.a.inject_format: must be printable ASCII'],
    [{ UPSTREAMS: { a: { ...good, inject_format: 'Bearer\u0000{token}' } } }, 'UPSTREAMS.a.inject_format: must be printable ASCII'],
    [{ UPSTREAMS: { a: { ...good, inject_format: '{token} {token}' } } }, 'UPSTREAMS.a.inject_format: must contain {token} exactly once'],
  ])('refuses %j naming %s', (vars, key) => {
    const found = issues(vars);
    expect(found.length).toBeGreaterThan(0);
    expect(found.some((i) => i.startsWith(key))).toBe(true);
  });

  it.each([
    ...['Host', 'host', 'Connection', 'Transfer-Encoding', 'Content-Length', 'TE', 'Upgrade', 'Keep-Alive', 'Proxy-Authorization'].map((h) => [h, 'belongs to the connection']),
    ...['Content-Type', 'Accept-Encoding', 'Accept', 'If-None-Match'].map((h) => [h, 'is set or passed on by the Worker']),
    ['CF-Access-Token', "is Cloudflare's own"],
    ['X-Egress-Secret', "is the egress origin's own header"],
  ])('refuses inject_header = %s: it %s', (inject_header, why) => {
    expect(issues({ UPSTREAMS: { a: { ...good, inject_header } } })).toEqual([expect.stringContaining(`UPSTREAMS.a.inject_header: ${inject_header} ${why}`)]);
  });

  it('accepts the headers and formats real APIs use for a token', () => {
    for (const [inject_header, inject_format] of [
      ['Authorization', 'Bearer {token}'],
      ['Authorization', '{token}'],
      ['X-Api-Key', '{token}'],
      ['Cookie', 'session={token}'],
      ['Authorization', 'Token\ttoken="{token}"'],
    ]) {
      expect(issues({ UPSTREAMS: { a: { ...good, inject_header, inject_format } } }), `${inject_header}: ${inject_format}`).toEqual([]);
    }
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

  /** The Worker's answer to one request under `vars`, and what it logged meanwhile. */
  async function answerWith(vars: object, request: Request): Promise<{ res: Response; text: string; logged: string }> {
    const error = vi.spyOn(console, 'error');
    const before = error.mock.calls.length;
    const ctx = createExecutionContext();
    const res = await worker.fetch(request, vars as typeof env, ctx);
    await waitOnExecutionContext(ctx);
    return { res, text: await res.text(), logged: error.mock.calls.slice(before).map((c) => c.join(' ')).join('\n') };
  }

  /** A body for `answerWith` against a route of the test Worker. */
  const formPost = (path: string) =>
    new Request(`https://injector.example${path}`, { method: 'POST', headers: { Origin: 'https://forms.example.org', 'Content-Type': 'application/json' }, body: '{}' });

  it('a config unusable as a whole answers every request with an anonymous 500; the key goes to the log', async () => {
    const bad = { ...env, UPSTREAMS: 'not a table' };
    for (const path of ['/', '/t/basic', '/anything', '/healthz']) {
      const { res, text, logged } = await answerWith(bad, new Request(`https://injector.example${path}`, { method: 'POST' }));
      expect(res.status).toBe(500);
      expect(res.headers.get('Content-Type')).toContain('application/problem+json');
      const body = JSON.parse(text) as { type: string; reason: string; detail: string; request_id: string };
      expect(body).toMatchObject({ type: 'urn:edge-token-injector:problem:invalid-configuration', reason: 'invalid-configuration' });
      expect(body.detail).toMatch(/misconfigured/);
      expect(text).not.toContain('UPSTREAMS');
      // The operator finds the key in the log, under the request id the caller was given.
      expect(logged).toContain('UPSTREAMS: ');
      expect(logged).toContain(body.request_id);
    }
  });

  it('a bad upstream fails only its own routes, with the anonymous 500 and its key in the log; other routes answer', async () => {
    const bad = {
      ...env,
      UPSTREAMS: { ...UPSTREAMS, a: { ...good, token_url: 'ftp://nope' } },
      ROUTES: { ...ROUTES, r: { path: '/r', upstream: 'a', target: '/y', allowed_origins: ['https://forms.example.org'] } },
    };
    const { res, text, logged } = await answerWith(bad, formPost('/r'));
    expect(res.status).toBe(500);
    const body = JSON.parse(text) as { reason: string; request_id: string };
    expect(body.reason).toBe('invalid-configuration');
    expect(text).not.toContain('token_url');
    expect(logged).toContain('UPSTREAMS.a.token_url');
    expect(logged).toContain(body.request_id);
    // The fixture's own routes keep working under the same config.
    const ok = await answerWith(bad, formPost('/t/basic'));
    expect(ok.res.status, ok.text).toBe(200);
    // A health check sees that a part is down.
    expect((await answerWith(bad, new Request('https://injector.example/healthz'))).res.status).toBe(500);
  });

  it('a route that is wrong itself answers 500 on its own path only; the key is in the log', async () => {
    const bad = { ...env, ROUTES: { ...ROUTES, r: { path: '/r', upstream: 'basic', target: '/y', allowed_origins: ['https://forms.example.org'], max_body_bytes: -1 } } };
    const { res, logged } = await answerWith(bad, formPost('/r'));
    expect(res.status).toBe(500);
    expect(logged).toContain('ROUTES.r.max_body_bytes');
    expect((await answerWith(bad, formPost('/t/basic'))).res.status).toBe(200);
  });

  it('a broken STATUS (an admin token too short) takes down /status only; the forms keep answering', async () => {
    const bad = { ...env, STATUS: { admin_token_from: 'SHORT_ADMIN_TOKEN' }, SHORT_ADMIN_TOKEN: 'too-short' };
    const status = await answerWith(bad, new Request('https://injector.example/status', { headers: { Authorization: 'Bearer too-short' } }));
    expect(status.res.status).toBe(500);
    expect(JSON.parse(status.text)).toMatchObject({ reason: 'invalid-configuration' });
    expect(status.text).not.toContain('too-short');
    expect(status.logged).toContain('STATUS.admin_token_from');
    expect(status.logged).not.toContain('too-short');
    const form = await answerWith(bad, formPost('/t/basic'));
    expect(form.res.status, form.text).toBe(200);
  });

  it('an egress binding that is not bound is named at start (in the log)', async () => {
    const unbound = { ...env, UPSTREAMS: { a: { ...good, egress: { mode: 'binding', binding: 'NO_SUCH_BINDING' } } }, ROUTES: { r: { path: '/r', upstream: 'a', target: '/y', allowed_origins: ['https://forms.example.org'] } } };
    const { res, text, logged } = await answerWith(unbound, formPost('/r'));
    expect(res.status).toBe(500);
    expect(text).not.toContain('NO_SUCH_BINDING');
    expect(logged).toContain('UPSTREAMS.a.egress.binding: no service binding named \\"NO_SUCH_BINDING\\"');
  });

  it('a missing Worker secret is named by its key and secret name in the log, and no secret value is shown anywhere', async () => {
    const missing = { ...env, UPSTREAMS: { a: { ...good, client_secret_from: 'NOT_SET_ANYWHERE' } }, ROUTES: { r: { path: '/r', upstream: 'a', target: '/y', allowed_origins: ['https://forms.example.org'] } } };
    const { res, text, logged } = await answerWith(
      missing,
      new Request('https://injector.example/r', { method: 'POST', headers: { Origin: 'https://forms.example.org', 'Content-Type': 'application/json' }, body: '{}' }),
    );
    expect(res.status).toBe(500);
    expect(text).not.toContain('NOT_SET_ANYWHERE');
    expect(logged).toContain('UPSTREAMS.a.client_secret_from: Worker secret \\"NOT_SET_ANYWHERE\\" is not set');
    for (const s of Object.values(SECRETS)) {
      expect(text).not.toContain(s);
      expect(logged).not.toContain(s);
    }
  });
});

describe('route config that validation refuses (issue 9), each naming the key', () => {
  const FORMS = 'https://forms.example.org';
  const r = (extra: Record<string, unknown> = {}) => ({ path: '/x', upstream: 'a', target: '/y', allowed_origins: [FORMS], ...extra });
  const routes = (ROUTES: Record<string, unknown>) => issues({ UPSTREAMS: { a: good }, ROUTES });

  it.each([
    ['two routes with the same path and method', { one: r({ methods: ['GET', 'POST'] }), two: r({ methods: ['POST'] }) }, ['ROUTES.two.methods: POST /x is also route one']],
    [
      'a specific path shadowed by a param path with another method',
      { item: r({ path: '/items/:id', methods: ['GET'] }), special: r({ path: '/items/export', methods: ['POST'] }) },
      ['ROUTES.special.path: /items/export and route item (/items/:id) match the same requests with different methods; give them the same methods and origins, or distinct paths'],
    ],
    [
      'a specific path shadowed by a param path with other origins',
      { item: r({ path: '/items/:id' }), special: r({ path: '/items/export', allowed_origins: ['https://other.example'] }) },
      ['ROUTES.special.path: /items/export and route item (/items/:id) match the same requests with different origins; give them the same methods and origins, or distinct paths'],
    ],
    [
      'the same path with other parameter names: the second route could never answer',
      { item: r({ path: '/items/:id', methods: ['GET', 'POST'] }), sku: r({ path: '/items/:sku', methods: ['POST'] }) },
      ['ROUTES.sku.methods: POST /items/:sku is also route item (/items/:id: the same path with other parameter names)'],
    ],
    [
      'params named differently in the middle of a path',
      { a: r({ path: '/t/:topic/code/:n' }), b: r({ path: '/t/:name/code/:k' }) },
      ['ROUTES.b.methods: POST /t/:name/code/:k is also route a (/t/:topic/code/:n: the same path with other parameter names)'],
    ],
    ['a . segment in target', { t: r({ target: '/v1/./items' }) }, ['ROUTES.t.target: must not contain . or .. segments']],
    ['a .. segment in target', { t: r({ target: '/v1/items/..' }) }, ['ROUTES.t.target: must not contain . or .. segments']],
    ['an empty scope', { s: r({ scope: '' }) }, ["ROUTES.s.scope: must name at least one scope (leave scope out to use the upstream's)"]],
    ['a blank scope', { s: r({ scope: '   ' }) }, ["ROUTES.s.scope: must name at least one scope (leave scope out to use the upstream's)"]],
    ['userinfo in redirect', { u: r({ redirect: `https://user:pw@forms.example.org/thanks` }) }, ['ROUTES.u.redirect: must not contain user:password@ (userinfo)']],
    ['userinfo in error_redirect', { u: r({ redirect: `${FORMS}/ok`, error_redirect: 'https://x@forms.example.org/ko' }) }, ['ROUTES.u.error_redirect: must not contain user:password@ (userinfo)']],
    [
      'a wildcard in an origin',
      { w: r({ allowed_origins: ['https://*.example.org'] }) },
      ['ROUTES.w.allowed_origins: "https://*.example.org" has a wildcard: list exact origins (or allow_any_origin = true)'],
    ],
    ['a query pattern that does not compile', { q: r({ query: { page: { pattern: '[0-9' } } }) }, ['ROUTES.q.query.page.pattern: is not a valid regular expression']],
    ['an opaque type the Worker parses itself', { o: r({ opaque_types: ['application/json'] }) }, ['ROUTES.o.opaque_types.0: JSON and form bodies are read by the Worker, not passed as opaque']],
    ['an opaque type with a wildcard', { o: r({ opaque_types: ['text/*'] }) }, ['ROUTES.o.opaque_types.0: media types: lower-case type/subtype, no parameters, no wildcards']],
  ])('%s', (_, ROUTES, expected) => {
    expect(routes(ROUTES)).toEqual(expected);
  });

  it('accepted: the same path with other methods, overlapping paths that agree, and the route keys of issue 9', () => {
    expect(
      routes({
        read: r({ path: '/items/:id', methods: ['GET'] }),
        write: r({ path: '/items/:id', methods: ['PUT', 'DELETE'], body: 'optional' }),
        item: r({ path: '/things/:id', methods: ['GET'] }),
        special: r({ path: '/things/export', methods: ['GET'] }),
        search: r({ path: '/search', methods: ['GET'], query: ['q', 'page'] }),
        upload: r({ path: '/upload', opaque_types: ['text/csv'], max_answer_bytes: 65536, active_content: 'refuse' }),
        lists: r({ path: '/lists', form: { fields: { tag: { path: 'tags', list: true } } } }),
        scoped: r({ path: '/scoped', scope: 'read write' }),
        // The same shape with other methods answers for itself.
        byId: r({ path: '/orders/:id', methods: ['GET'] }),
        bySku: r({ path: '/orders/:sku', methods: ['DELETE'], body: 'optional' }),
      }),
    ).toEqual([]);
  });

  it('the specific of two agreeing overlapping routes answers for itself, whatever the config order', async () => {
    const vars = {
      ...env,
      // The fixture's own upstream: the TokenStore runs the fixture config, and a store refuses a
      // caller whose credential set differs from its own (a deploy under way).
      UPSTREAMS: { gwcheck: UPSTREAMS.gwcheck },
      ROUTES: {
        item: { path: '/ov/:id', methods: ['GET'], upstream: 'gwcheck', target: '/v1/items/{id}', allowed_origins: [FORMS] },
        special: { path: '/ov/special', methods: ['GET'], upstream: 'gwcheck', target: '/v1/special', allowed_origins: [FORMS] },
      },
    };
    const { res, text } = await answerWithVars(vars, new Request('https://injector.example/ov/special', { headers: { Origin: FORMS } }));
    expect(res.status, text).toBe(200);
    expect((JSON.parse(text) as { path: string }).path).toBe('/v1/special');
  });
});

async function answerWithVars(vars: object, request: Request): Promise<{ res: Response; text: string }> {
  const ctx = createExecutionContext();
  const res = await worker.fetch(request, vars as typeof env, ctx);
  await waitOnExecutionContext(ctx);
  return { res, text: await res.text() };
}
