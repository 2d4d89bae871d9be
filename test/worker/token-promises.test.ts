/**
 * The token engine keeps its promises under hostile and unlucky conditions (issue 7). Each
 * `describe` is one observation of the issue (1–11) or one of its "must show" points, counted at
 * the stand-in token endpoint. Every one of 1–11 failed on the engine before this change.
 */
import { env, runInDurableObject } from 'cloudflare:test';
import { describe, expect, it } from 'vitest';
import { base64 } from '../../src/bytes';
import { formEncode } from '../../src/token/grant';
import { fingerprint, legacyStoreName, storeName } from '../../src/token/credential-set';
import { parseConfig } from '../../src/config/load';
import { SECRETS } from '../fixtures/config';
import { acceptToken, apiHits, hits, post, setApi, setToken, tokenHits } from '../helpers';
import { TokenStore } from '../../src/token/store';
import { logged } from './log-capture';
import { failStoreCalls, fakeClock, MINUTE, realTimeClock, scopeStatus, SECOND, store } from './token-helpers';

const bearer = (h: { headers: Record<string, string> }) => h.headers.authorization ?? '';

/** A fake clock an hour past the previous one: cases that share a store never meet its back-off. */
let hours = 0;
const nextHourClock = () => fakeClock(Date.UTC(2026, 10, 22, 12) + ++hours * 3_600_000);

describe('1. one visitor cannot black out a public form', () => {
  it('ABS recipe: a 403 that is not about the token keeps it: 100 further requests all 200 on the original token, 0 extra token requests', async () => {
    fakeClock();
    await setApi('abs', { denyPaths: { '/api/forbidden': 403 } });
    expect((await post('/t/abs', {})).status).toBe(200);
    const visitor = await post('/t/abs/forbidden', {});
    expect(visitor.status).toBe(502);
    expect(visitor.json()).toMatchObject({ title: 'Upstream rejected the token', detail: expect.stringContaining('token budget (1 per 3600 s) is spent') });
    // The visitor again and again: the kept answer is repeated by the isolate, no Durable Object call each.
    const proto = TokenStore.prototype;
    const original = proto.reportRejected;
    let reports = 0;
    proto.reportRejected = function (this: TokenStore, ref) {
      reports++;
      return original.call(this, ref);
    };
    try {
      for (let i = 0; i < 20; i++) expect((await post('/t/abs/forbidden', { i })).status).toBe(502);
    } finally {
      proto.reportRejected = original;
    }
    expect(reports).toBe(0);
    const answers = await Promise.all(Array.from({ length: 100 }, (_, i) => post('/t/abs', { i })));
    expect(answers.map((a) => a.status)).toEqual(Array(100).fill(200));
    expect(await tokenHits('abs')).toHaveLength(1);
    const api = (await apiHits('abs')).filter((h) => h.path === '/api/echo');
    expect((await apiHits('abs')).filter((h) => h.path === '/api/forbidden')).toHaveLength(21);
    expect(api).toHaveLength(101);
    expect(new Set(api.map(bearer)).size).toBe(1);
  });

  it('default config: a path that always answers 401 costs one replacement, then none; the budget stays for everyone', async () => {
    fakeClock();
    await setApi('deny401', { denyPaths: { '/api/nope': 401 } });
    expect((await post('/t/deny401', {})).status).toBe(200);
    for (let i = 0; i < 50; i++) expect((await post('/t/deny401/nope', { i })).status).toBe(502);
    // The token, and one replacement that was rejected too: from then on rejections are distrusted.
    expect(await tokenHits('deny401')).toHaveLength(2);
    expect((await post('/t/deny401', {})).status).toBe(200);
    const status = await scopeStatus('deny401');
    expect(status.budget).toMatchObject({ max: 10, inWindow: 2 });
    expect(status.distrust).toMatchObject({ level: 0 });
    expect(logged()).toContain('"event":"token_rejected_by_api","upstream":"deny401","scope":"","action":"distrust"');
  });
});

