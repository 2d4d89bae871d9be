/**
 * Gateway: bad inputs. Each gets its status and a problem+json body that says what was wrong, and
 * none of them reaches the upstream. Also CORS: preflight, disallowed origins, no-Origin requests.
 */
import { beforeAll, describe, expect, it, vi } from 'vitest';
import { ORIGIN, OTHER_ORIGIN } from '../fixtures/config';
import { PARTNER_ORIGIN, SELF_ORIGIN } from '../fixtures/gateway';
import { apiHits, call, post, type Answer } from '../helpers';
import { expectProblem, formBody, multipartBody } from './gateway.support';

const HOST = 'gwcheck';
const goodCode = { occp_text: 'registered nurse', tasks_text: 'patient care' };

/** Run `send` and assert the upstream saw no API call because of it. */
async function noUpstream(send: () => Promise<Answer>): Promise<Answer> {
  const before = (await apiHits(HOST)).length;
  const res = await send();
  expect((await apiHits(HOST)).length, 'the request reached the upstream').toBe(before);
  return res;
}

beforeAll(async () => {
  // One good call first, so "no upstream call" below is not trivially true for a cold route.
  const res = await post('/gwcheck/code/occp', goodCode);
  expect(res.status, res.text).toBe(200);
});

describe('bad inputs never reach the upstream', () => {
  it('oversized body → 413', async () => {
    const res = await noUpstream(() => post('/gwcheck/code/occp', { occp_text: 'x'.repeat(5000) }));
    expectProblem(res, 413, /at most 4096 bytes/);
  });

  it('oversized body without Content-Length (streamed) → 413', async () => {
    const chunk = new TextEncoder().encode(JSON.stringify({ occp_text: 'y'.repeat(3000) }));
    const stream = new ReadableStream<Uint8Array>({
      start(c) {
        c.enqueue(chunk);
        c.enqueue(chunk);
        c.close();
      },
    });
    const res = await noUpstream(() => call('/gwcheck/code/occp', { method: 'POST', body: stream, headers: { 'Content-Type': 'application/json' } }));
    expectProblem(res, 413, /at most 4096 bytes/);
  });

  it('unsupported content type → 415 naming the accepted ones', async () => {
    const res = await noUpstream(() => call('/gwcheck/code/occp', { method: 'POST', body: 'occp_text=nurse', headers: { 'Content-Type': 'text/plain' } }));
    expectProblem(res, 415, /application\/json.*application\/x-www-form-urlencoded.*multipart\/form-data.*got text\/plain/);
    expect(res.headers.get('Accept-Post')).toContain('multipart/form-data');
  });

  it('no content type → 415', async () => {
    // call() adds application/json to any body without a type; an empty type is the closest to none.
    const res = await noUpstream(() => call('/gwcheck/code/occp', { method: 'POST', body: '{}', headers: { 'Content-Type': '' } }));
    expectProblem(res, 415, /^send application\/json/);
  });

  it('malformed JSON → 400 that does not echo the body', async () => {
    const res = await noUpstream(() => call('/gwcheck/code/occp', { method: 'POST', body: '{"occp_text": "nurse", SECRETISH' }));
    expectProblem(res, 400, /not valid JSON/);
    expect(res.text).not.toContain('SECRETISH');
  });

  it('JSON that is not an object → 400', async () => {
    for (const body of ['[1,2]', '"nurse"', 'null', '42']) {
      const res = await noUpstream(() => call('/gwcheck/code/occp', { method: 'POST', body }));
      expectProblem(res, 400, /must be a JSON object/);
    }
  });

  it('missing required field → 422 naming it', async () => {
    const res = await noUpstream(() => post('/gwcheck/code/occp', { tasks_text: 'care' }));
    expectProblem(res, 422, /occp_text is required/);
    expect((res.json() as { errors: unknown }).errors).toEqual([{ field: 'occp_text', message: 'is required' }]);
  });

  it('blank required field → 422', async () => {
    const res = await noUpstream(() => call('/gwcheck/code/occp', formBody({ occp_text: '   ', tasks_text: 'care' })));
    expectProblem(res, 422, /occp_text is required/);
  });

  it('too-long field → 422 naming it and the limit', async () => {
    const res = await noUpstream(() => post('/gwcheck/code/occp', { occp_text: 'nurse', tasks_text: 't'.repeat(201) }));
    expectProblem(res, 422, /tasks_text is longer than 200 characters/);
  });

  it('too-long field nested in JSON → 422 with its path', async () => {
    const res = await noUpstream(() => post('/gwcheck/items/a1', { name: 'n', deep: { inner: 'z'.repeat(21) } }));
    expectProblem(res, 422, /deep\.inner is longer than 20 characters/);
  });

  it('a too-long field called __proto__ is still caught', async () => {
    const res = await noUpstream(() => call('/gwcheck/items/a1', { method: 'POST', body: `{"name":"n","__proto__":"${'p'.repeat(21)}"}` }));
    expectProblem(res, 422, /__proto__ is longer than 20 characters/);
  });

  it('a deeply nested JSON body is checked without exhausting the stack', async () => {
    const depth = 100_000;
    const body = `{"deep":${'['.repeat(depth)}${']'.repeat(depth)}}`;
    const res = await call('/gwcheck/big', { method: 'POST', body });
    // The Worker checks and forwards it (whatever the stand-in then makes of it: Node's own
    // JSON.stringify of the echo overflows, so the answer may be the stand-in's 500).
    expect(res.headers.get('Content-Type')).not.toMatch(/problem/);
    expect((await apiHits(HOST)).at(-1)?.body).toBe(body);
    const nestedLong = `{"deep":${'['.repeat(1000)}"${'q'.repeat(21)}"${']'.repeat(1000)}}`;
    const res2 = await noUpstream(() => call('/gwcheck/big', { method: 'POST', body: nestedLong }));
    expectProblem(res2, 422, /is longer than 20 characters/);
  });

  it('many bad fields: the answer lists a bounded number', async () => {
    const fields = Object.fromEntries(Array.from({ length: 60 }, (_, i) => [`f${i}`, 'z'.repeat(21)]));
    const res = await noUpstream(() => call('/gwcheck/big', { method: 'POST', body: JSON.stringify(fields) }));
    const p = expectProblem(res, 422, /f0 is longer than 20 characters; .*; and 40 more$/);
    expect(p.errors).toHaveLength(20);
  });

  it('a field whose name is an Object.prototype member is an ordinary field', async () => {
    // `constructor`, `toString`: not "repeated", not "present" when absent.
    const res = await call('/gwcheck/items/a1', formBody({ name: 'n', constructor: 'c', toString: 't' }));
    expect(res.status, res.text).toBe(200);
    expect((res.json() as { body: unknown }).body).toEqual({ name: 'n', constructor: 'c', toString: 't' });
    const missing = await noUpstream(() => call('/gwcheck/items/a1', formBody({ other: 'x' })));
    expectProblem(missing, 422, /name is required/);
  });

  it('a required field named like an Object.prototype member must really be there', async () => {
    const res = await noUpstream(() => call('/gwcheck/items/a1', formBody({ valueOf: 'x' })));
    expectProblem(res, 422, /name is required/);
  });

  it('repeated form field → 422', async () => {
    const res = await noUpstream(() => call('/gwcheck/code/occp', { method: 'POST', body: 'occp_text=a&occp_text=b', headers: { 'Content-Type': 'application/x-www-form-urlencoded' } }));
    expectProblem(res, 422, /given more than once/);
  });

  it('a file in a multipart form → 422', async () => {
    const fd = new FormData();
    fd.set('occp_text', 'nurse');
    fd.set('tasks_text', new File(['hello'], 'cv.txt', { type: 'text/plain' }));
    const res = await noUpstream(async () => call('/gwcheck/code/occp', await multipartBody(fd)));
    expectProblem(res, 422, /tasks_text.*file/);
  });

  it('broken multipart body → 400', async () => {
    const res = await noUpstream(() =>
      call('/gwcheck/code/occp', { method: 'POST', body: '--x\r\nnot a part', headers: { 'Content-Type': 'multipart/form-data; boundary=zzz' } }),
    );
    expectProblem(res, 400, /multipart\/form-data/);
  });

  it('unknown route → 404', async () => {
    for (const path of ['/nowhere', '/gwcheck', '/gwcheck/code', '/gwcheck/code/occp/extra', '/gwcheck/code/occp/']) {
      const res = await noUpstream(() => post(path, goodCode));
      expectProblem(res, 404, /no route/);
    }
  });

  it('wrong method → 405 with Allow', async () => {
    for (const method of ['GET', 'DELETE', 'PATCH']) {
      const res = await noUpstream(() => call('/gwcheck/code/occp', { method }));
      expectProblem(res, 405, /POST/);
      expect(res.headers.get('Allow')).toBe('POST, OPTIONS');
    }
    const items = await noUpstream(() => call('/gwcheck/items/a1', { method: 'DELETE' }));
    expectProblem(items, 405);
    expect(items.headers.get('Allow')).toBe('GET, POST, PUT, HEAD, OPTIONS');
  });

  it('HEAD on a POST-only route → 405, not a GET upstream', async () => {
    const res = await noUpstream(() => call('/gwcheck/code/occp', { method: 'HEAD' }));
    expect(res.status).toBe(405);
  });

  it('disallowed origin → 403, for every method and even for a valid request', async () => {
    for (const method of ['POST', 'GET', 'OPTIONS', 'PUT']) {
      const res = await noUpstream(() => call('/gwcheck/items/a1', { method, origin: OTHER_ORIGIN, ...(method === 'POST' || method === 'PUT' ? { body: '{"name":"n"}' } : {}) }));
      expectProblem(res, 403, /may not call this route/);
      expect(res.headers.get('Access-Control-Allow-Origin')).toBeNull();
    }
  });

  it('origins are compared exactly', async () => {
    for (const origin of [`${ORIGIN}/`, ORIGIN.toUpperCase(), `${ORIGIN}:443`, ORIGIN.replace('https:', 'http:'), `${ORIGIN}.evil.com`, 'null', '*']) {
      const res = await noUpstream(() => post('/gwcheck/code/occp', goodCode, { origin }));
      expectProblem(res, 403);
    }
  });

  it('an origin allowed on one route is not allowed on another', async () => {
    const ok = await post('/gwcheck/code/occp', goodCode, { origin: PARTNER_ORIGIN });
    expect(ok.status, ok.text).toBe(200);
    const res = await noUpstream(() => post('/gwcheck/items/a1', { name: 'n' }, { origin: PARTNER_ORIGIN }));
    expectProblem(res, 403);
  });

  it('no Origin header → 403, unless a same-origin request to a route that allows the Worker itself', async () => {
    expectProblem(await noUpstream(() => post('/gwcheck/code/occp', goodCode, { origin: null })), 403, /no Origin header/);
    expectProblem(await noUpstream(() => post('/gwcheck/code/occp', goodCode, { origin: null, headers: { 'Sec-Fetch-Site': 'same-origin' } })), 403);
    expectProblem(await noUpstream(() => call('/gwcheck/self', { origin: null })), 403);
    expectProblem(await noUpstream(() => call('/gwcheck/self', { origin: null, headers: { 'Sec-Fetch-Site': 'cross-site' } })), 403);
    const same = await call('/gwcheck/self', { origin: null, headers: { 'Sec-Fetch-Site': 'same-origin' } });
    expect(same.status, same.text).toBe(200);
    const explicit = await call('/gwcheck/self', { origin: SELF_ORIGIN });
    expect(explicit.status, explicit.text).toBe(200);
  });

  it('allow_any_origin: any origin passes, with its own origin echoed', async () => {
    const res = await post('/gwcheck/any', { a: 1 }, { origin: OTHER_ORIGIN });
    expect(res.status, res.text).toBe(200);
    expect(res.headers.get('Access-Control-Allow-Origin')).toBe(OTHER_ORIGIN);
    expect(res.headers.get('Vary')).toMatch(/Origin/);
  });

  it('traversal and smuggling attempts → 404/400, no upstream call', async () => {
    const attempts = [
      '/gwcheck/items/..',
      '/gwcheck/items/.',
      '/gwcheck/items/a..b',
      '/gwcheck/items/...',
      '/gwcheck/items/%2e%2e',
      '/gwcheck/items/%2E',
      '/gwcheck/items/a%2fb',
      '/gwcheck/items/a%2Fb',
      '/gwcheck/items/..%2f..%2fadmin',
      '/gwcheck/items/a%5cb',
      '/gwcheck/items/a\\b',
      '/gwcheck/items/a%00b',
      '/gwcheck/items/a%0ab',
      '/gwcheck/items/a%7fb',
      '/gwcheck/items/a%252fb',
      '/gwcheck/items/a%3fx=1',
      '/gwcheck/items/a%23frag',
      '/gwcheck/items/a%40evil.com',
      '/gwcheck/items/%3a%2f%2fevil.com',
      '/gwcheck/items/a%20b',
      '/gwcheck/items/caf%C3%A9',
      '/gwcheck/items/%',
      '/gwcheck/items/%zz',
      '/gwcheck/x/../../items/a1',
      '/gwcheck/items/a1/..',
      '/gwcheck/items/a1/%2e%2e',
    ];
    for (const path of attempts) {
      const res = await noUpstream(() => call(path));
      expect([400, 404], `${path}: ${res.status} ${res.text}`).toContain(res.status);
      expectProblem(res, res.status);
    }
  });
});

