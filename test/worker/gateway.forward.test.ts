/**
 * Gateway: forwarding. Header allowlists both ways, the injected token as the only credential,
 * the API's errors passed through, timeouts and outages as problems, one retry on a rejected
 * token (never a loop), and the async batch flow across a token refresh.
 */
import { env } from 'cloudflare:test';
import { describe, expect, it } from 'vitest';
import { forward } from '../../src/gateway/forward';
import { wiringFor } from '../../src/upstream';
import { apiHits, call, issuedTokens, post, revoke, setApi, setToken, tokenHits } from '../helpers';
import type { Hit } from '../standin/upstreams';
import { expectProblem } from './gateway.support';

/** Counts of token requests and API calls at a host, before and after `send`. */
async function counted<T>(host: string, send: () => Promise<T>): Promise<{ result: T; token: Hit[]; api: Hit[] }> {
  const [t0, a0] = [(await tokenHits(host)).length, (await apiHits(host)).length];
  const result = await send();
  return { result, token: (await tokenHits(host)).slice(t0), api: (await apiHits(host)).slice(a0) };
}

const bearer = (h: Hit) => h.headers.authorization?.replace(/^Bearer /, '');

describe('request headers', () => {
  it('only allowlisted headers reach the API; the injected token is the only credential', async () => {
    const { result: res, api } = await counted('gwheaders', () =>
      post(
        '/gwheaders/items/a1',
        { name: 'n' },
        {
          headers: {
            Authorization: 'Bearer client-supplied',
            Cookie: 'session=client-cookie',
            'X-Forwarded-For': '203.0.113.9',
            'X-Forwarded-Host': 'evil.example.com',
            'X-Forwarded-Proto': 'http',
            'X-Real-IP': '203.0.113.9',
            'X-Api-Key': 'client-key',
            'Proxy-Authorization': 'Basic Y2xpZW50',
            Referer: 'https://forms.example.org/form.html',
            'User-Agent': 'FormBrowser/1.0',
            Accept: 'application/json',
            'Accept-Language': 'en-AU',
            'Content-Language': 'en',
            'Content-Type': 'application/json; charset=utf-8',
          },
        },
      ),
    );
    expect(res.status, res.text).toBe(200);
    expect(api).toHaveLength(1);
    const sent = api[0]!.headers;
    const tokens = await issuedTokens('gwheaders');
    expect(sent.authorization).toBe(`Bearer ${tokens.at(-1)}`);
    // What workerd itself adds on the way out (host, content-length, cf-worker) is not forwarded;
    // the API is asked only for the content codings the Worker decodes.
    expect(Object.keys(sent).sort()).toEqual(['accept', 'accept-encoding', 'accept-language', 'authorization', 'cf-worker', 'content-language', 'content-length', 'content-type', 'host']);
    expect(sent['accept-encoding']).toBe('gzip, deflate');
    expect(sent['content-type']).toBe('application/json; charset=utf-8'); // as the client sent it
    expect(sent.accept).toBe('application/json');
    expect(sent['accept-language']).toBe('en-AU');
    expect(JSON.stringify(sent)).not.toMatch(/client-supplied|client-cookie|203\.0\.113\.9|evil\.example|client-key|Y2xpZW50|FormBrowser|form\.html/);
  });

  it('a query the route does not take is refused, not dropped, and reaches nothing', async () => {
    const { result: res, api } = await counted('gwheaders', () => call('/gwheaders/items/a1?debug=1&url=https://evil.example.com/'));
    const p = expectProblem(res, 400, /debug is not a query parameter of this route.*this route takes no query parameters/, 'query-not-allowed');
    expect(p.errors?.map((e) => e.field)).toEqual(['debug', 'url']);
    expect(api).toHaveLength(0);
  });
});

