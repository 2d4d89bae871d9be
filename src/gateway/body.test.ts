/**
 * body.ts unit by unit: each test writes its route config and its request inline and asserts one
 * behaviour of `readBody` (what the API would get, or the problem the client gets).
 */
import { describe, expect, it } from 'vitest';
import { routeSchema } from '../config/schema';
import { ProblemError } from '../problem';
import { readBody, type Submission } from './body';

const route = (extra: Record<string, unknown> = {}) => routeSchema.parse({ path: '/r', upstream: 'u', target: '/t', ...extra });
const request = (init: RequestInit & { type?: string } = {}) => {
  const headers = new Headers(init.headers);
  if (init.type !== undefined) headers.set('Content-Type', init.type);
  return new Request('https://w.example/r', { method: 'POST', ...init, headers });
};
const text = (s: Submission) => (s.body === undefined ? undefined : new TextDecoder().decode(s.body.bytes));

/** The problem `readBody` throws, as {reason, status, detail}. */
async function refusal(p: Promise<unknown>) {
  const e = await p.then(
    () => undefined,
    (err: unknown) => err,
  );
  expect(e).toBeInstanceOf(ProblemError);
  const { reason, status, detail } = (e as ProblemError).problem;
  return { reason, status, detail };
}

describe('JSON', () => {
  it('any JSON value passes byte for byte with the client’s type', async () => {
    const body = await readBody(request({ body: ' [1, {"a": 2}] ', type: 'application/json-patch+json' }), route());
    expect(body.body?.contentType).toBe('application/json-patch+json');
    expect(text(body)).toBe(' [1, {"a": 2}] ');
  });

  it('with a form mapping the JSON object is mapped', async () => {
    const r = route({ form: { template: { n: 5 }, fields: { q: 'query.text' } } });
    expect(text(await readBody(request({ body: '{"q":"x","other":1}', type: 'application/json' }), r))).toBe('{"n":5,"query":{"text":"x"}}');
  });

  it('a route with required fields wants an object', async () => {
    expect(await refusal(readBody(request({ body: '[]', type: 'application/json' }), route({ required_fields: ['a'] })))).toMatchObject({
      reason: 'json-object-required',
      status: 400,
    });
  });

  it('malformed JSON says where, without quoting it', async () => {
    const p = await refusal(readBody(request({ body: '{"a": SECRET', type: 'application/json' }), route()));
    expect(p).toMatchObject({ reason: 'malformed-json', status: 400 });
    expect(p.detail).not.toContain('SECRET');
  });

  it('a too-long string anywhere, even the whole body, is a 422 naming its path', async () => {
    const r = route({ max_field_length: 3 });
    expect((await refusal(readBody(request({ body: '{"a":[{"b":"long"}]}', type: 'application/json' }), r))).detail).toBe('a.0.b is longer than 3 characters');
    expect((await refusal(readBody(request({ body: '"long"', type: 'application/json' }), r))).detail).toBe('(body) is longer than 3 characters');
  });
});

describe('no body', () => {
  it('a POST without body and type: refused where a body is required, undefined (bodiless) where optional', async () => {
    expect(await refusal(readBody(request(), route()))).toMatchObject({ reason: 'body-required', status: 415 });
    expect((await readBody(request(), route({ body: 'optional' }))).body).toBeUndefined();
  });

  it('DELETE and GET without body are bodiless whatever the route says', async () => {
    expect((await readBody(request({ method: 'DELETE' }), route())).body).toBeUndefined();
    expect((await readBody(request({ method: 'GET' }), route())).body).toBeUndefined();
  });

  it('a DELETE body is read like any other; on a route with body = "none" it is refused', async () => {
    expect(text(await readBody(request({ method: 'DELETE', body: '{"why":"dup"}', type: 'application/json' }), route()))).toBe('{"why":"dup"}');
    expect(await refusal(readBody(request({ method: 'DELETE', body: '{}', type: 'application/json' }), route({ body: 'none' })))).toMatchObject({
      reason: 'body-not-allowed',
      status: 400,
    });
  });

  it('an empty body with a Content-Type is a body (empty JSON is malformed)', async () => {
    expect(await refusal(readBody(request({ body: '', type: 'application/json' }), route({ body: 'optional' })))).toMatchObject({ reason: 'malformed-json' });
  });
});

