/**
 * answer.ts unit by unit: API answers written inline (or, for the gzip bomb, fetched from the
 * stand-in as they come off the wire) and passed back with a meter, to assert what the browser
 * gets and that the Worker's memory stays bounded whatever the answer's size.
 */
import { describe, expect, it } from 'vitest';
import { routeSchema } from '../config/schema';
import { ProblemError } from '../problem';
import { BUFFERED_ANSWER_BYTES, DEFAULT_ANSWER, passBack, readAnswerAtMost, type AnswerMeter, type AnswerOptions } from './answer';
import { queryPolicy } from './request';

const URL_CALLED = new URL('https://api.example/v1/items');
const TOKEN = 'unit-test-token-Q9w8e7r6t5';
const newMeter = (): AnswerMeter => ({ decodedBytes: 0, maxChunkBytes: 0, maxHeldBytes: 0 });

async function compressed(format: 'gzip' | 'deflate' | 'deflate-raw', text: string): Promise<Uint8Array> {
  return new Uint8Array(await new Response(new Blob([text]).stream().pipeThrough(new CompressionStream(format))).arrayBuffer());
}

async function refusal(p: Promise<unknown>) {
  const e = await p.then(
    () => undefined,
    (err: unknown) => err,
  );
  expect(e).toBeInstanceOf(ProblemError);
  return (e as ProblemError).problem;
}

/** Read a body to its end, counting bytes, without keeping them. */
async function drain(body: ReadableStream<Uint8Array>): Promise<number> {
  const reader = body.getReader();
  let n = 0;
  for (let r = await reader.read(); !r.done; r = await reader.read()) n += r.value.length;
  return n;
}

describe('bounded memory', () => {
  it('a 200 MB gzip bomb streams through whole, the Worker never holding more than 64 KiB plus one decoded piece', async () => {
    // The bomb as the API sends it (about 200 KB of gzip), straight from the stand-in.
    const token = ((await (await fetch('https://gwbomb.test/oauth2/token', { method: 'POST' })).json()) as { access_token: string }).access_token;
    await fetch('http://control.standin/api?host=gwbomb.test', { method: 'POST', body: JSON.stringify({ answer: { bombBytes: 200 * 1024 * 1024 } }) });
    try {
      const res = await fetch('https://gwbomb.test/v1/items/bomb', { headers: { Authorization: `Bearer ${token}` }, encodeResponseBody: 'manual' });
      expect(res.headers.get('Content-Encoding')).toBe('gzip');
      const meter = newMeter();
      const out = await passBack(res, token, URL_CALLED, { ...DEFAULT_ANSWER, maxAnswerBytes: 256 * 1024 * 1024, meter });
      expect(await drain(out.body!)).toBe(200 * 1024 * 1024);
      expect(meter.decodedBytes).toBe(200 * 1024 * 1024);
      // What docs/configuration.md promises: at most 64 KiB buffered, plus the piece being decoded.
      expect(meter.maxChunkBytes).toBeLessThanOrEqual(64 * 1024);
      expect(meter.maxHeldBytes).toBeLessThanOrEqual(64 * 1024 + meter.maxChunkBytes);
      console.info(JSON.stringify({ gzip_bomb: meter }));
    } finally {
      await fetch('http://control.standin/api?host=gwbomb.test', { method: 'POST', body: '{}' });
    }
  });

  it('an answer up to 64 KiB is read whole; past that the browser gets it while the rest is still coming', async () => {
    const whole = newMeter();
    const out = await passBack(new Response('a'.repeat(64 * 1024)), TOKEN, URL_CALLED, { ...DEFAULT_ANSWER, meter: whole });
    expect(whole.maxHeldBytes).toBe(64 * 1024);
    expect(await drain(out.body!)).toBe(64 * 1024);
    // 64 KiB + 1 and then nothing more for now: passBack must answer without waiting for the end.
    let release!: () => void;
    const more = new Promise<void>((r) => (release = r));
    const body = new ReadableStream<Uint8Array>({
      start(c) {
        c.enqueue(new Uint8Array(64 * 1024 + 1).fill(0x62));
      },
      async pull(c) {
        await more;
        c.close();
      },
    });
    const streamed = await passBack(new Response(body), TOKEN, URL_CALLED, DEFAULT_ANSWER);
    expect(streamed.status).toBe(200);
    release();
    expect(await drain(streamed.body!)).toBe(64 * 1024 + 1);
  });

  it('a Content-Length over the route limit is refused before anything is read', async () => {
    const p = await refusal(passBack(new Response('x'.repeat(2000), { headers: { 'Content-Length': '2000' } }), TOKEN, URL_CALLED, { ...DEFAULT_ANSWER, maxAnswerBytes: 1000 }));
    expect(p).toMatchObject({ reason: 'upstream-answer-too-large', status: 502 });
  });

  it('readAnswerAtMost stops reading as soon as the limit is passed', async () => {
    let pulled = 0;
    const endless = new ReadableStream<Uint8Array>({
      pull(c) {
        pulled++;
        c.enqueue(new Uint8Array(1000));
      },
    });
    expect(await readAnswerAtMost(endless, 4096)).toBeUndefined();
    expect(pulled).toBeLessThanOrEqual(6); // 5 pieces pass the limit (and the stream may pull one ahead)
    expect(await readAnswerAtMost(new Response('small').body, 4096)).toEqual(new TextEncoder().encode('small'));
  });
});