describe('dot segments', () => {
  it('are resolved by the URL parser before routing, so they can only land on a configured route', async () => {
    const before = (await apiHits(HOST)).length;
    const res = await call('/gwcheck/code/../items/a1');
    expect(res.status, res.text).toBe(200);
    expect((await apiHits(HOST)).slice(before).map((h) => h.path)).toEqual(['/v1/items/a1']);
  });

  it('a single dot inside a param is fine (versions, file-like ids)', async () => {
    const before = (await apiHits(HOST)).length;
    for (const id of ['v1.2', '.hidden', 'a.b.c', 'x~y_z-0']) expect((await call(`/gwcheck/items/${id}`)).status, id).toBe(200);
    expect((await apiHits(HOST)).slice(before).map((h) => h.path)).toEqual(['/v1/items/v1.2', '/v1/items/.hidden', '/v1/items/a.b.c', '/v1/items/x~y_z-0']);
  });
});

describe('CORS', () => {
  it('two routes on one path keep their own origins', async () => {
    expectProblem(await noUpstream(() => post('/gwcheck/shared', { a: 1 }, { origin: PARTNER_ORIGIN })), 403);
    expectProblem(await noUpstream(() => call('/gwcheck/shared', { origin: ORIGIN })), 403);
    expect((await post('/gwcheck/shared', { a: 1 })).status).toBe(200);
    expect((await call('/gwcheck/shared', { origin: PARTNER_ORIGIN })).status).toBe(200);
    const pre = await call('/gwcheck/shared', { method: 'OPTIONS', origin: PARTNER_ORIGIN, headers: { 'Access-Control-Request-Method': 'GET' } });
    expect(pre.status).toBe(204);
    expect(pre.headers.get('Access-Control-Allow-Methods')).toBe('GET');
    const refused = await call('/gwcheck/shared', { method: 'OPTIONS', origin: PARTNER_ORIGIN, headers: { 'Access-Control-Request-Method': 'POST' } });
    expectProblem(refused, 403);
  });

  it('preflight from an allowed origin → 204 with exact headers and Vary: Origin', async () => {
    const res = await noUpstream(() =>
      call('/gwcheck/items/a1', {
        method: 'OPTIONS',
        headers: { 'Access-Control-Request-Method': 'POST', 'Access-Control-Request-Headers': 'content-type, x-evil' },
      }),
    );
    expect(res.status).toBe(204);
    expect(res.text).toBe('');
    expect(res.headers.get('Access-Control-Allow-Origin')).toBe(ORIGIN);
    expect(res.headers.get('Access-Control-Allow-Methods')).toBe('GET,POST,PUT');
    expect(res.headers.get('Access-Control-Allow-Headers')).toBe(
      'Content-Type,Accept,Accept-Language,Content-Language,If-None-Match,If-Match,If-Modified-Since,If-Unmodified-Since',
    );
    expect(res.headers.get('Access-Control-Allow-Credentials')).toBeNull();
    expect(res.headers.get('Access-Control-Max-Age')).toBe('600');
    expect(res.headers.get('Vary')).toMatch(/\bOrigin\b/);
  });

  it('preflight on a route path with the other route origin gets only its own', async () => {
    const res = await call('/gwcheck/code/occp', { method: 'OPTIONS', origin: PARTNER_ORIGIN, headers: { 'Access-Control-Request-Method': 'POST' } });
    expect(res.status).toBe(204);
    expect(res.headers.get('Access-Control-Allow-Origin')).toBe(PARTNER_ORIGIN);
    expect(res.headers.get('Access-Control-Allow-Methods')).toBe('POST');
  });

  it('a successful answer carries CORS headers for the calling origin', async () => {
    const res = await post('/gwcheck/code/occp', goodCode);
    expect(res.status, res.text).toBe(200);
    expect(res.headers.get('Access-Control-Allow-Origin')).toBe(ORIGIN);
    expect(res.headers.get('Access-Control-Expose-Headers')).toContain('X-Request-Id');
    expect(res.headers.get('Vary')).toMatch(/\bOrigin\b/);
  });

  it('problem answers to an allowed origin carry CORS headers, so the page can read them', async () => {
    const cases: Array<[string, RequestInit]> = [
      ['/gwcheck/code/occp', { method: 'POST', body: '{' }],
      ['/gwcheck/code/occp', { method: 'POST', body: '{}' }],
      ['/gwcheck/code/occp', { method: 'POST', body: 'x', headers: { 'Content-Type': 'text/plain' } }],
      ['/gwcheck/code/occp', { method: 'POST', body: JSON.stringify({ occp_text: 'x'.repeat(5000) }) }],
      ['/gwcheck/code/occp', { method: 'GET' }],
      ['/gwcheck/items/a%2fb', {}],
      ['/gwcheck/items/..%2f', {}],
    ];
    for (const [path, init] of cases) {
      const res = await noUpstream(() => call(path, init));
      expect(res.status, path).toBeGreaterThanOrEqual(400);
      expect(res.headers.get('Access-Control-Allow-Origin'), `${path} ${res.status}`).toBe(ORIGIN);
      expect(res.headers.get('Vary'), `${path} ${res.status}`).toMatch(/\bOrigin\b/);
    }
  });
});

