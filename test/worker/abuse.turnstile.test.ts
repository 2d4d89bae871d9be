/**
 * Issue 10: Cloudflare Turnstile on a route, against the stand-in siteverify (test/standin). A
 * missing, failed, wrong-host, wrong-action or replayed token is a 403 problem+json and nothing
 * reaches the API; an accepted one is forwarded without the token. siteverify out of order: 503.
 */
import { describe, expect, it } from 'vitest';
import { ABUSE_SORRY } from '../fixtures/abuse';
import { apiHits, call, post, siteverifyHits, tokenHits, turnstileToken } from '../helpers';
import { expectProblem, formBody } from './gateway.support';
import { capturedLines } from './log-capture';
import { SECRETS } from '../fixtures/config';

const HOST = 'abusets';
const CODE = '/abusets/code/occp';
const FIELD = 'cf-turnstile-response';
const HEADER = 'CF-Turnstile-Response';

const upstreamCalls = async () => (await apiHits(HOST)).length;
const refusedLines = (why: string) => capturedLines.filter((l) => l.includes('"event":"turnstile_refused"') && l.includes(`"why":"${why}"`));

/** The coding form, with whatever Turnstile field the test gives. */
const codeForm = (fields: Record<string, string>, headers: Record<string, string> = {}) => formBody({ occp_text: 'Baker', ...fields }, { headers });