describe('2. an API that rejects every token', () => {
  it('1,000 requests over 10 minutes: 2 token requests (the token and one replacement), every caller a clear 502', async () => {
    const clock = fakeClock();
    await setApi('rejectall', { rejectNext: 1_000_000 });
    const statuses = new Map<number, number>();
    const titles = new Set<string>();
    for (let batch = 0; batch < 100; batch++) {
      const answers = await Promise.all(Array.from({ length: 10 }, (_, i) => post('/t/rejectall', { i })));
      for (const a of answers) {
        statuses.set(a.status, (statuses.get(a.status) ?? 0) + 1);
        titles.add((a.json() as { title: string }).title);
      }
      clock.advance(6 * SECOND);
    }
    expect([...statuses]).toEqual([[502, 1000]]);
    expect([...titles].sort()).toEqual(['Upstream rejected a fresh token', 'Upstream rejected the token']);
    expect(await tokenHits('rejectall')).toHaveLength(2);
  });
});

describe('3. token requests never follow redirects', () => {
  it('a 307 from the token endpoint: the host it names receives nothing; a clear 502 naming the status, never the Location', async () => {
    fakeClock();
    await setToken('redirect307', { status: 307, headers: { Location: 'https://collector307.test/steal' } });
    const res = await post('/t/redirect307', {});
    expect(res.status).toBe(502);
    expect(res.json()).toMatchObject({ title: 'Upstream token endpoint misconfigured', detail: expect.stringContaining('answered 307') });
    expect(res.text).not.toContain('collector');
    expect(await hits('collector307')).toHaveLength(0);
    expect(await tokenHits('redirect307')).toHaveLength(1);
    expect(logged()).not.toContain('collector');
  });

  it('a 302 to a host that hands out tokens: no token is taken from it, nothing reaches the API', async () => {
    fakeClock();
    await setToken('redirect302', { status: 302, headers: { Location: 'https://collector302.test/oauth2/token' } });
    const res = await post('/t/redirect302', {});
    expect(res.status).toBe(502);
    expect(await hits('collector302')).toHaveLength(0);
    expect(await apiHits('redirect302')).toHaveLength(0);
  });
});

describe('4. budget and cool-downs belong to the credential set, not the scope set', () => {
  it('budget 1 per hour across three scope sets: exactly 1 token request in the hour', async () => {
    const clock = fakeClock();
    const t0 = clock.now();
    for (let minute = 0; minute < 60; minute += 5) {
      clock.set(t0 + minute * MINUTE);
      const [a, b, c] = [await post('/t/scoped3', {}), await post('/t/scoped3/b', {}), await post('/t/scoped3/c', {})];
      expect(a.status).toBe(200);
      for (const other of [b, c]) {
        expect(other.status).toBe(503);
        expect(other.json()).toMatchObject({ title: 'Upstream token budget exhausted' });
      }
    }
    expect(await tokenHits('scoped3')).toHaveLength(1);
  });

  it('a 429 seen for one scope set stops the token requests of the others', async () => {
    fakeClock();
    await setToken('throttle3', { status: 429, body: '{"error":"slow_down"}', headers: { 'Retry-After': '120' } });
    expect((await post('/t/throttle3', {})).status).toBe(503);
    await setToken('throttle3', {});
    const other = await post('/t/throttle3/b', {});
    expect(other.status).toBe(503);
    expect(other.headers.get('Retry-After')).toBe('120');
    expect(other.json()).toMatchObject({ title: 'Upstream token endpoint is throttling' });
    expect(await tokenHits('throttle3')).toHaveLength(1);
  });
});

