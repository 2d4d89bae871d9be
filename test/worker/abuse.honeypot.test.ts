/**
 * Issue 10: the honeypot field. Filled, the request is answered as a success would be (a 303 to
 * `redirect` for a plain form, 200 `{}` for a fetch client), nothing reaches the API, no token is
 * fetched, and one `honeypot` log line counts it without the field's value. Empty, the field is
 * taken out before mapping and forwarding.
 */
import { describe, expect, it } from 'vitest';
import { ABUSE_THANKS } from '../fixtures/abuse';
import { apiHits, call, post, siteverifyHits, tokenHits, turnstileToken } from '../helpers';
import { formBody, multipartBody } from './gateway.support';
import { capturedLines } from './log-capture';

const HOST = 'abusehp';
const CODE = '/abusehp/code/occp';
const BROWSER = { Accept: 'text/html,application/xhtml+xml,*/*;q=0.8' };
const BAIT = 'https://spam.example/buy-now';

const upstreamCalls = async () => (await apiHits(HOST)).length;
/** Request lines whose outcome is the honeypot: that is how a caught bot is counted. */
const honeypotLines = () => capturedLines.filter((l) => l.includes('"event":"request"') && l.includes('"outcome":"honeypot"'));

describe('honeypot filled: answered as accepted, nothing sent upstream', () => {
  it('a plain HTML form gets the same 303 a success gets; no API call, no token request; one log line without the value', async () => {
    const res = await call(CODE, formBody({ occp_text: 'Baker', website: BAIT }, { headers: BROWSER }));
    expect(res.status).toBe(303);
    const to = new URL(res.headers.get('Location')!);
    expect(`${to.origin}${to.pathname}`).toBe(ABUSE_THANKS);
    expect(Object.fromEntries(to.searchParams)).toEqual({ status: 'ok', code: '200', request_id: res.headers.get('X-Request-Id') });
    // This test runs first in the file: the route never asked for a token.
    expect(await apiHits(HOST)).toEqual([]);
    expect(await tokenHits(HOST)).toEqual([]);
    const lines = honeypotLines();
    expect(lines).toHaveLength(1);
    expect(JSON.parse(lines[0]!)).toMatchObject({ event: 'request', request_id: res.headers.get('X-Request-Id'), route: 'abusehp_code', status: 303, outcome: 'honeypot' });
    expect(JSON.parse(lines[0]!)).not.toHaveProperty('upstream_status');
    expect(capturedLines.join('\n')).not.toContain('spam.example');

    // A real success lands on the same page with the same query keys.
    const real = await call(CODE, formBody({ occp_text: 'Baker', website: '' }, { headers: BROWSER }));
    const realTo = new URL(real.headers.get('Location')!);
    expect([...realTo.searchParams.keys()]).toEqual([...to.searchParams.keys()]);
    expect(await upstreamCalls()).toBe(1);
  });

  it('a fetch client gets 200 {} (JSON), whether the field came in a form, a multipart form or JSON', async () => {
    const before = await upstreamCalls();
    const fd = new FormData();
    fd.set('occp_text', 'Baker');
    fd.set('website', 'x');
    for (const res of [
      await call(CODE, formBody({ occp_text: 'Baker', website: BAIT })),
      await call(CODE, await multipartBody(fd)),
      await post(CODE, { occp_text: 'Baker', website: BAIT }),
      await post('/abusehp/plain', { website: 1 }),
      await post('/abusehp/plain', { website: { any: 'thing' } }),
    ]) {
      expect(res.status).toBe(200);
      expect(res.headers.get('Content-Type')).toBe('application/json');
      expect(res.headers.get('Cache-Control')).toBe('no-store');
      expect(res.text).toBe('{}');
    }
    expect(await upstreamCalls()).toBe(before);
    expect(honeypotLines()).toHaveLength(5);
  });

  it('is looked at before anything else in the body: a trap with bad fields is still answered as accepted', async () => {
    const before = await upstreamCalls();
    for (const init of [
      formBody({ website: BAIT }), // occp_text missing
      formBody({ occp_text: 'x'.repeat(500), website: BAIT }), // too long
      { method: 'POST', body: `occp_text=a&occp_text=b&website=${BAIT}`, headers: { 'Content-Type': 'application/x-www-form-urlencoded' } },
    ]) {
      const res = await call(CODE, init);
      expect([res.status, res.text]).toEqual([200, '{}']);
    }
    expect(await upstreamCalls()).toBe(before);
  });

  it('comes before Turnstile and after the rate limit: no siteverify call for a trap', async () => {
    const token = await turnstileToken();
    const res = await call('/abuseall/code/occp', formBody({ occp_text: 'Baker', website: BAIT, 'cf-turnstile-response': token }, { headers: { 'CF-Connecting-IP': '192.0.2.77' } }));
    expect([res.status, res.text]).toEqual([200, '{}']);
    expect(await siteverifyHits(token)).toEqual([]);
    expect(await apiHits('abuseall')).toEqual([]);
    // Traps count against the client's rate limit like anything else (3 a minute on this route).
    for (let i = 0; i < 2; i++) expect((await call('/abuseall/code/occp', formBody({ website: BAIT }, { headers: { 'CF-Connecting-IP': '192.0.2.77' } }))).status).toBe(200);
    const limited = await call('/abuseall/code/occp', formBody({ website: BAIT }, { headers: { 'CF-Connecting-IP': '192.0.2.77' } }));
    expect(limited.status).toBe(429);
  });
});

describe('honeypot empty (or absent): taken out, the rest forwarded', () => {
  it('is never mapped, required or forwarded', async () => {
    const before = await upstreamCalls();
    expect((await call(CODE, formBody({ occp_text: 'Baker', website: '' }))).status).toBe(200);
    expect((await call(CODE, formBody({ occp_text: 'Baker', website: '   ' }))).status).toBe(200);
    expect((await call('/abusehp/plain', formBody({ a: '1', website: '' }))).status).toBe(200);
    expect((await call('/abusehp/plain', { method: 'POST', body: '{"a":1,"website":"","big":12345678901234567890}' })).status).toBe(200);
    expect((await post('/abusehp/plain', { a: 1, website: null })).status).toBe(200);
    expect((await post('/abusehp/plain', { a: 1, website: false })).status).toBe(200);
    // A client that knows nothing of the field (a script of the site's own) is not a trap either.
    expect((await post('/abusehp/plain', { a: 1 })).status).toBe(200);
    expect((await apiHits(HOST)).slice(before).map((h) => h.body)).toEqual([
      '{"record":{"occp_text":"Baker"},"numberOfSuggestions":5}',
      '{"record":{"occp_text":"Baker"},"numberOfSuggestions":5}',
      '{"a":"1"}',
      // Written anew without the field (so a number past 2^53 is rounded, as JSON.parse reads it).
      '{"a":1,"big":12345678901234567000}',
      '{"a":1}',
      '{"a":1}',
      '{"a":1}',
    ]);
    expect(honeypotLines()).toEqual([]);
  });
});