describe('response headers', () => {
  it('only allowlisted headers come back, always Cache-Control: no-store', async () => {
    await setApi('gwheaders', {
      status: 200,
      body: '{"ok":true}',
      headers: {
        'Set-Cookie': 'upstream-session=1; HttpOnly',
        'Cache-Control': 'public, max-age=3600',
        'WWW-Authenticate': 'Bearer realm="api"',
        Location: 'https://gwheaders.test/internal',
        'Access-Control-Allow-Origin': '*',
        'Access-Control-Allow-Credentials': 'true',
        Server: 'internal-api/1.2',
        'X-Upstream-Internal': 'yes',
        'Content-Language': 'en-AU',
        ETag: '"v1"',
        'Last-Modified': 'Wed, 02 Dec 2026 10:00:00 GMT',
      },
    });
    try {
      const res = await call('/gwheaders/items/a1');
      expect(res.status, res.text).toBe(200);
      expect(res.text).toBe('{"ok":true}');
      expect(res.headers.get('Set-Cookie')).toBeNull();
      expect(res.headers.get('Cache-Control')).toBe('no-store');
      expect(res.headers.get('WWW-Authenticate')).toBeNull();
      expect(res.headers.get('Location')).toBeNull();
      expect(res.headers.get('Server')).toBeNull();
      expect(res.headers.get('X-Upstream-Internal')).toBeNull();
      expect(res.headers.get('Access-Control-Allow-Origin')).toBe('https://forms.example.org');
      expect(res.headers.get('Access-Control-Allow-Credentials')).toBeNull();
      expect(res.headers.get('Content-Type')).toBe('application/json');
      expect(res.headers.get('Content-Language')).toBe('en-AU');
      expect(res.headers.get('ETag')).toBe('"v1"');
      expect(res.headers.get('Last-Modified')).toBe('Wed, 02 Dec 2026 10:00:00 GMT');
    } finally {
      await setApi('gwheaders', {});
    }
  });

  it('the echo stand-in sets Set-Cookie too; it never reaches the browser', async () => {
    const res = await call('/gwheaders/items/a1');
    expect(res.status).toBe(200);
    expect(res.headers.get('Set-Cookie')).toBeNull();
    expect(res.headers.get('X-Upstream-Internal')).toBeNull();
  });
});

