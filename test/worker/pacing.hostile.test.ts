/**
 * Pacing and coalescing (issue 15) against a hostile visitor, a hostile or broken API, and bad
 * luck, in workerd. Each test has its own upstream and stand-in host (test/fixtures/pacing-hostile.ts);
 * the coding stand-in's `mangle` makes the API misbehave (test/standin/coder.ts). Every answer is
 * checked for leaks by `call()`, every log line by setup.ts.
 */
import { SELF, env, runInDurableObject } from 'cloudflare:test';
import { describe, expect, it } from 'vitest';
import type { BatchItem } from '../../src/pacing/pacer-api';
import { storeName } from '../../src/token/credential-set';
import { wiringFor } from '../../src/upstream';
import { ORIGIN } from '../fixtures/config';
import { codesFor, type CoderCall, type CoderLimits } from '../standin/coder';
import { apiHits, call, issuedTokens, post, setApi, type Answer } from '../helpers';
import { capturedLines } from './log-capture';
import { fakeClock } from './token-helpers';

const CONTROL = 'http://control.standin';
const LIMITS: CoderLimits = { perSecond: 20, maxRecords: 300, maxChars: 100 };

async function coder(host: string, limits: Partial<CoderLimits> = {}): Promise<void> {
  await fetch(`${CONTROL}/coder?host=${host}.test`, { method: 'DELETE' });
  await setApi(host, { coder: { ...LIMITS, ...limits } });
}

async function coderCalls(host: string): Promise<CoderCall[]> {
  return (await fetch(`${CONTROL}/coder?host=${host}.test`)).json();
}

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

/** Submit each text as its own record through `host`'s raw route, all at once (one batch: the route gathers for 300 ms). */
const submitAll = (host: string, texts: string[]) => Promise.all(texts.map((t) => post(`/${host}/raw/occp`, { record: { occp_text: t }, numberOfSuggestions: 3 })));

const resultOf = (a: Answer) => (a.json() as { result: unknown }).result;

/** The Pacer of `upstream`'s credential set. */
async function pacerOf(upstream: string) {
  const u = (await wiringFor(env)).upstreams.get(upstream)!;
  return { stub: env.PACER.get(env.PACER.idFromName(storeName(upstream, u.fingerprint))), ref: u.pacerRef };
}

/** Reset the Pacer of `upstream` (its in-memory queue is lost; its storage is kept). */
async function resetPacer(upstream: string): Promise<void> {
  await runInDurableObject((await pacerOf(upstream)).stub, (_instance, state) => {
    state.abort('reset for the test');
  }).catch(() => undefined);
}

/** The record ids and texts of the batch bodies the API received since `from`. */
async function batchesSent(host: string, from: number): Promise<Array<Array<{ recordId: string; occp_text: string }>>> {
  return (await apiHits(host)).slice(from).map((h) => (JSON.parse(h.body) as { records: Array<{ recordId: string; occp_text: string }> }).records);
}