describe('forms and lists', () => {
  const r = route({ form: { template: {}, fields: { tag: { path: 'tags', list: true }, n: { path: 'ns', type: 'number', list: true }, one: 'one' } } });
  const form = (body: string) => request({ body, type: 'application/x-www-form-urlencoded' });

  it('a list field collects every value, in order, typed', async () => {
    expect(text(await readBody(form('tag=a&n=1.5&tag=b&one=x&n=2'), r))).toBe('{"tags":["a","b"],"ns":[1.5,2],"one":"x"}');
  });

  it('a field that is not a list may not repeat', async () => {
    expect((await refusal(readBody(form('one=a&one=b'), r))).detail).toBe('one is given more than once (only list fields may repeat)');
  });

  it('without a mapping a form is a flat JSON object, and no field may repeat', async () => {
    expect(text(await readBody(form('a=1&b=2'), route()))).toBe('{"a":"1","b":"2"}');
    expect(await refusal(readBody(form('a=1&a=2'), route()))).toMatchObject({ reason: 'invalid-submission', status: 422 });
  });

  it('a multipart file is refused', async () => {
    const fd = new FormData();
    fd.set('one', new File(['x'], 'x.txt'));
    const res = new Response(fd);
    const p = await refusal(readBody(request({ body: await res.arrayBuffer(), type: res.headers.get('Content-Type')! }), r));
    expect(p.detail).toBe('one is a file; this route takes text fields only');
  });
});

describe('opaque types', () => {
  it('a listed type passes untouched with its full Content-Type; others are 415 naming what is taken', async () => {
    const r = route({ opaque_types: ['text/csv'] });
    const body = await readBody(request({ body: 'a;b\r\n1;2', type: 'Text/CSV; charset=iso-8859-1' }), r);
    expect([body.body?.contentType, text(body)]).toEqual(['Text/CSV; charset=iso-8859-1', 'a;b\r\n1;2']);
    const p = await refusal(readBody(request({ body: 'x', type: 'text/plain' }), r));
    expect(p).toMatchObject({ reason: 'unsupported-content-type', status: 415 });
    expect(p.detail).toBe('send application/json, application/x-www-form-urlencoded, multipart/form-data, text/csv (got text/plain)');
  });
});

describe('the media type, read strictly (issue 13)', () => {
  it('a list or a malformed Content-Type is a 415, never read as its first type', async () => {
    const r = route({ opaque_types: ['text/csv'] });
    for (const type of ['text/csv;, application/json', 'text/csv, application/json', 'application/json, text/csv', 'text/csv; charset=a; charset=b', 'application/json extra', 'text/csv;charset']) {
      expect(await refusal(readBody(request({ body: '{"a":1}', type }), r)), type).toMatchObject({
        reason: 'unsupported-content-type',
        status: 415,
        detail: 'send application/json, application/x-www-form-urlencoded, multipart/form-data, text/csv (got a list or a malformed type: send exactly one)',
      });
    }
    expect(text(await readBody(request({ body: 'a,b', type: 'text/csv; header=present' }), r))).toBe('a,b');
  });
});

describe('the Worker’s own fields (honeypot, Turnstile)', () => {
  const form = (body: string) => request({ body, type: 'application/x-www-form-urlencoded' });
  const guarded = route({ honeypot: 'website', turnstile: { secret_from: 'TS' }, required_fields: ['a'] });

  it('are taken out before the fields are checked and forwarded', async () => {
    const s = await readBody(form('a=1&website=&cf-turnstile-response=tok'), guarded);
    expect([text(s), s.turnstileField, s.trapped]).toEqual(['{"a":"1"}', 'tok', false]);
    const j = await readBody(request({ body: '{"a":1,"website":"","cf-turnstile-response":"tok"}', type: 'application/json' }), guarded);
    expect([text(j), j.turnstileField]).toEqual(['{"a":1}', 'tok']);
  });

  it('a filled honeypot ends the reading: nothing to send, whatever else is wrong', async () => {
    for (const body of ['website=x', 'a=1&a=2&website=x', 'a=1&website=&website=x']) {
      expect(await readBody(form(body), guarded)).toEqual({ body: undefined, trapped: true });
    }
  });

  it('without turnstile on the route, cf-turnstile-response is a field like any other', async () => {
    expect(text(await readBody(form('cf-turnstile-response=tok'), route()))).toBe('{"cf-turnstile-response":"tok"}');
  });
});