describe('request ids', () => {
  const UUID = /^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$/;

  it('the Worker’s own id, never the client’s X-Request-Id, which is only logged beside it', async () => {
    const log = vi.spyOn(console, 'log');
    const before = log.mock.calls.length;
    const ok = await post('/gwcheck/code/occp', goodCode, { headers: { 'X-Request-Id': 'client-chosen-1' } });
    expect(ok.status, ok.text).toBe(200);
    const id = ok.headers.get('X-Request-Id')!;
    expect(id).toMatch(UUID);
    const refused = await noUpstream(() => post('/gwcheck/code/occp', {}, { headers: { 'X-Request-Id': 'client-chosen-2' } }));
    const p = expectProblem(refused, 422);
    expect(p.request_id).toMatch(UUID);
    expect(p.request_id).not.toBe(id);
    // Beside it: in the request's one log line.
    const lines = log.mock.calls.slice(before).map((c) => JSON.parse(String(c[0])) as Record<string, unknown>).filter((l) => l.event === 'request');
    expect(lines.find((l) => l.request_id === id)).toMatchObject({ client_request_id: 'client-chosen-1', status: 200 });
    expect(lines.find((l) => l.request_id === p.request_id)).toMatchObject({ client_request_id: 'client-chosen-2', status: 422 });
  });

  it('a client id that is not printable or too long is logged as such, not as sent', async () => {
    const log = vi.spyOn(console, 'log');
    const before = log.mock.calls.length;
    const res = await post('/gwcheck/code/occp', goodCode, { headers: { 'X-Request-Id': 'x'.repeat(129) } });
    expect(res.headers.get('X-Request-Id')).toMatch(UUID);
    const line = log.mock.calls.slice(before).map((c) => String(c[0])).find((l) => l.includes('client_request_id'));
    expect(line).toContain('"client_request_id":"(unprintable or too long)"');
    expect(line).not.toContain('x'.repeat(129));
  });
});