describe('a hostile or broken API', () => {
  it('fails a batch as a whole (500) quoting the request: each submitter gets the status, never the other records', async () => {
    await coder('hecho', { mangle: 'error-echo' });
    const [a, b] = await submitAll('hecho', ['nurse of patient Alice Example', 'baker of patient Bob Example']);
    expect((await coderCalls('hecho')).map((c) => [c.status, c.records])).toEqual([[500, 2]]);
    for (const x of [a, b]) expect(x!.status, x!.text).toBe(500);
    expect(a!.text).not.toContain('Bob');
    expect(b!.text).not.toContain('Alice');
    // Alone in its batch, a submitter gets the API's own answer, as a single call would.
    const [c] = await submitAll('hecho', ['cook of patient Carol Example']);
    expect(c!.status).toBe(500);
    expect(c!.json()).toMatchObject({ message: 'Internal server error', request: expect.stringContaining('Carol') });
  });

  it('answers 429 every time: the call is sent twice, and each submitter gets the 429 with the API’s Retry-After', async () => {
    await setApi('hmangle', { answer: { status: 429, headers: { 'Retry-After': '37' }, body: '{"message":"Limit Exceeded"}' } });
    const before = (await apiHits('hmangle')).length;
    const [a, b] = await submitAll('hmangle', ['first', 'second']);
    expect((await apiHits('hmangle')).length - before).toBe(2);
    for (const x of [a, b]) {
      expect(x!.status, x!.text).toBe(429);
      expect(x!.headers.get('Retry-After')).toBe('37');
    }
  });

  it('leaves a record out, lists one twice, adds one nobody sent, or answers no list: each submitter its own codes or 502', async () => {
    await coder('hmangle', { mangle: 'drop-first' });
    const dropped = await submitAll('hmangle', ['dropped a', 'dropped b', 'dropped c']);
    // Which record was first in the batch is the Pacer's order: exactly one is missing its result.
    expect(dropped.filter((x) => x.status === 502).map((x) => (x.json() as { reason: string }).reason)).toEqual(['batch-answer-incomplete']);
    for (const [i, x] of dropped.entries()) if (x.status === 200) expect(resultOf(x)).toEqual(codesFor(`dropped ${'abc'[i]}`));

    await coder('hmangle', { mangle: 'duplicate' });
    for (const [i, x] of (await submitAll('hmangle', ['twice a', 'twice b'])).entries()) {
      expect(x.status, x.text).toBe(200);
      expect(resultOf(x)).toEqual(codesFor(`twice ${'ab'[i]}`));
    }

    await coder('hmangle', { mangle: 'other-ids' });
    for (const [i, x] of (await submitAll('hmangle', ['stranger a', 'stranger b'])).entries()) {
      expect(x.status, x.text).toBe(200);
      expect(resultOf(x)).toEqual(codesFor(`stranger ${'ab'[i]}`));
      expect(x.text).not.toContain('not-sent-by-anyone');
    }

    await coder('hmangle', { mangle: 'not-array' });
    for (const x of await submitAll('hmangle', ['listless a', 'listless b'])) {
      expect(x.status, x.text).toBe(502);
      expect(x.json()).toMatchObject({ reason: 'batch-answer-incomplete' });
    }
  });

  it('echoes the token inside one record’s result: it is cut out, the codes come through', async () => {
    await coder('hmangle', { mangle: 'echo-token' });
    const answers = await submitAll('hmangle', ['echo a', 'echo b']);
    const tokens = await issuedTokens('hmangle');
    expect(tokens.length).toBeGreaterThan(0);
    for (const [i, x] of answers.entries()) {
      expect(x.status, x.text).toBe(200);
      expect(resultOf(x)).toEqual(codesFor(`echo ${'ab'[i]}`));
      for (const t of tokens) expect(x.text).not.toContain(t);
    }
    // `call()` checks every spelling; the one result that carried it says it was cut.
    expect(answers.filter((x) => x.text.includes('called with [redacted]'))).toHaveLength(1);
  });
});

