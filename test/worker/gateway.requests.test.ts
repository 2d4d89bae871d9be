/**
 * Gateway: requests real APIs need (issue 9). Any JSON (arrays, scalars, `+json` types as sent),
 * bodiless POST/DELETE where the route says so, opaque bodies byte for byte, repeated form fields
 * as lists, query parameters from an allowlist (anything else refused, never dropped), GET forms,
 * and conditional headers. The stand-in records what arrived; every case counts the API calls.
 */
import { describe, expect, it } from 'vitest';
import { ORIGIN } from '../fixtures/config';
import { SORRY_URL, THANKS_URL } from '../fixtures/gateway';
import { apiHits, call, setApi, type Answer } from '../helpers';
import type { Hit } from '../standin/upstreams';
import { expectProblem, formBody } from './gateway.support';

/** The API calls `send` causes at `host`. */
async function sent(host: string, send: () => Promise<Answer>): Promise<{ res: Answer; api: Hit[] }> {
  const before = (await apiHits(host)).length;
  const res = await send();
  return { res, api: (await apiHits(host)).slice(before) };
}

/** The one API call `send` causes at `host`, after a 200. */
async function oneCall(host: string, send: () => Promise<Answer>): Promise<Hit> {
  const { res, api } = await sent(host, send);
  expect(res.status, res.text).toBe(200);
  expect(api).toHaveLength(1);
  return api[0]!;
}

const json = (body: string, type = 'application/json', method = 'POST'): RequestInit => ({ method, body, headers: { 'Content-Type': type } });

describe('any JSON', () => {
  it('arrays (a batch, a JSON Patch) and scalars go byte for byte', async () => {
    for (const body of ['[{"occp_text":"nurse"},{"occp_text":"baker"}]', '[]', '"just text"', '42', 'null', 'true', ' [1, 2.50, 1e400] ']) {
      const hit = await oneCall('gwbody', () => call('/gwbody/any', json(body)));
      expect(hit.body).toBe(body);
      expect(hit.headers['content-type']).toBe('application/json');
    }
  });

  it('+json media types reach the API with the type the client sent', async () => {
    const patch = '[{"op":"replace","path":"/name","value":"n"}]';
    for (const [type, body, method] of [
      ['application/json-patch+json', patch, 'PATCH'],
      ['application/merge-patch+json', '{"name":null}', 'PATCH'],
      ['application/problem+json; charset=utf-8', '{"title":"x"}', 'POST'],
      ['application/vnd.api+json', '{"data":[]}', 'PUT'],
    ] as const) {
      const hit = await oneCall('gwbody', () => call('/gwbody/any', json(body, type, method)));
      expect([hit.method, hit.headers['content-type'], hit.body]).toEqual([method, type, body]);
    }
  });

  it('a route that reads named fields still wants a JSON object', async () => {
    const { res, api } = await sent('gwbody', () => call('/gwbody/list', json('["a"]')));
    expectProblem(res, 400, /must be a JSON object/, 'json-object-required');
    expect(api).toHaveLength(0);
  });

  it('JSON that is not UTF-8 is refused, not re-encoded', async () => {
    const { res, api } = await sent('gwbody', () => call('/gwbody/any', { method: 'POST', body: new Uint8Array([0x22, 0xe9, 0x22]), headers: { 'Content-Type': 'application/json' } }));
    expectProblem(res, 400, /not valid JSON/, 'malformed-json');
    expect(api).toHaveLength(0);
  });
});