describe('Turnstile: what must be refused (403 problem+json, no upstream call)', () => {
  it('a missing token: no field, an empty field (the widget not solved yet), no header', async () => {
    const before = await upstreamCalls();
    const verifications = (await siteverifyHits()).length;
    for (const init of [codeForm({}), codeForm({ [FIELD]: '' }), codeForm({ [FIELD]: '' }, { [HEADER]: '' })]) {
      expectProblem(await call(CODE, init), 403, /needs a Turnstile token/, 'turnstile-required');
    }
    expectProblem(await post('/abusets/plain', { a: 1 }), 403, undefined, 'turnstile-required');
    expect(await upstreamCalls()).toBe(before);
    // Nothing to verify: siteverify is not asked.
    expect((await siteverifyHits()).length).toBe(verifications);
    // Counted by the request lines, outcome the problem's slug (no second line per refusal).
    const required = capturedLines.filter((l) => l.includes('"event":"request"') && l.includes('"outcome":"turnstile-required"'));
    expect(required).toHaveLength(4);
    expect(refusedLines('missing')).toEqual([]);
  });

  it('a failed token: siteverify says no (invalid-input-response), or knows nothing of it', async () => {
    const before = await upstreamCalls();
    const refused = await turnstileToken({ success: false, errorCodes: ['invalid-input-response'] });
    const unknown = `0.forged-${crypto.randomUUID()}`;
    for (const token of [refused, unknown]) {
      expectProblem(await call(CODE, codeForm({ [FIELD]: token })), 403, /was not accepted/, 'turnstile-failed');
    }
    expect(await upstreamCalls()).toBe(before);
    expect(await siteverifyHits(refused, unknown)).toHaveLength(2);
    // The refused token's line carries siteverify's code; the forged one's whatever siteverify said of it.
    expect(refusedLines('rejected')).toHaveLength(2);
    expect(refusedLines('rejected')[0]).toContain('"error_codes":["invalid-input-response"]');
  });

  it('a token issued on another site (siteverify’s hostname is not one of the route’s hosts)', async () => {
    const before = await upstreamCalls();
    const token = await turnstileToken({ hostname: 'evil.example.com', action: 'code' });
    expectProblem(await call(CODE, codeForm({ [FIELD]: token })), 403, /issued on another site/, 'turnstile-failed');
    expect(await upstreamCalls()).toBe(before);
    expect(refusedLines('hostname')[0]).toContain('"hostname":"evil.example.com"');
  });

  it('a token issued for another action, or for none, on a route that names its action', async () => {
    const before = await upstreamCalls();
    for (const token of [await turnstileToken({ action: 'login' }), await turnstileToken({})]) {
      expectProblem(await call(CODE, codeForm({ [FIELD]: token })), 403, /issued for another form/, 'turnstile-failed');
    }
    expect(await upstreamCalls()).toBe(before);
  });

  it('a replayed token: refused in this isolate without asking siteverify again; used elsewhere, siteverify says timeout-or-duplicate', async () => {
    const token = await turnstileToken({ action: 'code' });
    const before = await upstreamCalls();
    expect((await call(CODE, codeForm({ [FIELD]: token }))).status).toBe(200);
    expect(await upstreamCalls()).toBe(before + 1);
    // The same token again, as a field and as a header: refused here.
    expectProblem(await call(CODE, codeForm({ [FIELD]: token })), 403, /already used/, 'turnstile-failed');
    expectProblem(await post('/abusets/plain', { a: 1 }, { headers: { [HEADER]: token } }), 403, /already used/, 'turnstile-failed');
    expect(await siteverifyHits(token)).toHaveLength(1);

    // Verified by another isolate (or another Worker) first: siteverify refuses it.
    const spent = await turnstileToken({ action: 'code', spent: true });
    expectProblem(await call(CODE, codeForm({ [FIELD]: spent })), 403, /expired or was already used/, 'turnstile-failed');
    expect(await siteverifyHits(spent)).toHaveLength(1);
    expect(await upstreamCalls()).toBe(before + 1);
    expect(refusedLines('replayed')).toHaveLength(2);
    expect(refusedLines('timeout-or-duplicate')).toHaveLength(1);
  });

  it('a token that cannot be one (longer than 2048 characters, a control character) is refused without asking siteverify', async () => {
    const verifications = (await siteverifyHits()).length;
    expectProblem(await call(CODE, codeForm({ [FIELD]: 'x'.repeat(2049) })), 403, /is not one/, 'turnstile-failed');
    expectProblem(await call(CODE, codeForm({ [FIELD]: 'abc\u0001def' })), 403, /is not one/, 'turnstile-failed');
    expectProblem(await post('/abusets/plain', { a: 1, [FIELD]: 42 }), 403, /must be a string/, 'turnstile-failed');
    expect((await siteverifyHits()).length).toBe(verifications);
  });

  it('a token sent twice (header and field, or the field repeated) is refused, not guessed at', async () => {
    const a = await turnstileToken({ action: 'code' });
    const b = await turnstileToken({ action: 'code' });
    const before = await upstreamCalls();
    expectProblem(await call(CODE, codeForm({ [FIELD]: a }, { [HEADER]: b })), 400, /both as the CF-Turnstile-Response header and the cf-turnstile-response field/, 'turnstile-ambiguous');
    expectProblem(await call(CODE, codeForm({ [FIELD]: a }, { [HEADER]: a })), 400, undefined, 'turnstile-ambiguous');
    const twice = `occp_text=Baker&${FIELD}=${a}&${FIELD}=${b}`;
    expectProblem(await call(CODE, { method: 'POST', body: twice, headers: { 'Content-Type': 'application/x-www-form-urlencoded' } }), 400, /given more than once/, 'turnstile-ambiguous');
    expect(await siteverifyHits(a, b)).toEqual([]);
    expect(await upstreamCalls()).toBe(before);
  });

  it('a plain HTML form without a token gets its 303 to error_redirect with the reason', async () => {
    const res = await call(CODE, codeForm({}, { Accept: 'text/html,*/*;q=0.8' }));
    expect(res.status).toBe(303);
    const to = new URL(res.headers.get('Location')!);
    expect(`${to.origin}${to.pathname}`).toBe(ABUSE_SORRY);
    expect(Object.fromEntries(to.searchParams)).toMatchObject({ status: 'error', code: '403', reason: 'turnstile-required' });
  });
});