describe('a 400 that is not about any record (every half refused too)', () => {
  it('records of submitters that went away are taken out of the halves still to be sent: no call is spent on them', async () => {
    // 8 records, 2 calls a second: halving down to single records would take 15 calls (about 9 s).
    await coder('hsplit', { mangle: 'reject-all' });
    const leaving = new AbortController();
    const headers = { Origin: ORIGIN, 'Content-Type': 'application/json' };
    const gone = Array.from({ length: 8 }, (_, i) =>
      SELF.fetch('https://injector.example/hsplit/raw/occp', { method: 'POST', headers, body: JSON.stringify({ record: { occp_text: `leaves ${i}` } }), signal: leaving.signal }).catch(() => undefined),
    );
    await sleep(1_000); // the batch of 8 was refused, its first half is being sent
    leaving.abort();
    await Promise.all(gone);
    const atAbort = (await coderCalls('hsplit')).length;
    await sleep(3_000);
    const calls = await coderCalls('hsplit');
    // At most the call already on its way when they left.
    expect(calls.length - atAbort, JSON.stringify(calls)).toBeLessThanOrEqual(1);
    expect(calls.length).toBeLessThan(15);
    // Nothing left waiting, and no emptied half sent as a batch of nothing.
    const { stub, ref } = await pacerOf('hsplit');
    expect(await stub.status(ref)).toMatchObject({ waitingNow: 0 });
    expect(capturedLines.filter((l) => /pacing_(batch|pump)_failed/.test(l))).toEqual([]);
  });

  it('the Pacer reset while the halves are being sent: each submitter gets a clear 503 at once, and no half is sent after', async () => {
    await coder('hreset', { mangle: 'reject-all' });
    const started = Date.now();
    const pending = submitAll('hreset', Array.from({ length: 8 }, (_, i) => `reset ${i}`));
    await sleep(1_000);
    await resetPacer('hreset');
    const answers = await pending;
    for (const a of answers) {
      expect(a.status, a.text).toBe(503);
      expect(a.json()).toMatchObject({ reason: 'pacer-unavailable' });
      expect(a.headers.get('Retry-After')).toBe('1');
    }
    expect(Date.now() - started).toBeLessThan(5_000);
    const atReset = (await coderCalls('hreset')).length;
    await sleep(1_500);
    expect((await coderCalls('hreset')).length - atReset).toBeLessThanOrEqual(1);
  });
});

describe('a 400 about no record, from every part', () => {
  it('the halving stops after about 2 log2(n) refused calls: each submitter gets 422, the quota is not spent on 2n−1 calls', async () => {
    await coder('hcap', { mangle: 'reject-all' });
    const texts = Array.from({ length: 32 }, (_, i) => `capped ${i}`);
    const answers = await submitAll('hcap', texts);
    for (const a of answers) {
      expect(a.status, a.text).toBe(422);
      expect(a.json()).toMatchObject({ reason: 'record-rejected' });
    }
    // 32 records: at most 2·5 + 2 = 12 refused calls in all (2n−1 = 63 otherwise).
    expect((await coderCalls('hcap')).length).toBeLessThanOrEqual(12);
  });
});

describe('content negotiation headers', () => {
  it('visitors with different Accept-Language share one call (the batch call carries none)', async () => {
    await coder('hlang');
    const langs = ['en-AU', 'fr-FR', 'de-DE', 'ja-JP', 'en-US'];
    const answers = await Promise.all(langs.map((l, i) => post('/hlang/raw/occp', { record: { occp_text: `lang ${i}` } }, { headers: { 'Accept-Language': l } })));
    for (const [i, a] of answers.entries()) {
      expect(a.status, a.text).toBe(200);
      expect(resultOf(a)).toEqual(codesFor(`lang ${i}`));
    }
    const calls = await coderCalls('hlang');
    expect(calls).toHaveLength(1);
    expect((await apiHits('hlang')).at(-1)!.headers['accept-language']).toBeUndefined();
  });

  it('a route that lists Accept-Language: batches agree on it, and the call carries it', async () => {
    await coder('hlang');
    const before = (await apiHits('hlang')).length;
    await sleep(1200); // the last test's slot has passed
    const answers = await Promise.all(['en-AU', 'en-AU', 'fr-FR'].map((l, i) => post('/hlang/lang/occp', { record: { occp_text: `agree ${i}` } }, { headers: { 'Accept-Language': l } })));
    for (const a of answers) expect([200, 503]).toContain(a.status);
    const sent = (await apiHits('hlang')).slice(before);
    const byLang = sent.map((h) => [h.headers['accept-language'], (JSON.parse(h.body) as { records: unknown[] }).records.length]);
    expect(byLang).toContainEqual(['en-AU', 2]);
  });
});

