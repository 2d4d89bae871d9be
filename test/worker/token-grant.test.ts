/**
 * Each token-request style sends exactly what its upstream requires, and the answer is read
 * correctly (issue 2, point 3). Assertions are made at the stand-in token endpoint.
 */
import { describe, expect, it } from 'vitest';
import { apiHits, post, setToken, tokenHits } from '../helpers';
import { fakeClock, scopeStatus } from './token-helpers';

const form = (body: string) => Object.fromEntries(new URLSearchParams(body));

/** The lifetime the store holds a scope set's token for, from the sending of its request. */
async function lifetimeSeconds(upstream: string, scope = ''): Promise<number> {
  const { token } = await scopeStatus(upstream, scope);
  return Math.round(((token?.expiresAt ?? 0) - (token?.obtainedAt ?? 0)) / 1000);
}

describe('client_secret_basic', () => {
  it('form-urlencodes id and secret before base64 (RFC 6749 §2.3.1), so p@ss:w/rd+% works', async () => {
    expect((await post('/t/basic', {})).status).toBe(200);
    const [hit] = await tokenHits('basic');
    expect(hit!.method).toBe('POST');
    expect(hit!.path).toBe('/oauth2/token');
    expect(hit!.headers['content-type']).toBe('application/x-www-form-urlencoded');
    expect(hit!.headers.authorization).toBe(`Basic ${btoa('client1:p%40ss%3Aw%2Frd%2B%25')}`);
    expect(form(hit!.body)).toEqual({ grant_type: 'client_credentials' });
    expect((await apiHits('basic'))[0]!.headers.authorization).toMatch(/^Bearer tok_basic_/);
  });
});

describe('client_secret_post with scope and extra params (AEMO IDX)', () => {
  it('sends id, secret, grant_type, the normalised scope and audience in the body, no Authorization', async () => {
    expect((await post('/t/post', {})).status).toBe(200);
    const [hit] = await tokenHits('post');
    expect(hit!.headers.authorization).toBeUndefined();
    expect(form(hit!.body)).toEqual({
      grant_type: 'client_credentials',
      client_id: 'idx-client',
      client_secret: 'post-secret-Zq9!',
      scope: 'alpha beta',
      audience: 'https://idx.example',
    });
  });

  it('each distinct scope set is its own token; the same set in another order or with repeats is not', async () => {
    const before = (await apiHits('post')).length;
    expect((await post('/t/post', {})).status).toBe(200);
    expect((await post('/t/post/same', {})).status).toBe(200); // "alpha  beta alpha" = "alpha beta"
    expect((await post('/t/post/gamma', {})).status).toBe(200);
    const hits = await tokenHits('post');
    expect(hits.map((h) => form(h.body).scope)).toEqual(['alpha beta', 'gamma']);
    const api = (await apiHits('post')).slice(before);
    expect(api[0]!.headers.authorization).toBe(api[1]!.headers.authorization);
    expect(api[2]!.headers.authorization).not.toBe(api[0]!.headers.authorization);
  });
});

describe('GET /token answering a bare JWT (directory API)', () => {
  it('sends a GET with Basic credentials and no body, reads the whole body as the token and its exp as lifetime', async () => {
    const clock = fakeClock();
    await setToken('directory', { format: 'text', jwtExpSeconds: 86_400, jwtNow: clock.now() / 1000 });
    expect((await post('/t/directory', {})).status).toBe(200);
    const [hit] = await tokenHits('directory');
    expect(hit!.method).toBe('GET');
    expect(hit!.path).toBe('/token');
    expect(hit!.search).toBe('?grant_type=client_credentials');
    expect(hit!.body).toBe('');
    expect(hit!.headers.authorization).toMatch(/^Basic /);
    const api = await apiHits('directory');
    expect(api[0]!.headers.authorization).toMatch(/^Bearer eyJ[\w-]+\.[\w-]+\.[\w-]+$/);
    expect(await lifetimeSeconds('directory')).toBe(86_400);
  });
});

describe('username/password form login (seed 003)', () => {
  it('posts the username and password fields to /authorization, with no client authentication', async () => {
    expect((await post('/t/login', {})).status).toBe(200);
    const [hit] = await tokenHits('login');
    expect(hit!.path).toBe('/authorization');
    expect(hit!.headers.authorization).toBeUndefined();
    expect(hit!.body).toBe('username=alice%40example.org&password=hunter2-correct-horse');
    expect((await apiHits('login'))[0]!.headers.authorization).toMatch(/^Bearer tok_login_/);
  });
});

describe('configurable field names, a username from a secret, a custom injection header', () => {
  it('posts the configured fields with grant_type, and injects the raw token in X-Api-Token', async () => {
    expect((await post('/t/login2', {})).status).toBe(200);
    const [hit] = await tokenHits('login2');
    expect(form(hit!.body)).toEqual({ grant_type: 'password', user: 'robot-user-7731', pass: 'hunter2-correct-horse' });
    const [api] = await apiHits('login2');
    expect(api!.headers['x-api-token']).toMatch(/^tok_login2_/);
    expect(api!.headers.authorization).toBeUndefined();
  });
});

describe('reading the answer', () => {
  it('custom field names and a lifetime given as a numeric string', async () => {
    await setToken('custom', { tokenField: 'accessToken', expiresField: 'ttl', expiresIn: '120' });
    expect((await post('/t/custom', {})).status).toBe(200);
    expect((await apiHits('custom'))[0]!.headers.authorization).toMatch(/^Bearer tok_custom_/);
    expect(await lifetimeSeconds('custom')).toBe(120);
  });

  it('no lifetime in the answer: the JWT exp is used', async () => {
    const clock = fakeClock();
    await setToken('jwtexp', { expiresIn: null, jwtExpSeconds: 600, jwtNow: clock.now() / 1000 });
    expect((await post('/t/jwtexp', {})).status).toBe(200);
    expect(await lifetimeSeconds('jwtexp')).toBe(600);
  });

  it('neither lifetime nor JWT: the configured default', async () => {
    await setToken('fallback', { expiresIn: null });
    expect((await post('/t/fallback', {})).status).toBe(200);
    expect(await lifetimeSeconds('fallback')).toBe(900);
  });

  it('a 200 answer that is an HTML page (a login wall, a proxy error) is retried, never read as a token', async () => {
    await setToken('htmlok', { body: '<html><body>Please sign in</body></html>', contentType: 'text/html' });
    const res = await post('/t/htmlok', {});
    expect(res.status).toBe(503);
    expect(res.json()).toMatchObject({ detail: 'token endpoint answered 200 with a body that is not JSON (text/html)' });
    expect(await tokenHits('htmlok')).toHaveLength(3);
    expect(await apiHits('htmlok')).toHaveLength(0);
  });

  it('an answer without the token field is an invalid answer naming the field, never an empty token, and not retried at once', async () => {
    await setToken('notoken', { body: '{"token_type":"bearer"}' });
    const res = await post('/t/notoken', {});
    expect(res.status).toBe(502);
    expect(res.headers.get('Content-Type')).toContain('application/problem+json');
    expect(res.json()).toMatchObject({ title: 'Upstream token answer invalid', detail: '"access_token" must be a string' });
    expect(await apiHits('notoken')).toHaveLength(0);
    expect(await tokenHits('notoken')).toHaveLength(1); // the same answer again would not help: backoff
  });
});