describe('token rejected', () => {
  it('401 once → one retry with a new token, success', async () => {
    expect((await call('/gwretry/items/a1')).status).toBe(200); // warm the token
    await setApi('gwretry', { rejectNext: 1 });
    const { result: res, token, api } = await counted('gwretry', () => post('/gwretry/items/a1', { name: 'n' }));
    expect(res.status, res.text).toBe(200);
    expect(res.json()).toMatchObject({ ok: true, body: { name: 'n' } });
    expect(token).toHaveLength(1);
    expect(api).toHaveLength(2);
    expect(bearer(api[0]!)).not.toBe(bearer(api[1]!));
    expect(bearer(api[1]!)).toBe((await issuedTokens('gwretry')).at(-1));
    // Both attempts sent the same buffered body.
    expect(api.map((h) => h.body)).toEqual(['{"name":"n"}', '{"name":"n"}']);
  });

  it('401 twice (token warm) → 502, exactly two API calls and one token request', async () => {
    expect((await call('/gwtwice/items/a1')).status).toBe(200); // warm the token
    await setApi('gwtwice', { rejectNext: 2 });
    const { result: res, token, api } = await counted('gwtwice', () => post('/gwtwice/items/a1', { name: 'n' }));
    expectProblem(res, 502, /answered 401 to a token it had just been given; not retrying again/);
    expect(res.json()).toMatchObject({ title: 'Upstream rejected a fresh token', reason: 'fresh-token-rejected' });
    expect(api).toHaveLength(2);
    expect(token).toHaveLength(1);
  });

  it('after the 502 the next request works again (no loop, no poisoned cache)', async () => {
    const { result: res, token, api } = await counted('gwtwice', () => call('/gwtwice/items/a1'));
    expect(res.status, res.text).toBe(200);
    expect(api).toHaveLength(1);
    expect(token).toHaveLength(0);
  });

  it('401 twice with a cold cache: two API calls, two token requests (the first fetch and the replacement)', async () => {
    await setApi('gwcold', { rejectNext: 2 });
    const { result: res, token, api } = await counted('gwcold', () => call('/gwcold/items/a1'));
    expectProblem(res, 502);
    expect(api).toHaveLength(2);
    expect(token).toHaveLength(2);
  });

  it('always rejected → 502 each time, never a loop; once a fresh token was rejected too, one API call and no token request per request', async () => {
    await setApi('always', { rejectNext: 100 });
    // The first request: the token, its replacement, both rejected.
    const first = await counted('always', () => call('/t/always'));
    expectProblem(first.result, 502);
    expect(first.result.json()).toMatchObject({ title: 'Upstream rejected a fresh token' });
    expect([first.api.length, first.token.length]).toEqual([2, 2]);
    for (let i = 0; i < 3; i++) {
      const { result: res, api, token } = await counted('always', () => call('/t/always'));
      expectProblem(res, 502);
      expect(res.json()).toMatchObject({ title: 'Upstream rejected the token', detail: expect.stringMatching(/not taken to be about the token/) });
      expect(api).toHaveLength(1);
      expect(token).toHaveLength(0);
    }
  });

  it('403 meaning "no permission" is passed through, not retried', async () => {
    expect((await call('/gwperm/items/a1')).status).toBe(200); // warm
    await setApi('gwperm', { status: 403, body: '{"error":"insufficient_scope","detail":"not your batch"}' });
    try {
      const { result: res, token, api } = await counted('gwperm', () => call('/gwperm/items/a1'));
      expect(res.status).toBe(403);
      expect(res.text).toBe('{"error":"insufficient_scope","detail":"not your batch"}');
      expect(res.headers.get('Content-Type')).toBe('application/json');
      expect(api).toHaveLength(1);
      expect(token).toHaveLength(0);
    } finally {
      await setApi('gwperm', {});
    }
  });

  it('403 listed as "token rejected" (ABS: expired token) → invalidate and retry once', async () => {
    expect((await call('/gwabs/code/occp', { method: 'POST', body: '{"occp_text":"nurse"}' })).status).toBe(200); // warm
    await setApi('gwabs', { rejectNext: 1, rejectStatus: 403 });
    const { result: res, token, api } = await counted('gwabs', () => post('/gwabs/code/occp', { occp_text: 'nurse' }));
    expect(res.status, res.text).toBe(200);
    expect(token).toHaveLength(1);
    expect(api).toHaveLength(2);
    expect(api[1]!.body).toBe('{"record":{"occp_text":"nurse"},"numberOfSuggestions":5}');
  });
});

describe('upstream errors and outages', () => {
  it('4xx/5xx with a body pass through as the API answer', async () => {
    for (const [status, body] of [
      [400, '{"detail":"topic unknown"}'],
      [404, '{"detail":"no such item"}'],
      [422, '{"errors":[{"loc":["record"],"msg":"field required"}]}'],
      [429, '{"detail":"slow down"}'],
      [500, '{"detail":"internal"}'],
      [503, '{"detail":"maintenance"}'],
    ] as const) {
      await setApi('gwerrors', { status, body, headers: { 'Retry-After': '7' } });
      const { result: res, api } = await counted('gwerrors', () => call('/gwerrors/items/a1'));
      expect(res.status).toBe(status);
      expect(res.text).toBe(body);
      expect(res.headers.get('Content-Type')).toBe('application/json');
      expect(res.headers.get('Retry-After')).toBe('7');
      expect(res.headers.get('Cache-Control')).toBe('no-store');
      expect(api).toHaveLength(1);
    }
    await setApi('gwerrors', {});
  });

  it('upstream timeout → 504 problem', async () => {
    expect((await call('/gwslow/items/a1')).status).toBe(200); // token first, so only the API call is slow
    await setApi('gwslow', { delayMs: 1500 });
    try {
      const started = Date.now();
      const res = await call('/gwslow/items/a1');
      expectProblem(res, 504, /did not answer within 200 ms/, 'upstream-timeout');
      expect(Date.now() - started).toBeLessThan(1400);
    } finally {
      await setApi('gwslow', {});
    }
  });

  it('upstream unreachable (the fetch itself fails) → 502 problem', async () => {
    // The stand-in cannot drop a connection (a throw there becomes a 500 answer), so this drives
    // forward() directly with an egress whose fetch rejects the way workerd's does.
    const resolved = (await wiringFor(env)).upstreams.get('gwdown')!;
    const upstream = { ...resolved, send: () => Promise.reject(new TypeError('Network connection lost.')) };
    const forwarded = await forward({ upstream, scope: '' }, { method: 'GET', url: new URL('https://gwdown.test/v1/items/a1'), headers: new Headers() });
    expect(forwarded.ok).toBe(false);
    expect(forwarded.ok ? undefined : forwarded.problem.problem).toMatchObject({ status: 502, reason: 'upstream-unreachable', title: 'Upstream unreachable', detail: 'the API could not be reached' });
    expect(forwarded.trace).toEqual({ calls: 0, token: 'store' });
  });

  it('no token to be had → the Worker’s own problem with a request id, no API call', async () => {
    await setToken('gwnotoken', { status: 401, body: '{"error":"invalid_client","error_description":"bad secret p@ss:w/rd+%"}' });
    const { result: res, api } = await counted('gwnotoken', () => call('/gwnotoken/items/a1'));
    const p = expectProblem(res, 502, undefined, 'credentials-refused');
    expect(p.title).toBe('Upstream refused the credentials');
    expect(api).toHaveLength(0);
  });
});