describe('bodiless requests', () => {
  it('POST, PUT, PATCH and DELETE with no body and no Content-Type reach the API bodiless where the route says so', async () => {
    for (const method of ['POST', 'PUT', 'PATCH', 'DELETE']) {
      const hit = await oneCall('gwbody', () => call('/gwbody/any', { method }));
      expect([hit.method, hit.body, hit.headers['content-type']]).toEqual([method, '', undefined]);
    }
  });

  it('a bodiless POST to a route that needs a body is refused 415, and reaches nothing', async () => {
    const { res, api } = await sent('gwbody', () => call('/gwbody/required', { method: 'POST' }));
    expectProblem(res, 415, /needs a body/, 'body-required');
    expect(res.headers.get('Accept-Post')).toContain('application/json');
    expect(api).toHaveLength(0);
  });

  it('a DELETE body is forwarded as sent, even on a route that needs none for DELETE', async () => {
    const hit = await oneCall('gwbody', () => call('/gwbody/required', json('{"reason":"duplicate"}', 'application/json', 'DELETE')));
    expect([hit.method, hit.body, hit.headers['content-type']]).toEqual(['DELETE', '{"reason":"duplicate"}', 'application/json']);
    const bare = await oneCall('gwbody', () => call('/gwbody/required', { method: 'DELETE' }));
    expect([bare.method, bare.body]).toEqual(['DELETE', '']);
  });

  it('a body on a route that takes none is refused 400, never dropped', async () => {
    for (const method of ['POST', 'DELETE']) {
      const { res, api } = await sent('gwbody', () => call('/gwbody/none', json('{"a":1}', 'application/json', method)));
      expectProblem(res, 400, /takes no body/, 'body-not-allowed');
      expect(api).toHaveLength(0);
    }
    const hit = await oneCall('gwbody', () => call('/gwbody/none', { method: 'DELETE' }));
    expect(hit.body).toBe('');
  });
});

describe('opaque bodies (opaque_types)', () => {
  it('CSV passes byte for byte with its Content-Type', async () => {
    const csv = 'occp_text,tasks_text\r\n"nurse","care; ""triage"""\r\nbäcker,brot\r\n';
    const hit = await oneCall('gwbody', () => call('/gwbody/upload', { method: 'POST', body: csv, headers: { 'Content-Type': 'text/csv; charset=utf-8; header=present' } }));
    expect(hit.body).toBe(csv);
    expect(hit.headers['content-type']).toBe('text/csv; charset=utf-8; header=present');
  });

  it('binary (octet-stream) bytes arrive unchanged, every byte value', async () => {
    const bytes = Uint8Array.from({ length: 512 }, (_, i) => (i * 37) % 256);
    const hit = await oneCall('gwbody', () => call('/gwbody/upload', { method: 'PUT', body: bytes, headers: { 'Content-Type': 'application/octet-stream' } }));
    expect(hit.bodyBase64).toBe(btoa(String.fromCharCode(...bytes)));
  });

  it('within the route size limit only; other types still 415', async () => {
    const big = await sent('gwbody', () => call('/gwbody/upload', { method: 'POST', body: 'x'.repeat(2049), headers: { 'Content-Type': 'text/csv' } }));
    expectProblem(big.res, 413, /at most 2048 bytes/, 'body-too-large');
    const xml = await sent('gwbody', () => call('/gwbody/upload', { method: 'POST', body: '<a/>', headers: { 'Content-Type': 'application/xml' } }));
    expectProblem(xml.res, 415, /text\/csv, application\/octet-stream \(got application\/xml\)/, 'unsupported-content-type');
    expect(xml.res.headers.get('Accept-Post')).toBe('application/json, application/x-www-form-urlencoded, multipart/form-data, text/csv, application/octet-stream');
    // A route without opaque types takes none.
    const csv = await sent('gwbody', () => call('/gwbody/any', { method: 'POST', body: 'a,b', headers: { 'Content-Type': 'text/csv' } }));
    expectProblem(csv.res, 415);
    expect([...big.api, ...xml.api, ...csv.api]).toHaveLength(0);
  });
});