describe('content codings', () => {
  it('bare deflate labelled "deflate" (no zlib header) is decoded too', async () => {
    const body = await compressed('deflate-raw', '{"a":1}');
    const out = await passBack(new Response(body, { headers: { 'Content-Encoding': 'deflate' } }), TOKEN, URL_CALLED, DEFAULT_ANSWER);
    expect(await out.text()).toBe('{"a":1}');
    expect(out.headers.get('Content-Encoding')).toBeNull();
  });

  it('a zlib answer whose first piece is one byte (a trickling API) is still told from bare deflate', async () => {
    const z = await compressed('deflate', '{"a":1}');
    const body = new ReadableStream<Uint8Array>({
      start(c) {
        c.enqueue(z.slice(0, 1));
        c.enqueue(z.slice(1));
        c.close();
      },
    });
    const res = await passBack(new Response(body, { headers: { 'Content-Encoding': 'deflate' } }), TOKEN, URL_CALLED, DEFAULT_ANSWER);
    expect(await res.text()).toBe('{"a":1}');
  });

  it('a body that is not in its stated coding is a 502, not garbage', async () => {
    const p = await refusal(passBack(new Response('plain text', { headers: { 'Content-Encoding': 'gzip' } }), TOKEN, URL_CALLED, DEFAULT_ANSWER));
    expect(p).toMatchObject({ reason: 'upstream-answer-broken', status: 502 });
  });
});

describe('headers', () => {
  it('only allowlisted headers, a CSP sandbox, no-store; a Location no rewriter claims is dropped', async () => {
    const res = new Response('{}', {
      status: 201,
      headers: { 'Content-Type': 'application/json', 'Set-Cookie': 's=1', Location: '/v1/items/1', 'X-Internal': '1', 'Content-Disposition': 'inline' },
    });
    const out = await passBack(res, TOKEN, URL_CALLED, DEFAULT_ANSWER);
    expect(Object.fromEntries(out.headers)).toEqual({
      'cache-control': 'no-store',
      'content-disposition': 'inline',
      'content-security-policy': "sandbox; default-src 'none'",
      'content-type': 'application/json',
      'x-content-type-options': 'nosniff',
    });
  });

  it('the rewriter gets the Location resolved against the URL called', async () => {
    const seen: string[] = [];
    const out = await passBack(new Response(null, { status: 202, headers: { Location: 'items/7?x=1' } }), TOKEN, new URL('https://api.example/v1/batch'), {
      ...DEFAULT_ANSWER,
      rewriteLocation: (u) => (seen.push(u.href), 'https://w.example/items/7'),
    });
    expect(seen).toEqual(['https://api.example/v1/items/7?x=1']);
    expect(out.headers.get('Location')).toBe('https://w.example/items/7');
  });
});