describe('async batch: submit, token refreshed, poll', () => {
  const operation = { name: 'operations/op-42', done: false };
  const finished = { name: 'operations/op-42', done: true, response: { results: [{ code: '254412' }] } };

  it('poll works after the token was revoked between submit and poll', async () => {
    await setApi('gwbatch', { status: 200, body: JSON.stringify(operation) });
    const submit = await counted('gwbatch', () => post('/gwbatch/batches', { records: [{ occp_text: 'nurse' }] }));
    expect(submit.result.status, submit.result.text).toBe(200);
    expect(submit.result.json()).toEqual(operation);
    expect(submit.api.map((h) => [h.method, h.path, h.body])).toEqual([['POST', '/v1/topics/occp/batch-code', '{"records":[{"occp_text":"nurse"}]}']]);

    await revoke('gwbatch'); // the token the submit used is dead now
    await setApi('gwbatch', { status: 200, body: JSON.stringify(finished) });
    const poll = await counted('gwbatch', () => call('/gwbatch/batches/op-42'));
    expect(poll.result.status, poll.result.text).toBe(200);
    expect(poll.result.json()).toEqual(finished);
    expect(poll.api.map((h) => [h.method, h.path])).toEqual([
      ['GET', '/v1/topics/occp/batch-code/operations/op-42'],
      ['GET', '/v1/topics/occp/batch-code/operations/op-42'],
    ]);
    expect(poll.token).toHaveLength(1);
    expect(bearer(poll.api[0]!)).toBe(bearer(submit.api[0]!));
    expect(bearer(poll.api[1]!)).not.toBe(bearer(submit.api[0]!));
  });

  it('poll works after the token expired between submit and poll (a new one first, no rejection)', async () => {
    // A 2 s token is used until 1.9 s after its request was sent (minus the 1/20 skew), so the
    // poll 2 s later takes a new one before calling the API.
    await setToken('gwbatchexp', { expiresIn: 2 });
    await setApi('gwbatchexp', { status: 200, body: JSON.stringify(operation) });
    const submit = await counted('gwbatchexp', () => post('/gwbatchexp/batches', { records: [] }));
    expect(submit.result.status, submit.result.text).toBe(200);
    expect(submit.token).toHaveLength(1);

    await new Promise((r) => setTimeout(r, 2000));
    await revoke('gwbatchexp'); // and the API would refuse the old one
    await setApi('gwbatchexp', { status: 200, body: JSON.stringify(finished) });
    const poll = await counted('gwbatchexp', () => call('/gwbatchexp/batches/op-42'));
    expect(poll.result.status, poll.result.text).toBe(200);
    expect(poll.result.json()).toEqual(finished);
    expect(poll.token).toHaveLength(1);
    expect(poll.api).toHaveLength(1);
    expect(bearer(poll.api[0]!)).not.toBe(bearer(submit.api[0]!));
  });
});