describe('a batch over the API’s payload limit', () => {
  it('is split (413) until each part fits: a visitor’s bulky records never fail the others', async () => {
    // The API takes bodies up to 16 KiB; two visitors send records of 10 KB each (within the
    // route's 16 KiB and the character limit, which counts occp_text and tasks_text only).
    await coder('hbig', { maxBodyBytes: 16 * 1024 });
    const bulky = (i: number) => post('/hbig/raw/occp', { record: { occp_text: `bulky ${i}`, note: 'n'.repeat(10_000) }, numberOfSuggestions: 3 });
    const plain = (i: number) => post('/hbig/raw/occp', { record: { occp_text: `plain ${i}` }, numberOfSuggestions: 3 });
    const answers = await Promise.all([bulky(0), plain(0), plain(1), bulky(1), plain(2)]);
    const texts = ['bulky 0', 'plain 0', 'plain 1', 'bulky 1', 'plain 2'];
    for (const [i, a] of answers.entries()) {
      expect(a.status, `${texts[i]}: ${a.text}`).toBe(200);
      expect(resultOf(a)).toEqual(codesFor(texts[i]!));
    }
    // A record within the route's limit but too large for the API even alone: refused, to its submitter only.
    const alone = await post('/hbig/raw/occp', { record: { occp_text: 'huge', note: 'n'.repeat(8_200), more: 'm'.repeat(8_100) }, numberOfSuggestions: 3 });
    expect(alone.status, alone.text).toBe(422);
    expect(alone.json()).toMatchObject({ reason: 'record-rejected' });
  });
});

describe('a hostile visitor', () => {
  it('a record that is not an object, or only on the prototype, is refused before it joins a batch (422), nothing sent', async () => {
    await coder('hmangle');
    const before = (await apiHits('hmangle')).length;
    const bodies = ['{"record":["occp_text"]}', '{"record":"nurse"}', '{"record":null}', '[{"occp_text":"nurse"}]', '{"occp_text":"nurse"}', '{"__proto__":{"record":{"occp_text":"from the prototype"}}}'];
    for (const body of bodies) {
      const a = await call('/hmangle/raw/occp', { method: 'POST', body });
      expect(a.status, `${body}: ${a.text}`).toBe(422);
      expect(a.json()).toMatchObject({ reason: 'invalid-submission' });
    }
    expect((await apiHits('hmangle')).length).toBe(before);
  });

  it('prototype-named members, its own record id, the record given twice: the API gets one plain record under the Worker’s id', async () => {
    await coder('hmangle');
    const before = (await apiHits('hmangle')).length;
    // Written by hand: a JS object literal would turn `__proto__` into a prototype.
    const body = '{"record":{"occp_text":"first"},"__proto__":{"numberOfSuggestions":99},"constructor":{"prototype":{"x":1}},"record":{"occp_text":"proto","recordId":"mine","__proto__":{"recordId":"theirs"},"constructor":"c"}}';
    const a = await call('/hmangle/raw/occp', { method: 'POST', body });
    expect(a.status, a.text).toBe(200);
    expect(resultOf(a)).toEqual(codesFor('proto'));
    const [sent] = await batchesSent('hmangle', before);
    expect(sent).toHaveLength(1);
    expect(sent![0]!.occp_text).toBe('proto');
    expect(sent![0]!.recordId).toMatch(/^[0-9a-f-]{36}$/);
    expect(({} as Record<string, unknown>).x).toBeUndefined();
  });

  it('a plain HTML form post to a coalesced route: a 303 to the result page carrying its own record’s codes', async () => {
    await coder('hmangle');
    const forms = ['nurse', 'baker'].map((t) =>
      call('/hmangle/form/occp', { method: 'POST', body: `occp_text=${t}`, headers: { 'Content-Type': 'application/x-www-form-urlencoded', Accept: 'text/html' } }),
    );
    for (const [i, a] of (await Promise.all(forms)).entries()) {
      expect(a.status, a.text).toBe(303);
      const to = new URL(a.headers.get('Location')!);
      expect(to.origin + to.pathname).toBe('https://forms.example.org/thanks');
      expect(to.searchParams.get('code')).toBe('200');
      const result = JSON.parse(atob(to.searchParams.get('result')!.replace(/-/g, '+').replace(/_/g, '/'))) as { result: unknown };
      expect(result.result).toEqual(codesFor(['nurse', 'baker'][i]!));
    }
  });
});

