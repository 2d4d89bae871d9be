/** Unit tests beside log.ts: which route a request line names, and what a route's `log_fields` log. */
import { describe, expect, it } from 'vitest';
import { parseConfig } from './config/load';
import type { RouteConfig } from './config/schema';
import { fieldPicker, requestLine, routeNameOf } from './log';

const upstream = { api_origin: 'https://api.example.org', token_url: 'https://auth.example.org/token', client_id: 'c', client_secret_from: 'S' };
const origins = ['https://forms.example.org'];
const config = parseConfig({
  UPSTREAMS: { a: upstream },
  ROUTES: {
    code: {
      path: '/code/:topic',
      upstream: 'a',
      target: '/v1/{topic}',
      allowed_origins: origins,
      query: { lang: {}, tag: { list: true } },
      required_fields: ['title'],
      form: { template: { n: 5 }, fields: { title: 'record.title', note: 'record.note', n: { path: 'n', type: 'integer' } } },
      log_fields: ['topic', 'lang', 'tag', 'title', 'n'],
    },
    items_get: { path: '/items/:id', methods: ['GET'], upstream: 'a', target: '/v1/{id}', allowed_origins: origins },
    items_post: { path: '/items/:id', methods: ['POST'], upstream: 'a', target: '/v1/{id}', allowed_origins: origins },
    things: { path: '/things/:id', methods: ['GET'], upstream: 'a', target: '/v1/{id}', allowed_origins: origins },
    things_export: { path: '/things/export', methods: ['GET'], upstream: 'a', target: '/v1/export', allowed_origins: origins },
    plain: { path: '/plain.v1/x', upstream: 'a', target: '/v1/x', allowed_origins: origins },
  },
});
const body = (v: unknown) => new TextEncoder().encode(JSON.stringify(v));

describe('routeNameOf', () => {
  const req = (path: string, method = 'GET', headers: Record<string, string> = {}) => new Request(`https://w.example${path}`, { method, headers });
  const items: Array<[string, RouteConfig]> = [
    ['items_get', config.routes.items_get!],
    ['items_post', config.routes.items_post!],
  ];

  it('the route that took the request names itself', () => {
    expect(routeNameOf({ requestId: 'r', routeName: 'items_post', pathRoutes: items }, req('/items/1', 'POST'))).toBe('items_post');
  });

  it('refused before a route took it: the route of the matched path that takes its method, a preflight by the method it asks for', () => {
    const notes = { requestId: 'r', pathRoutes: items };
    expect(routeNameOf(notes, req('/items/1', 'GET'))).toBe('items_get');
    expect(routeNameOf(notes, req('/items/1', 'HEAD'))).toBe('items_get');
    expect(routeNameOf(notes, req('/items/1', 'OPTIONS', { 'Access-Control-Request-Method': 'POST' }))).toBe('items_post');
    expect(routeNameOf(notes, req('/items/1', 'DELETE'))).toBe('items_get,items_post');
  });

  it('no path matched (404, /healthz, /status): no route', () => {
    expect(routeNameOf({ requestId: 'r' }, req('/nowhere'))).toBeNull();
  });
});

describe('fieldPicker', () => {
  const pick = fieldPicker(config.routes.code!)!;

  it('reads path params, the forwarded query and the body the API got (a mapped field at its path)', () => {
    const fields = pick({ params: { topic: 'nurse' }, query: new URLSearchParams('lang=en&tag=a&tag=b'), body: body({ record: { title: 'T', note: 'secret' }, n: 3 }), contentType: 'application/json' });
    expect(fields).toEqual({ topic: 'nurse', lang: 'en', tag: ['a', 'b'], title: 'T', n: 3 });
  });

  it('bounds what it logs: long strings cut, long lists cut, objects by kind; absent fields left out; no body, no body fields', () => {
    const fields = pick({ params: { topic: 'x'.repeat(500) }, query: new URLSearchParams(Array.from({ length: 30 }, (_, i) => `tag=${i}`).join('&')), body: body({ record: { title: { deep: 'secret' } } }), contentType: 'application/json' });
    expect(fields.topic).toBe(`${'x'.repeat(200)}…`);
    expect(fields.tag).toHaveLength(20);
    expect(fields.title).toBe('(object)');
    expect(fields).not.toHaveProperty('lang');
    expect(pick({ params: { topic: 't' }, query: new URLSearchParams(), contentType: null })).toEqual({ topic: 't' });
    expect(pick({ params: { topic: 't' }, query: new URLSearchParams(), body: new TextEncoder().encode('{broken'), contentType: 'application/json' })).toEqual({ topic: 't' });
  });

  it('a route without log_fields has no picker', () => {
    expect(fieldPicker(config.routes.plain!)).toBeUndefined();
  });
});

describe('requestLine', () => {
  it('outcome: what a step set, else the problem, else forwarded, preflight or answered; upstream_calls only when 2', () => {
    const base = { requestId: 'r' };
    expect(requestLine({ ...base, outcome: 'honeypot', reason: 'x' }, 'POST', 200, 1, 'code').outcome).toBe('honeypot');
    expect(requestLine({ ...base, reason: 'token-rejected', upstreamStatus: 401 }, 'POST', 502, 1, 'code').outcome).toBe('token-rejected');
    expect(requestLine({ ...base, upstreamStatus: 404, upstreamCalls: 1 }, 'GET', 404, 1, 'code')).toMatchObject({ outcome: 'forwarded', upstream_status: 404 });
    expect(requestLine({ ...base, upstreamStatus: 200, upstreamCalls: 1 }, 'GET', 200, 1, 'code')).not.toHaveProperty('upstream_calls');
    expect(requestLine({ ...base, upstreamStatus: 200, upstreamCalls: 2 }, 'GET', 200, 1, 'code')).toHaveProperty('upstream_calls', 2);
    expect(requestLine(base, 'OPTIONS', 204, 1, 'code').outcome).toBe('preflight');
    expect(requestLine(base, 'GET', 200, 1, null).outcome).toBe('answered');
    expect(requestLine(base, 'get\n', 200, 1, null).method).toBe('(other)');
  });
});