describe('Turnstile: an accepted token', () => {
  it('is forwarded: siteverify got the secret, the token, the client’s address and an idempotency key; the API never sees the token', async () => {
    const token = await turnstileToken({ action: 'code' });
    const before = await upstreamCalls();
    const res = await call(CODE, codeForm({ [FIELD]: token, tasks_text: 'Bread' }, { 'CF-Connecting-IP': '203.0.113.9' }));
    expect(res.status, res.text).toBe(200);
    const api = (await apiHits(HOST)).slice(before);
    expect(api).toHaveLength(1);
    expect(api[0]!.body).toBe('{"record":{"occp_text":"Baker","tasks_text":"Bread"},"numberOfSuggestions":5}');
    expect(JSON.stringify(api[0]!.headers)).not.toContain(token);
    expect(await siteverifyHits(token)).toEqual([
      {
        contentType: 'application/x-www-form-urlencoded',
        secret: SECRETS.TEST_TURNSTILE_SECRET,
        response: token,
        remoteip: '203.0.113.9',
        idempotency_key: expect.stringMatching(/^[0-9a-f]{8}-[0-9a-f]{4}-4[0-9a-f]{3}-[89ab][0-9a-f]{3}-[0-9a-f]{12}$/),
        others: [],
      },
    ]);
  });

  it('from a fetch client as the CF-Turnstile-Response header (a preflight allows it on Turnstile routes only); no remoteip without CF-Connecting-IP', async () => {
    const pre = await call('/abusets/plain', { method: 'OPTIONS', headers: { 'Access-Control-Request-Method': 'POST', 'Access-Control-Request-Headers': 'content-type,cf-turnstile-response' } });
    expect(pre.status).toBe(204);
    expect(pre.headers.get('Access-Control-Allow-Headers')?.split(',')).toContain(HEADER);
    const other = await call('/abuserl/a', { method: 'OPTIONS', headers: { 'Access-Control-Request-Method': 'POST' } });
    expect(other.headers.get('Access-Control-Allow-Headers')?.split(',')).not.toContain(HEADER);

    const token = await turnstileToken();
    const before = await upstreamCalls();
    const raw = '{"a":1, "big":12345678901234567890}';
    const res = await call('/abusets/plain', { method: 'POST', body: raw, headers: { [HEADER]: token } });
    expect(res.status, res.text).toBe(200);
    const api = (await apiHits(HOST)).slice(before);
    // A JSON body the Worker took nothing out of goes byte for byte.
    expect(api.map((h) => h.body)).toEqual([raw]);
    expect((await siteverifyHits(token))[0]!.remoteip).toBeNull();
  });

  it('as a field of a JSON body: taken out before the body is forwarded', async () => {
    const token = await turnstileToken();
    const before = await upstreamCalls();
    expect((await post('/abusets/plain', { [FIELD]: token, a: 1, nested: { b: 'c' } })).status).toBe(200);
    expect((await apiHits(HOST)).slice(before).map((h) => h.body)).toEqual(['{"a":1,"nested":{"b":"c"}}']);
  });

  it('on a host listed in turnstile.hostnames (instead of the allowed origins’ hosts), in any case', async () => {
    expect((await post('/abusets/hosts', {}, { headers: { [HEADER]: await turnstileToken({ hostname: 'WWW.example.org' }) } })).status).toBe(200);
    expectProblem(await post('/abusets/hosts', {}, { headers: { [HEADER]: await turnstileToken({ hostname: 'example.org' }) } }), 403, /another site/, 'turnstile-failed');
  });

  it('with an opaque body (CSV): only the header can carry it', async () => {
    const csv = (headers: Record<string, string>) => call('/abusets/csv', { method: 'POST', body: 'a;b\n1;2', headers: { 'Content-Type': 'text/csv', ...headers } });
    expectProblem(await csv({}), 403, undefined, 'turnstile-required');
    const before = await upstreamCalls();
    expect((await csv({ [HEADER]: await turnstileToken() })).status).toBe(200);
    expect((await apiHits(HOST)).slice(before).map((h) => h.body)).toEqual(['a;b\n1;2']);
  });

  it('is checked after the fields: a 422 does not spend the visitor’s token', async () => {
    const token = await turnstileToken({ action: 'code' });
    expectProblem(await call(CODE, formBody({ tasks_text: 'Bread', [FIELD]: token })), 422, /occp_text is required/, 'invalid-submission');
    expect(await siteverifyHits(token)).toEqual([]);
    expect((await call(CODE, codeForm({ [FIELD]: token }))).status).toBe(200);
  });
});