describe('a slow API', () => {
  it('slower than the API timeout, or an answer that never ends: each submitter gets 504 soon after the timeout, not at its limit', async () => {
    await setApi('hstall', { delayMs: 3_000, answer: { body: '[]' } });
    let started = Date.now();
    for (const a of await submitAll('hstall', ['slow a', 'slow b'])) {
      expect(a.status, a.text).toBe(504);
      expect(a.json()).toMatchObject({ reason: 'upstream-timeout' });
    }
    expect(Date.now() - started).toBeLessThan(2_900);

    // Past the first 64 KiB the answer stalls: the batch's answer is read whole, so the timeout ends it.
    const big = `[${Array.from({ length: 2000 }, (_, i) => `{"recordId":"r${i}","padding":"${'p'.repeat(40)}"}`).join(',')}]`;
    await setApi('hstall', { answer: { body: big, stall: { afterBytes: 70_000, ms: 6_000 } } });
    started = Date.now();
    for (const a of await submitAll('hstall', ['stalled a', 'stalled b'])) {
      expect(a.status, a.text).toBe(504);
      expect(a.json()).toMatchObject({ reason: 'upstream-timeout' });
    }
    expect(Date.now() - started).toBeLessThan(4_000);
  });
});

describe('bad luck', () => {
  it('the daily quota across the API’s day boundary and a Pacer restart: spent stays spent until midnight UTC, then calls leave again', async () => {
    const clock = fakeClock(Date.UTC(2026, 10, 22, 23, 59, 50));
    await coder('hday');
    const one = (t: string) => post('/hday/raw/occp', { record: { occp_text: t } });
    expect((await one('first')).status).toBe(200);
    expect((await one('second')).status).toBe(200);
    const spent = await one('third');
    expect(spent.status, spent.text).toBe(429);
    expect(spent.json()).toMatchObject({ reason: 'quota-exhausted', resets_at: '2026-11-23T00:00:00.000Z' });
    expect(Number(spent.headers.get('Retry-After'))).toBeLessThanOrEqual(10);
    // A restart forgets the queue, not the day's count.
    await resetPacer('hday');
    expect((await one('after the restart')).status).toBe(429);
    clock.set(Date.UTC(2026, 10, 23, 0, 0, 1));
    const next = await one('next day');
    expect(next.status, next.text).toBe(200);
    expect(resultOf(next)).toEqual(codesFor('next day'));
    expect((await coderCalls('hday')).length).toBe(3);
  });

  it('a caller from a Worker with another config (a deploy under way) is told 503 config-changing, not queued', async () => {
    const { stub, ref } = await pacerOf('hmangle');
    const item: BatchItem = { id: crypto.randomUUID(), route: 'hmangle_raw', target: '/v1/topics/occp/code', search: '', shared: '{}', record: { occp_text: 'x' }, scope: '', headers: [] };
    expect(await stub.submit({ ...ref, fp: 'an older config' }, item)).toMatchObject({ kind: 'unavailable', slug: 'config-changing' });
    expect(await stub.submit(ref, { ...item, route: 'a route since removed' })).toMatchObject({ kind: 'unavailable', slug: 'config-changing' });
    // A route of another upstream handed to this one's Pacer.
    expect(await stub.submit(ref, { ...item, route: 'hday_raw' })).toMatchObject({ kind: 'unavailable', slug: 'config-changing' });
    expect(await stub.status(ref)).toMatchObject({ waitingNow: 0 });
  });
});