describe('5. a changed token URL, API origin or client id never reuses the old token', () => {
  const base = parseConfig({
    UPSTREAMS: { a: { api_origin: 'https://api.example', token_url: 'https://auth.example/token', client_id: 'c1', client_secret_from: 'S' } },
  }).upstreams.a!;

  it('the credential set fingerprint changes with what identifies it, not with the secret or how answers are read', async () => {
    const fp = (u: typeof base, clientId = 'c1', username?: string) => fingerprint(u, clientId, username);
    const same = await fp(base);
    expect(await fp({ ...base })).toBe(same);
    for (const changed of [
      await fp({ ...base, token_url: 'https://auth2.example/token' }),
      await fp({ ...base, api_origin: 'https://api2.example' }),
      await fp(base, 'c2'),
      await fp(base, 'c1', 'someone'),
      await fp({ ...base, client_auth: 'client_secret_post' }),
      await fp({ ...base, extra_params: { audience: 'x' } }),
      await fp({ ...base, egress: { mode: 'binding', binding: 'EGRESS' } }),
    ]) {
      expect(changed).not.toBe(same);
    }
    for (const unchanged of [
      await fp({ ...base, client_secret_from: 'OTHER_SECRET' }),
      await fp({ ...base, token_field: 'accessToken', default_lifetime_seconds: 60, token_budget: { max_requests: 1, window_seconds: 60 } }),
    ]) {
      expect(unchanged).toBe(same);
    }
  });

  it('a store asked for another credential set than its own config describes hands out nothing', async () => {
    fakeClock();
    const { key, stub } = await store('basic');
    expect((await stub.getToken(key)).kind).toBe('token');
    const forged = await stub.getToken({ ...key, fp: '0'.repeat(32) });
    expect(forged).toMatchObject({ kind: 'unavailable', reason: 'config_changing' });
    // The object a changed config would use is another object, with no token of the old one.
    const other = env.TOKEN_STORE.get(env.TOKEN_STORE.idFromName(storeName('basic', 'f'.repeat(32))));
    expect(await other.getToken({ ...key, fp: 'f'.repeat(32) })).toMatchObject({ kind: 'unavailable', reason: 'config_changing' });
  });
});

describe('6. a sliding token is refreshed only when its last use is close to a lifetime ago', () => {
  /**
   * Uses at the given fake times; returns, per use, the token the API received. Checks that no use
   * came at or after the token's last use (or issue) + 60 s: never sent expired.
   */
  async function useAt(upstream: string, times: number[], clock: ReturnType<typeof fakeClock>, t0: number): Promise<string[]> {
    const before = (await apiHits(upstream)).length;
    for (const t of times) {
      clock.set(t0 + t * SECOND);
      expect((await post(`/t/${upstream}`, { t })).status).toBe(200);
    }
    const sent = (await apiHits(upstream)).slice(before).map(bearer);
    const last = new Map<string, number>();
    sent.forEach((token, i) => {
      const at = times[i]!;
      const prev = last.get(token);
      if (prev !== undefined) expect(at - prev, `use at ${at} s of a token last used at ${prev} s`).toBeLessThan(60);
      last.set(token, at);
    });
    return sent;
  }

  it('a 60 s sliding token used every 30 s for 10 minutes: 1 token request', async () => {
    const clock = fakeClock();
    await setToken('slide30', { expiresIn: 60 });
    await useAt('slide30', Array.from({ length: 21 }, (_, i) => i * 30), clock, clock.now());
    expect(await tokenHits('slide30')).toHaveLength(1);
  });

  it('used every 45 s for 10 minutes: 1 token request; left unused past its lifetime: refreshed before use, never sent expired', async () => {
    const clock = fakeClock();
    const t0 = clock.now();
    await setToken('slide45', { expiresIn: 60 });
    const busy = await useAt('slide45', Array.from({ length: 14 }, (_, i) => i * 45), clock, t0);
    expect(await tokenHits('slide45')).toHaveLength(1);
    // Last use at 585 s. Unused until 585 + 58 s (inside the 3 s skew): a new token first.
    const idle = await useAt('slide45', [643], clock, t0);
    expect(await tokenHits('slide45')).toHaveLength(2);
    expect(idle[0]).not.toBe(busy[0]);
    // Unused for longer than its lifetime: again a new one before the call.
    const later = await useAt('slide45', [704], clock, t0);
    expect(await tokenHits('slide45')).toHaveLength(3);
    expect(later[0]).not.toBe(idle[0]);
  });
});

