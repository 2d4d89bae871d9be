/**
 * The gateway's limits at their exact edges (issue 14), over the wire: a body of exactly
 * `max_body_bytes` passes and one byte more is a 413; a field of exactly `max_field_length` passes
 * and one more is a 422; for JSON, urlencoded and multipart bodies, with multi-byte UTF-8 characters
 * (the body limit counts bytes, the field limit characters, as the README's key names and the 422's
 * wording say). And an allowed origin's subdomain is another origin. Each test names the one-line
 * mutations it fails on; unless it says "also caught by", no other test failed on them.
 */
import { describe, expect, it } from 'vitest';
import { ORIGIN } from '../fixtures/config';
import { EDGE_MAX_BODY_BYTES, EDGE_MAX_FIELD_LENGTH } from '../fixtures/edges';
import { apiHits, call, type Answer } from '../helpers';
import { expectProblem } from './gateway.support';

const HOST = 'edgelimits';
const ENCODER = new TextEncoder();
const bytesOf = (s: string) => ENCODER.encode(s).length;

/** '€' is one character and three bytes in UTF-8: a string of `bytes` bytes, mostly of them. */
function euroFill(bytes: number): string {
  const euros = Math.floor(bytes / 3);
  return '€'.repeat(euros) + 'a'.repeat(bytes - 3 * euros);
}

/** How each encoding carries one field `text`. */
const ENCODINGS = {
  json: { type: 'application/json', frame: (v: string) => JSON.stringify({ text: v }) },
  // Raw UTF-8, as a client may send it (a browser percent-encodes it; the parser takes both).
  urlencoded: { type: 'application/x-www-form-urlencoded', frame: (v: string) => `text=${v}` },
  multipart: {
    type: 'multipart/form-data; boundary=edge-limits-boundary',
    frame: (v: string) => `--edge-limits-boundary\r\nContent-Disposition: form-data; name="text"\r\n\r\n${v}\r\n--edge-limits-boundary--\r\n`,
  },
} as const;
type Encoding = keyof typeof ENCODINGS;

/** A body in `encoding` of exactly `bytes` bytes, its field made of multi-byte characters. */
function bodyOfBytes(encoding: Encoding, bytes: number): { body: string; value: string } {
  const frame = bytesOf(ENCODINGS[encoding].frame(''));
  const value = euroFill(bytes - frame);
  const body = ENCODINGS[encoding].frame(value);
  expect(bytesOf(body)).toBe(bytes);
  return { body, value };
}

const send = (path: string, encoding: Encoding, body: BodyInit) => call(path, { method: 'POST', body, headers: { 'Content-Type': ENCODINGS[encoding].type } });

/** Run `send` and return its answer with the API calls it made. */
async function withUpstreamCalls(send: () => Promise<Answer>): Promise<{ res: Answer; calls: number }> {
  const before = (await apiHits(HOST)).length;
  const res = await send();
  return { res, calls: (await apiHits(HOST)).length - before };
}

/** The body as a stream of small pieces: no Content-Length, the limit is counted as it is read. */
function streamed(body: string): ReadableStream<Uint8Array> {
  const bytes = ENCODER.encode(body);
  let at = 0;
  return new ReadableStream<Uint8Array>({
    pull(c) {
      if (at >= bytes.length) return c.close();
      c.enqueue(bytes.slice(at, (at += 64)));
    },
  });
}

describe(`max_body_bytes (${EDGE_MAX_BODY_BYTES}) counts bytes: exactly that passes, one byte more is a 413`, () => {
  // Mutations: `maxSize: route.max_body_bytes - 1` (exactly N refused) and `+ 1` (N + 1 passes;
  // also caught by the opaque-body test in gateway.requests.test.ts).
  for (const encoding of Object.keys(ENCODINGS) as Encoding[]) {
    it(`${encoding}: ${EDGE_MAX_BODY_BYTES} bytes (fewer characters) reach the API whole; ${EDGE_MAX_BODY_BYTES + 1} bytes do not`, async () => {
      const exact = bodyOfBytes(encoding, EDGE_MAX_BODY_BYTES);
      const ok = await withUpstreamCalls(() => send('/edge/body', encoding, exact.body));
      expect(ok.res.status, ok.res.text).toBe(200);
      expect(ok.calls).toBe(1);
      expect((ok.res.json() as { body: unknown }).body).toEqual({ text: exact.value });

      const over = bodyOfBytes(encoding, EDGE_MAX_BODY_BYTES + 1);
      expect(over.body.length).toBeLessThan(EDGE_MAX_BODY_BYTES); // in characters it is well within
      const refused = await withUpstreamCalls(() => send('/edge/body', encoding, over.body));
      expectProblem(refused.res, 413, new RegExp(`at most ${EDGE_MAX_BODY_BYTES} bytes`), 'body-too-large');
      expect(refused.calls).toBe(0);
    });
  }

  it('streamed without Content-Length: the same edge, counted as the body is read', async () => {
    const exact = bodyOfBytes('json', EDGE_MAX_BODY_BYTES);
    const ok = await withUpstreamCalls(() => send('/edge/body', 'json', streamed(exact.body)));
    expect(ok.res.status, ok.res.text).toBe(200);
    expect((await apiHits(HOST)).at(-1)?.body).toBe(exact.body);

    const over = bodyOfBytes('json', EDGE_MAX_BODY_BYTES + 1);
    const refused = await withUpstreamCalls(() => send('/edge/body', 'json', streamed(over.body)));
    expectProblem(refused.res, 413, undefined, 'body-too-large');
    expect(refused.calls).toBe(0);
  });
});