describe('repeated form fields (list fields)', () => {
  it('checkboxes and multi-selects become JSON arrays, typed per element', async () => {
    const body = 'tags=red&tags=green&ids=1&ids=22&name=n';
    const hit = await oneCall('gwbody', () => call('/gwbody/list', { method: 'POST', body, headers: { 'Content-Type': 'application/x-www-form-urlencoded' } }));
    expect(hit.body).toBe('{"kind":"survey","answers":{"tags":["red","green"],"ids":[1,22]},"name":"n"}');
  });

  it('one value is a list of one; JSON arrays map the same way', async () => {
    expect((await oneCall('gwbody', () => call('/gwbody/list', formBody({ tags: 'red' })))).body).toBe('{"kind":"survey","answers":{"tags":["red"]}}');
    expect((await oneCall('gwbody', () => call('/gwbody/list', json('{"tags":["a","b"],"ids":[3]}')))).body).toBe(
      '{"kind":"survey","answers":{"tags":["a","b"],"ids":[3]}}',
    );
  });

  it('a field that is not a list may not repeat (422); a list element of the wrong type is 422', async () => {
    const twice = await sent('gwbody', () => call('/gwbody/list', { method: 'POST', body: 'tags=a&name=x&name=y', headers: { 'Content-Type': 'application/x-www-form-urlencoded' } }));
    expect(expectProblem(twice.res, 422, /name is given more than once/, 'invalid-submission').errors).toEqual([{ field: 'name', message: 'is given more than once (only list fields may repeat)' }]);
    const typed = await sent('gwbody', () => call('/gwbody/list', { method: 'POST', body: 'tags=a&ids=1&ids=x', headers: { 'Content-Type': 'application/x-www-form-urlencoded' } }));
    expectProblem(typed.res, 422, /ids must be a list of integers/);
    const empty = await sent('gwbody', () => call('/gwbody/list', { method: 'POST', body: 'tags=&tags=%20', headers: { 'Content-Type': 'application/x-www-form-urlencoded' } }));
    expectProblem(empty.res, 422, /tags is required/);
    expect([...twice.api, ...typed.api, ...empty.api]).toHaveLength(0);
  });
});

describe('query parameters (query)', () => {
  it('named parameters are forwarded, encoded, in the order given; a list may repeat', async () => {
    const hit = await oneCall('gwquery', () => call('/gwquery/search?q=registered%20nurse&page=2&tag=a&tag=b%26c'));
    expect(hit.path).toBe('/v1/search');
    expect(hit.search).toBe('?q=registered%20nurse&page=2&tag=a&tag=b%26c');
    const list = await oneCall('gwquery', () => call('/gwquery/names?lang=en'));
    expect(list.search).toBe('?lang=en');
  });

  it('anything else is refused with 400 naming the parameter, and reaches nothing', async () => {
    const cases: Array<[string, RegExp]> = [
      ['/gwquery/search?q=x&debug=1', /debug is not a query parameter of this route \(q, page, tag\)/],
      ['/gwquery/search?page=1', /q is required/],
      ['/gwquery/search?q=x&page=1000', /page does not have the expected form/],
      ['/gwquery/search?q=x&page=1&page=2', /page is given more than once/],
      [`/gwquery/search?q=${'x'.repeat(51)}`, /q is longer than 50 characters/],
      ['/gwquery/search?q=a%0Ab', /q contains a control character/],
      ['/gwquery/names?lang=en&Lang=fr', /Lang is not a query parameter/],
      ['/gwmap/items/a1?x=1', /this route takes no query parameters/],
    ];
    for (const [path, detail] of cases) {
      const host = path.startsWith('/gwmap') ? 'gwmap' : 'gwquery';
      const { res, api } = await sent(host, () => call(path));
      expectProblem(res, 400, detail, 'query-not-allowed');
      expect(api, path).toHaveLength(0);
    }
  });

  it('the problem names each parameter in errors, as a form field (injector-form.js marks them)', async () => {
    const { res } = await sent('gwquery', () => call('/gwquery/search?debug=1'));
    expect(expectProblem(res, 400).errors).toEqual([
      { field: 'debug', message: 'is not a query parameter of this route (q, page, tag)' },
      { field: 'q', message: 'is required' },
    ]);
  });

  it('a GET form works: as injector-form.js sends it, and as a plain form (303 with the outcome)', async () => {
    // injector-form.js: the form's fields as the query, Accept: application/json.
    const script = await oneCall('gwquery', () => call(`/gwquery/search?${new URLSearchParams({ q: 'chef & cook', page: '1' })}`, { headers: { Accept: 'application/json' } }));
    expect(script.search).toBe('?q=chef%20%26%20cook&page=1');
    // No JavaScript: the browser navigates with the fields in the query (a navigation carries no
    // Origin, only a Referer) and lands on the redirect page.
    const browser = { Accept: 'text/html,application/xhtml+xml', 'Sec-Fetch-Mode': 'navigate', 'Sec-Fetch-Site': 'same-site', Referer: `${ORIGIN}/search.html` };
    const { res, api } = await sent('gwquery', () => call('/gwquery/search?q=baker', { headers: browser, origin: null }));
    expect(res.status).toBe(303);
    expect(res.headers.get('Location')).toMatch(new RegExp(`^${THANKS_URL.replace(/[.?]/g, '\\$&')}\\?status=ok&code=200&request_id=`));
    expect(api.map((h) => h.search)).toEqual(['?q=baker']);
    const refused = await sent('gwquery', () => call('/gwquery/search?nope=1', { headers: browser, origin: null }));
    const to = new URL(refused.res.headers.get('Location')!);
    expect(to.origin + to.pathname).toBe(new URL(SORRY_URL).origin + new URL(SORRY_URL).pathname);
    expect(Object.fromEntries(to.searchParams)).toMatchObject({ status: 'error', code: '400', reason: 'query-not-allowed' });
    expect(refused.api).toHaveLength(0);
    // A navigation from a page that may not use the route is refused like any other request.
    const elsewhere = await sent('gwquery', () => call('/gwquery/search?q=baker', { headers: { ...browser, Referer: 'https://evil.example.com/x' }, origin: null }));
    expectProblem(elsewhere.res, 403, undefined, 'origin-not-allowed');
    expect(elsewhere.api).toHaveLength(0);
  });
});