describe('7. expiry is anchored when the request left, and kept a skew away', () => {
  it('a JWT from a 1.5 s endpoint expires at its own exp, not 1.5 s later; it is used until 10 s before', async () => {
    const clock = realTimeClock();
    const jwtNow = Math.floor(clock.now() / 1000);
    await setToken('anchorjwt', { expiresIn: null, jwtExpSeconds: 600, jwtNow, delayMs: 1500 });
    expect((await post('/t/anchorjwt', {})).status).toBe(200);
    const { token } = await scopeStatus('anchorjwt');
    expect(token?.expiresAt).toBe((jwtNow + 600) * 1000);
    expect(token?.usableUntil).toBe((jwtNow + 600) * 1000 - 10 * SECOND);
  });

  it('expires_in counts from the moment the request left, not from when the slow answer arrived', async () => {
    const clock = realTimeClock();
    const before = clock.now();
    await setToken('anchor', { expiresIn: 600, delayMs: 1500 });
    expect((await post('/t/anchor', {})).status).toBe(200);
    const answered = clock.now();
    const { token } = await scopeStatus('anchor');
    expect(token!.obtainedAt).toBeGreaterThanOrEqual(before);
    expect(token!.expiresAt).toBe(token!.obtainedAt! + 600 * SECOND);
    expect(answered - token!.obtainedAt!).toBeGreaterThanOrEqual(1400); // the round trip did not push expiry out
  });
});

describe('8. the budget window has slack', () => {
  it('a slow token request counts from when its answer came back, plus 2 s, not from when it left', async () => {
    const clock = realTimeClock();
    await setToken('slack', { expiresIn: 30, delayMs: 1500 });
    const t0 = clock.now();
    expect((await post('/t/slack', {})).status).toBe(200);
    const answered = clock.now();
    expect(answered - t0).toBeGreaterThanOrEqual(1400);
    // 62.5 s after it left: past "sent + window + slack", before "answered + window + slack". The
    // caller is held (the wait is shorter than the hold) and the next token request leaves only at
    // "answered + window + slack".
    clock.advance(t0 + 62_500 - clock.now());
    const early = await post('/t/slack', {});
    expect(early.status).toBe(200);
    expect(clock.now()).toBeGreaterThanOrEqual(answered + 62_000);
    expect(await tokenHits('slack')).toHaveLength(2);
  });
});

describe('9. a Durable Object hiccup does not beat a valid token in hand', () => {
  it('past refreshAt, before its usable end, a failing store: the held token is used, and the failure logged without it', async () => {
    const clock = fakeClock();
    const t0 = clock.now();
    await setToken('hiccup', { expiresIn: 600 });
    expect((await post('/t/hiccup', {})).status).toBe(200);
    const failing = failStoreCalls('hiccup');
    try {
      clock.set(t0 + 575 * SECOND); // refresh due at 560 s (600 − 10 skew − 30 margin), usable until 590 s
      const res = await post('/t/hiccup', {});
      expect(res.status).toBe(200);
      const api = await apiHits('hiccup');
      expect(bearer(api[1]!)).toBe(bearer(api[0]!));
      expect(logged()).toContain('"event":"token_store_unreachable","upstream":"hiccup"');
      clock.set(t0 + 591 * SECOND); // no longer usable: now the failure shows
      const late = await post('/t/hiccup', {});
      expect(late.status).toBe(503);
      expect(late.json()).toMatchObject({ title: 'Token store unavailable' });
      expect(await apiHits('hiccup')).toHaveLength(2);
    } finally {
      failing.restore();
    }
  });
});

