/**
 * origin.ts unit by unit, Hono-style: a tiny app with the guard in front of one handler, the route
 * config written in each test, one behaviour per `it`.
 */
import { Hono } from 'hono';
import { describe, expect, it } from 'vitest';
import { routeSchema } from '../config/schema';
import { problemResponse, ProblemError } from '../problem';
import { originGuard, originPolicy, pageOrigin } from './origin';

const route = (extra: Record<string, unknown>) => routeSchema.parse({ path: '/r', upstream: 'u', target: '/t', ...extra });

/** An app with the guard for `routes` on /r, answering 200 "ok" behind it. */
function app(...routes: ReturnType<typeof route>[]) {
  const a = new Hono();
  a.use('/r', originGuard(routes));
  a.all('/r', (c) => c.text('ok'));
  a.onError((e) => (e instanceof ProblemError ? problemResponse(e.problem) : new Response('bug', { status: 500 })));
  return a;
}

const send = (a: Hono, init: RequestInit & { origin?: string } = {}) =>
  a.request('https://w.example/r', { ...init, headers: { ...(init.origin === undefined ? {} : { Origin: init.origin }), ...(init.headers as Record<string, string>) } });

describe('originPolicy', () => {
  it('exact origins only', () => {
    const allows = originPolicy([route({ allowed_origins: ['https://a.example'] })]);
    expect(allows('https://a.example', 'https://w.example')).toBe(true);
    expect(allows('https://a.example:443', 'https://w.example')).toBe(false);
    expect(allows('https://b.example', 'https://w.example')).toBe(false);
    expect(allows('null', 'https://w.example')).toBe(false);
  });

  it('a subdomain of an allowed origin is another origin', () => {
    const allows = originPolicy([route({ allowed_origins: ['https://a.example'] })]);
    for (const other of ['https://x.a.example', 'https://x.y.a.example', 'https://xa.example']) expect(allows(other, 'https://w.example'), other).toBe(false);
  });

  it('no Origin: only when the route allows the Worker’s own origin', () => {
    expect(originPolicy([route({ allowed_origins: ['https://w.example'] })])(null, 'https://w.example')).toBe(true);
    expect(originPolicy([route({ allowed_origins: ['https://a.example'] })])(null, 'https://w.example')).toBe(false);
  });
});

describe('originGuard', () => {
  const one = app(route({ methods: ['POST'], allowed_origins: ['https://a.example'] }));

  it('an allowed origin passes, with its CORS headers', async () => {
    const res = await send(one, { method: 'POST', origin: 'https://a.example' });
    expect(res.status).toBe(200);
    expect(res.headers.get('Access-Control-Allow-Origin')).toBe('https://a.example');
    expect(res.headers.get('Access-Control-Expose-Headers')).toBe('X-Request-Id,Retry-After,ETag,Location,Content-Location,Content-Disposition');
  });

  it('another origin gets a 403 problem with a stable reason, and the handler never runs', async () => {
    const res = await send(one, { method: 'POST', origin: 'https://evil.example' });
    expect(res.status).toBe(403);
    expect(await res.json()).toMatchObject({ type: 'urn:edge-token-injector:problem:origin-not-allowed', reason: 'origin-not-allowed' });
  });

  it('a preflight lists the conditional headers a page may send', async () => {
    const res = await send(one, { method: 'OPTIONS', origin: 'https://a.example', headers: { 'Access-Control-Request-Method': 'POST' } });
    expect(res.status).toBe(204);
    expect(res.headers.get('Access-Control-Allow-Headers')).toBe(
      'Content-Type,Accept,Accept-Language,Content-Language,If-None-Match,If-Match,If-Modified-Since,If-Unmodified-Since',
    );
  });

  it('routes sharing a path keep their own origins per method', async () => {
    const shared = app(route({ methods: ['GET'], allowed_origins: ['https://read.example'] }), route({ methods: ['POST'], allowed_origins: ['https://write.example'] }));
    expect((await send(shared, { method: 'GET', origin: 'https://read.example' })).status).toBe(200);
    expect((await send(shared, { method: 'POST', origin: 'https://read.example' })).status).toBe(403);
    expect((await send(shared, { method: 'POST', origin: 'https://write.example' })).status).toBe(200);
  });
});

describe('pageOrigin', () => {
  const req = (method: string, headers: Record<string, string>) => new Request('https://w.example/r', { method, headers });

  it('the Origin header when there is one', () => {
    expect(pageOrigin(req('POST', { Origin: 'https://a.example', Referer: 'https://b.example/x' }))).toBe('https://a.example');
  });

  it('a plain GET form (a navigation, sent without Origin): the origin of its Referer', () => {
    expect(pageOrigin(req('GET', { 'Sec-Fetch-Mode': 'navigate', Referer: 'https://a.example/form.html?x=1' }))).toBe('https://a.example');
  });

  it('otherwise none: no Referer, not a navigation, not a GET, an opaque referrer', () => {
    expect(pageOrigin(req('GET', { 'Sec-Fetch-Mode': 'navigate' }))).toBeNull();
    expect(pageOrigin(req('GET', { 'Sec-Fetch-Mode': 'cors', Referer: 'https://a.example/' }))).toBeNull();
    expect(pageOrigin(req('POST', { 'Sec-Fetch-Mode': 'navigate', Referer: 'https://a.example/' }))).toBeNull();
    expect(pageOrigin(req('GET', { 'Sec-Fetch-Mode': 'navigate', Referer: 'about:blank' }))).toBeNull();
  });

  it('the guard judges a GET form navigation by its Referer', async () => {
    const a = app(route({ methods: ['GET'], allowed_origins: ['https://a.example'] }));
    const nav = (referer: string) => send(a, { method: 'GET', headers: { 'Sec-Fetch-Mode': 'navigate', 'Sec-Fetch-Site': 'cross-site', Referer: referer } });
    expect((await nav('https://a.example/search.html')).status).toBe(200);
    expect((await nav('https://evil.example/search.html')).status).toBe(403);
  });
});