describe(`max_field_length (${EDGE_MAX_FIELD_LENGTH}) counts characters: exactly that passes, one more is a 422`, () => {
  // Mutations: `v.length >= max` (exactly N refused), the length counted in UTF-8 bytes (N
  // three-byte characters refused), and `v.length > max + 1` (N + 1 passes; also caught by
  // gateway.inputs.test.ts).
  const exact = '€'.repeat(EDGE_MAX_FIELD_LENGTH); // 3 × the limit in bytes
  const over = '€'.repeat(EDGE_MAX_FIELD_LENGTH + 1);

  for (const encoding of Object.keys(ENCODINGS) as Encoding[]) {
    it(`${encoding}: ${EDGE_MAX_FIELD_LENGTH} three-byte characters reach the API; ${EDGE_MAX_FIELD_LENGTH + 1} are refused naming the field`, async () => {
      const ok = await withUpstreamCalls(() => send('/edge/field', encoding, ENCODINGS[encoding].frame(exact)));
      expect(ok.res.status, ok.res.text).toBe(200);
      expect((ok.res.json() as { body: unknown }).body).toEqual({ text: exact });

      const refused = await withUpstreamCalls(() => send('/edge/field', encoding, ENCODINGS[encoding].frame(over)));
      const p = expectProblem(refused.res, 422, undefined, 'invalid-submission');
      expect(p.errors).toEqual([{ field: 'text', message: `is longer than ${EDGE_MAX_FIELD_LENGTH} characters` }]);
      expect(refused.calls).toBe(0);
    });
  }

  it('ASCII too, and at any depth of a JSON body', async () => {
    const field = (text: unknown) => send('/edge/field', 'json', JSON.stringify({ deep: { text } }));
    expect((await field('a'.repeat(EDGE_MAX_FIELD_LENGTH))).status).toBe(200);
    expectProblem(await field('a'.repeat(EDGE_MAX_FIELD_LENGTH + 1)), 422, /deep\.text is longer than/);
  });
});

describe('an allowed origin is that origin only, not its subdomains', () => {
  // Mutation: an origin allowed when it ends with "." + an allowed host (a "same site" match).
  const others = ['https://x.forms.example.org', 'https://a.b.forms.example.org', 'https://www.forms.example.org', 'https://xforms.example.org', 'http://x.forms.example.org'];

  it('a page on a subdomain of the allowed origin is refused with 403, gets no CORS grant, reaches nothing', async () => {
    for (const origin of others) {
      const { res, calls } = await withUpstreamCalls(() => call('/edge/field', { method: 'POST', origin, body: '{"text":"x"}' }));
      expectProblem(res, 403, /may not call this route/, 'origin-not-allowed');
      expect(res.headers.get('Access-Control-Allow-Origin'), origin).toBeNull();
      expect(calls).toBe(0);
    }
  });

  it('its preflight is refused too; the allowed origin itself is granted', async () => {
    const preflight = (origin: string) => call('/edge/field', { method: 'OPTIONS', origin, headers: { 'Access-Control-Request-Method': 'POST', 'Access-Control-Request-Headers': 'content-type' } });
    for (const origin of others) {
      const res = await preflight(origin);
      expect(res.status, origin).toBe(403);
      expect(res.headers.get('Access-Control-Allow-Origin'), origin).toBeNull();
    }
    const allowed = await preflight(ORIGIN);
    expect(allowed.status).toBe(204);
    expect(allowed.headers.get('Access-Control-Allow-Origin')).toBe(ORIGIN);
  });
});