describe('issue 13: what a browser reads its own way', () => {
  const PLUS_TOKEN = 'unit+test/token+Q9w8e7r6t5';
  // The real query rewrite of a route taking `q`: it reads `+` as a space and writes `%20`.
  const search = queryPolicy(routeSchema.parse({ path: '/s', upstream: 'u', target: '/v1/search', query: { q: { max_length: 100 } } }));
  const rewriting: AnswerOptions = { ...DEFAULT_ANSWER, rewriteLocation: (u) => `https://w.example/s${search(u.search)}` };

  it('a token with + echoed raw in a Location or Content-Location query is dropped, not rewritten to %20 and passed', async () => {
    for (const name of ['Location', 'Content-Location']) {
      for (const q of [PLUS_TOKEN, encodeURIComponent(PLUS_TOKEN), PLUS_TOKEN.replace(/\+/g, '%2B')]) {
        const res = await passBack(new Response(null, { status: 201, headers: { [name]: `/v1/search?q=${q}` } }), PLUS_TOKEN, URL_CALLED, rewriting);
        expect(res.headers.get(name), `${name}: ${q}`).toBeNull();
      }
    }
    // Checked as sent too: a rewrite that would leave the token out does not make its Location safe to pass.
    const stripping: AnswerOptions = { ...DEFAULT_ANSWER, rewriteLocation: () => 'https://w.example/s' };
    const sent = await passBack(new Response(null, { status: 201, headers: { Location: `/v1/search?q=${PLUS_TOKEN}` } }), PLUS_TOKEN, URL_CALLED, stripping);
    expect(sent.headers.get('Location')).toBeNull();
    // Without the token the same Location is rewritten as before.
    const ok = await passBack(new Response(null, { status: 201, headers: { Location: '/v1/search?q=a+b' } }), PLUS_TOKEN, URL_CALLED, rewriting);
    expect(ok.headers.get('Location')).toBe('https://w.example/s?q=a%20b');
  });

  it('a Content-Type that is a list or malformed is a 502 on every route (Chromium renders `application/json, text/html` as HTML)', async () => {
    for (const type of ['application/json, text/html', 'text/plain;, text/html', 'text/csv;, application/json', 'text/plain; charset=utf-8; charset=utf-16le', 'text/html extra', 'application/json;charset="utf-8', 'text /html']) {
      for (const activeContent of ['sandbox', 'refuse'] as const) {
        const p = await refusal(passBack(new Response('{}', { headers: { 'Content-Type': type } }), TOKEN, URL_CALLED, { ...DEFAULT_ANSWER, activeContent }));
        expect(p, `${type} (${activeContent})`).toMatchObject({ reason: 'upstream-content-type-invalid', status: 502 });
        expect(p.detail).not.toContain('html');
      }
    }
    for (const type of ['application/json', 'application/json;charset=UTF-8', 'text/plain; charset="utf-8";', 'application/problem+json; charset=utf-8', 'text/csv;;header=present']) {
      const res = await passBack(new Response('{}', { headers: { 'Content-Type': type } }), TOKEN, URL_CALLED, { ...DEFAULT_ANSWER, activeContent: 'refuse' });
      expect(res.status, type).toBe(200);
    }
  });

  it('every WHATWG label of UTF-16, ISO-2022-JP and replacement, and UTF-32 labels, is refused, in any case and with whitespace', async () => {
    for (const label of ['unicode', 'UCS-2', 'csunicode', 'iso-10646-ucs-2', 'unicodeFEFF', 'unicodefffe', 'utf-16', 'UTF-16BE', 'utf-16le', '" utf-16\t"', '"unicode"', 'iso-2022-jp', 'csISO2022JP', 'hz-gb-2312', 'iso-2022-kr', 'replacement', 'utf-32', 'UTF-32LE']) {
      const p = await refusal(passBack(new Response('{}', { headers: { 'Content-Type': `text/plain; charset=${label}` } }), TOKEN, URL_CALLED, DEFAULT_ANSWER));
      expect(p, label).toMatchObject({ reason: 'upstream-encoding-unsupported', status: 502 });
    }
    for (const label of ['utf-8', 'windows-1252', 'shift_jis', 'iso-8859-1', 'x-user-defined']) {
      const res = await passBack(new Response('{}', { headers: { 'Content-Type': `text/plain; charset=${label}` } }), TOKEN, URL_CALLED, DEFAULT_ANSWER);
      expect(res.status, label).toBe(200);
    }
  });
});