describe('10. token answers are read strictly', () => {
  it('a 200 with an "error" member is a refusal (502), not a transient failure retried at once', async () => {
    fakeClock();
    await setToken('strict', { body: '{"error":"invalid_client","access_token":"looks-like-a-token-anyway"}' });
    const res = await post('/t/strict', {});
    expect(res.status).toBe(502);
    expect(res.json()).toMatchObject({ title: 'Upstream refused the credentials', detail: expect.stringContaining('(invalid_client)') });
    expect(await tokenHits('strict')).toHaveLength(1);
    expect(await apiHits('strict')).toHaveLength(0);
  });

  it.each([['"1h"'], ['0'], ['-5'], ['"ten"'], ['true'], ['{}']])('expires_in %s: an invalid answer naming the field, not the default lifetime', async (value) => {
    nextHourClock();
    await setToken('strictexp', { body: `{"access_token":"tok_strictexp_fine_token","expires_in":${value}}` });
    const res = await post('/t/strictexp', {});
    expect(res.status).toBe(502);
    expect(res.json()).toMatchObject({ title: 'Upstream token answer invalid', detail: '"expires_in" must be a positive number of seconds' });
    expect(await apiHits('strictexp')).toHaveLength(0);
  });

  it('a token shorter than 16 characters (too short to cut out of an echo) is refused where it is issued; 16 is taken', async () => {
    nextHourClock();
    await setToken('strict', { body: '{"access_token":"fifteen-chars-x","expires_in":600}' });
    const short = await post('/t/strict', {});
    expect(short.status).toBe(502);
    expect(short.json()).toMatchObject({ title: 'Upstream token answer invalid', detail: '"access_token" must be at least 16 characters' });
    expect(await apiHits('strict')).toHaveLength(0);
    nextHourClock();
    await acceptToken('strict', 'sixteen-chars-xx');
    await setToken('strict', { body: '{"access_token":"sixteen-chars-xx","expires_in":600}' });
    expect((await post('/t/strict', {})).status).toBe(200);
  });

  it('an answer over 1 MiB is refused without being read whole', async () => {
    fakeClock();
    await setToken('strictbig', { padBytes: 2 * 1024 * 1024 });
    const res = await post('/t/strictbig', {});
    expect(res.status).toBe(502);
    expect(res.json()).toMatchObject({ title: 'Upstream token answer invalid', detail: expect.stringContaining('over 1048576 bytes') });
  });

  it('404 at token_url is a configuration error, not "refused the credentials"', async () => {
    fakeClock();
    await setToken('strict404', { status: 404, body: '<html>Not Found</html>', contentType: 'text/html' });
    const res = await post('/t/strict404', {});
    expect(res.status).toBe(502);
    expect(res.json()).toMatchObject({ title: 'Upstream token endpoint misconfigured', detail: 'token endpoint answered 404: check token_url and token_method' });
  });

  it('which statuses mean "throttled" is configurable: with token_throttled_statuses = [429], a 403 is a refusal', async () => {
    fakeClock();
    await setToken('strict403', { status: 403, body: '{"error":"unauthorized_client"}' });
    const res = await post('/t/strict403', {});
    expect(res.status).toBe(502);
    expect(res.json()).toMatchObject({ title: 'Upstream refused the credentials' });
    // The default (429 and 403, as ABS) throttles on 403: see token-failures.test.ts.
  });
});