describe('Turnstile: siteverify out of order (fail closed)', () => {
  it('500s, garbage and a wrong secret are a 503 with Retry-After; nothing is forwarded; the token stays usable', async () => {
    const before = await upstreamCalls();
    const tokens = (await tokenHits(HOST)).length;
    const cases = [
      { behaviour: { status: 500, body: 'oops' }, cause: 'status 500' },
      { behaviour: { status: 200, body: '<html>not json</html>' }, cause: 'answer not understood' },
      { behaviour: { status: 200, body: '{"success":"yes"}' }, cause: 'answer not understood' },
      { behaviour: { status: 400, body: '{"success":false}' }, cause: 'status 400' },
    ];
    for (const { behaviour, cause } of cases) {
      const token = await turnstileToken(behaviour);
      const res = await post('/abusets/plain', {}, { headers: { [HEADER]: token } });
      expectProblem(res, 503, /could not be completed/, 'turnstile-unavailable');
      expect(res.headers.get('Retry-After')).toBe('5');
      expect(capturedLines.some((l) => l.includes('"event":"turnstile_unavailable"') && l.includes(`"cause":"${cause}"`)), cause).toBe(true);
    }
    // The operator's mistake, not the visitor's: a secret siteverify does not know.
    const token = await turnstileToken();
    expectProblem(await post('/abusets/wrongsecret', {}, { headers: { [HEADER]: token } }), 503, undefined, 'turnstile-unavailable');
    expect(capturedLines.some((l) => l.includes('"error_codes":["invalid-input-secret"]'))).toBe(true);
    expect(await upstreamCalls()).toBe(before);
    expect((await tokenHits(HOST)).length).toBe(tokens);
    // Not verified, so not spent: the same token passes once the route's secret is right.
    expect((await post('/abusets/plain', {}, { headers: { [HEADER]: token } })).status).toBe(200);
  });

  it('a slow siteverify is given up after turnstile.timeout_ms (400 ms here): 503', async () => {
    const token = await turnstileToken({ delayMs: 3000 });
    const started = Date.now();
    const res = await post('/abusets/plain', {}, { headers: { [HEADER]: token } });
    expectProblem(res, 503, undefined, 'turnstile-unavailable');
    expect(Date.now() - started).toBeLessThan(2500);
    expect(capturedLines.some((l) => l.includes('"cause":"timeout"'))).toBe(true);
  });

  it('a gzip or deflate answer is decoded by the Worker (fetched undecoded, read in bounds); a br one is not understood', async () => {
    for (const encoding of ['gzip', 'deflate']) {
      const token = await turnstileToken({ encoding });
      expect((await post('/abusets/plain', {}, { headers: { [HEADER]: token } })).status, encoding).toBe(200);
    }
    // Not among the codings the Worker asks for (Accept-Encoding: gzip, deflate): fail closed.
    const token = await turnstileToken({ encoding: 'br' });
    expectProblem(await post('/abusets/plain', {}, { headers: { [HEADER]: token } }), 503, undefined, 'turnstile-unavailable');
    expect(capturedLines.some((l) => l.includes('"event":"turnstile_unavailable"') && l.includes('"cause":"answer not understood"'))).toBe(true);
  });

  it('one 5xx is retried with the same idempotency key', async () => {
    const token = await turnstileToken({ failFirst: 1 });
    expect((await post('/abusets/plain', {}, { headers: { [HEADER]: token } })).status).toBe(200);
    const sent = await siteverifyHits(token);
    expect(sent).toHaveLength(2);
    expect(sent[1]!.idempotency_key).toBe(sent[0]!.idempotency_key);
  });
});