describe('conditional requests', () => {
  it('If-None-Match, If-Match, If-Modified-Since and If-Unmodified-Since pass up', async () => {
    const headers = {
      'If-None-Match': '"v1"',
      'If-Match': '"v0"',
      'If-Modified-Since': 'Tue, 01 Dec 2026 10:00:00 GMT',
      'If-Unmodified-Since': 'Wed, 02 Dec 2026 10:00:00 GMT',
    };
    const hit = await oneCall('gwbody', () => call('/gwbody/any', { method: 'PUT', body: '{}', headers }));
    expect(hit.headers).toMatchObject({
      'if-none-match': '"v1"',
      'if-match': '"v0"',
      'if-modified-since': 'Tue, 01 Dec 2026 10:00:00 GMT',
      'if-unmodified-since': 'Wed, 02 Dec 2026 10:00:00 GMT',
    });
  });

  it('ETag round trip: the ETag comes back, and a GET with it gets the API’s 304 without a body', async () => {
    await setApi('gwanswer', { answer: { body: '{"id":"a1","v":1}', etag: '"rev-7"' } });
    try {
      const first = await sent('gwanswer', () => call('/gwanswer/items/a1'));
      expect(first.res.status).toBe(200);
      expect(first.res.text).toBe('{"id":"a1","v":1}');
      const etag = first.res.headers.get('ETag');
      expect(etag).toBe('"rev-7"');
      expect(first.res.headers.get('Access-Control-Expose-Headers')).toContain('ETag');
      const again = await sent('gwanswer', () => call('/gwanswer/items/a1', { headers: { 'If-None-Match': etag! } }));
      expect(again.res.status).toBe(304);
      expect(again.res.text).toBe('');
      expect(again.res.headers.get('ETag')).toBe('"rev-7"');
      expect(again.api.map((h) => h.headers['if-none-match'])).toEqual(['"rev-7"']);
    } finally {
      await setApi('gwanswer', {});
    }
  });

  it('a preflight allows the conditional headers', async () => {
    const res = await call('/gwanswer/items/a1', { method: 'OPTIONS', headers: { 'Access-Control-Request-Method': 'PUT', 'Access-Control-Request-Headers': 'if-match' } });
    expect(res.status).toBe(204);
    expect(res.headers.get('Access-Control-Allow-Headers')).toMatch(/If-Match/);
  });
});