describe('11. error text never carries a credential, in any encoding', () => {
  const basic = base64(`client1:${formEncode(SECRETS.TEST_CLIENT_SECRET)}`);
  const forms = (v: string) => [v, encodeURIComponent(v), formEncode(v), JSON.stringify(v).slice(1, -1), base64(v)];
  const sensitive = [basic, base64(`client1:${SECRETS.TEST_CLIENT_SECRET}`), ...forms(SECRETS.TEST_CLIENT_SECRET), ...forms(SECRETS.TEST_POST_SECRET)];

  it.each([
    ['leakb64', { status: 400, body: JSON.stringify({ error: basic }) }],
    ['leakb64', { status: 429, body: JSON.stringify({ error: basic, error_description: SECRETS.TEST_CLIENT_SECRET }) }],
    ['leakb64', { body: 'not json', contentType: `text/${basic}` }],
    ['leakurl', { status: 401, body: JSON.stringify({ error: `client_secret=${formEncode(SECRETS.TEST_POST_SECRET)}` }) }],
    ['leakurl', { status: 400, body: JSON.stringify({ error: 'invalid_request', error_description: `bad client_secret=${encodeURIComponent(SECRETS.TEST_POST_SECRET)}` }) }],
  ] as const)('%s answering %j: not in the answer, not in the logs', async (host, behaviour) => {
    nextHourClock();
    await setToken(host, behaviour);
    const res = await post(`/t/${host}`, {});
    expect([502, 503]).toContain(res.status);
    const seen = `${res.text}\n${[...res.headers].join('\n')}\n${logged()}`;
    for (const s of sensitive) expect(seen).not.toContain(s);
  });
});

describe('5 s tokens under steady load with the default config', () => {
  it('30 s at 4 requests a second: at most 8 token requests and no 503', async () => {
    const clock = fakeClock();
    await setToken('short5', { expiresIn: 5 });
    const statuses: number[] = [];
    for (let i = 0; i < 120; i++) {
      statuses.push((await post('/t/short5', { i })).status);
      clock.advance(250);
    }
    expect(statuses.filter((s) => s !== 200)).toEqual([]);
    const requests = (await tokenHits('short5')).length;
    console.info(JSON.stringify({ scenario: '5 s tokens, 30 s of steady load', token_requests: requests }));
    expect(requests).toBeLessThanOrEqual(8);
    expect(requests).toBeGreaterThanOrEqual(6); // one per 4.5 s of use: it does refresh
  });
});

describe('upgrade from the first version (one object per upstream and scope set)', () => {
  it('a token and budget history it wrote are taken over with 0 token requests; its history still counts', async () => {
    const clock = fakeClock();
    const now = clock.now();
    const token = 'tok_legacy_written_by_the_first_version';
    await acceptToken('legacy', token);
    const legacyState = (scopeSent: number) => ({ sent: [scopeSent], coolDownUntil: 0 });
    await runInDurableObject(env.TOKEN_STORE.get(env.TOKEN_STORE.idFromName(legacyStoreName('legacy', ''))), (_, state) => {
      state.storage.kv.put('state', { current: { token, issuedAt: now - 10 * MINUTE, lifetimeMs: 3_600_000, lastUsedAt: now - MINUTE }, ...legacyState(now - 10 * MINUTE - 200) });
    });
    await runInDurableObject(env.TOKEN_STORE.get(env.TOKEN_STORE.idFromName(legacyStoreName('legacy', 'b'))), (_, state) => {
      state.storage.kv.put('state', legacyState(now - 20 * MINUTE));
    });

    const res = await post('/t/legacy', {});
    expect(res.status).toBe(200);
    expect(bearer((await apiHits('legacy'))[0]!)).toBe(`Bearer ${token}`);
    expect(await tokenHits('legacy')).toHaveLength(0);
    // Scope set "b" had no token; its last token request (20 min ago) still counts: budget 1 per hour.
    const b = await post('/t/legacy/b', {});
    expect(b.status).toBe(503);
    expect(b.json()).toMatchObject({ title: 'Upstream token budget exhausted' });
    expect(await tokenHits('legacy')).toHaveLength(0);
    const status = await scopeStatus('legacy');
    expect(status.budget.inWindow).toBe(2);
    // Anchored a request deadline (10 s) earlier than the first version recorded: never later than real.
    expect(status.token?.expiresAt).toBe(now - 10 * MINUTE + 3_600_000 - 10 * SECOND);

    // Adopted once: the old objects are empty now, so no other credential set can take it again.
    const left = await runInDurableObject(env.TOKEN_STORE.get(env.TOKEN_STORE.idFromName(legacyStoreName('legacy', ''))), (_, state) => state.storage.kv.get('state'));
    expect(left).toBeUndefined();
  });
});
