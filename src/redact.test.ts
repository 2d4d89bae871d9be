/**
 * The redactor, unit by unit, with its input written inline: each spelling of a token, mixed
 * spellings, chunk boundaries, near misses left alone, bytes (not text) preserved, and the
 * property that for random tokens and random bodies embedding them in every encoding, nothing
 * of the token survives. Encodings and the "does it still reveal the token" check come from the
 * test side (test/standin/encodings.ts), not from the code under test.
 */
import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { TOKEN_ENCODINGS, encodeToken, revealsToken } from '../test/standin/encodings';
import { MIN_REDACTED, MIN_TOKEN_LENGTH, redact, Redactor, redactorFor } from './redact';

const TOKEN = 'eyJhbGciOi+J/IUzI1NiJ9.tok=en_0123456789';
const enc = new TextEncoder();
const dec = new TextDecoder();

/** Run `text` through a redactor stream, cut into chunks at `cuts`. */
async function streamed(redactor: Redactor, text: string, cuts: number[] = []): Promise<string> {
  const bytes = enc.encode(text);
  const ends = [...new Set(cuts.map((c) => c % (bytes.length + 1)))].sort((a, b) => a - b);
  const chunks = [...ends, bytes.length].map((end, i, all) => bytes.slice(i === 0 ? 0 : all[i - 1], end));
  const body = new ReadableStream<Uint8Array>({
    start(c) {
      for (const ch of chunks) c.enqueue(ch);
      c.close();
    },
  }).pipeThrough(redactor.stream());
  return dec.decode(await new Response(body).arrayBuffer());
}

describe('Redactor: each spelling', () => {
  const r = new Redactor([TOKEN]);
  it.each(TOKEN_ENCODINGS.map((e) => [e]))('%s', (encoding) => {
    const text = `{"a":"${encodeToken(TOKEN, encoding)}"}`;
    const out = r.redactText(text);
    expect(out).toContain('[redacted]');
    expect(revealsToken(out, TOKEN), out).toBe(false);
  });

  it('mixed spellings within one occurrence: %-escapes, \\u escapes and \\/ side by side, either hex case', () => {
    const mixed = 'eyJ%68bGc\\u0069Oi%2b\\u004A\\/IUzI1NiJ9.tok%3Den_0123456789';
    expect(r.redactText(`x${mixed}y`)).toBe('x[redacted]y');
  });

  it('in headers: foundIn sees any spelling', () => {
    expect(r.foundIn(`Bearer ${encodeURIComponent(TOKEN)}`)).toBe(true);
    expect(r.foundIn(`"${btoa(`u:${TOKEN}`)}"`)).toBe(true);
    expect(r.foundIn('"v1"')).toBe(false);
  });

  it('near misses are left alone: a prefix, an escape of another byte, a different base64 run', () => {
    const text = `${TOKEN.slice(0, -1)} %2F \\u0041 \\/ ${btoa(TOKEN.slice(1, -1).replace(/./g, 'q'))}`;
    expect(r.redactText(text)).toBe(text);
  });

  it('works on bytes: a windows-1252 body with no token comes back as the same bytes (no copy)', () => {
    const bytes = new Uint8Array([0x43, 0x61, 0x66, 0xe9, 0x96, 0x80, 0xff]);
    expect(r.redactBytes(bytes)).toBe(bytes);
  });

  it('works on bytes: a token inside a non-UTF-8 body is cut, the other bytes untouched', () => {
    const bytes = new Uint8Array([0xe9, ...enc.encode(TOKEN), 0x80]);
    expect([...r.redactBytes(bytes)]).toEqual([0xe9, ...enc.encode('[redacted]'), 0x80]);
  });

  it('several values at once (credentials), each in any spelling', () => {
    const creds = new Redactor(['p@ss:w/rd+%', 'client-77', 'ab']);
    expect(creds.redactText(`secret=p%40ss%3Aw%2Frd%2B%25&id="client-77"&x=ab`)).toBe('secret=[redacted]&id="[redacted]"&x=ab');
    // Basic credentials echoed back: base64 of "id:secret", the secret at byte 10 (alignment 1).
    expect(revealsToken(creds.redactText(`Authorization: Basic ${btoa('client-77:p@ss:w/rd+%')}`), 'p@ss:w/rd+%')).toBe(false);
  });

  it('a raw % or \\ in the token itself is matched raw or escaped', () => {
    const t = new Redactor(['a%41\\b-0123456789']);
    expect(t.redactText('[a%41\\b-0123456789]')).toBe('[[redacted]]');
    expect(t.redactText('[a%2541%5cb-0123456789]')).toBe('[[redacted]]');
    expect(t.redactText('[a%41\\\\b-0123456789]')).toBe('[[redacted]]');
  });
});

describe('Redactor: streams', () => {
  it('a token split across chunks at every position is caught', async () => {
    const r = new Redactor([TOKEN]);
    const text = `head ${encodeToken(TOKEN, 'json-u')} mid ${encodeToken(TOKEN, 'b64-2')} tail`;
    for (let cut = 0; cut <= enc.encode(text).length; cut++) {
      expect(revealsToken(await streamed(r, text, [cut]), TOKEN), `cut at ${cut}`).toBe(false);
    }
  });

  it('holds back only where a match may have begun, and passes everything on once it cannot', () => {
    const cursor = new Redactor([TOKEN]).cursor();
    const out: Uint8Array[] = [];
    out.push(...cursor.push(enc.encode('no token here at all ')));
    expect(cursor.held).toBe(0);
    out.push(...cursor.push(enc.encode('text \\u0065'))); // "e" escaped: the token may start here
    expect(cursor.held).toBe(6);
    out.push(...cursor.push(enc.encode('%79%4A'))); // "yJ": still the token
    expect(cursor.held).toBe(12);
    out.push(...cursor.push(enc.encode(' '))); // not the token after all
    expect(cursor.held).toBe(0);
    out.push(...cursor.end());
    expect(out.map((b) => dec.decode(b)).join('')).toBe('no token here at all text \\u0065%79%4A ');
  });
});

describe('values too short to redact', () => {
  it(`values under ${MIN_REDACTED} characters are not looked for (grant.ts refuses tokens under ${MIN_TOKEN_LENGTH})`, () => {
    expect(new Redactor(['abc']).empty).toBe(true);
    expect(redact('abc abc', ['abc'])).toBe('abc abc');
  });
});

describe('redactorFor', () => {
  it('builds a token’s redactor once', () => {
    expect(redactorFor(TOKEN)).toBe(redactorFor(TOKEN));
  });
});

describe('property: no spelling of the token survives', () => {
  // Tokens as token endpoints issue them: printable ASCII without spaces, at least the minimum.
  const token = fc.stringMatching(new RegExp(`^[A-Za-z0-9._~+/=%!$&'()*,;:@-]{${MIN_TOKEN_LENGTH},64}$`));
  const filler = fc.oneof(fc.string({ maxLength: 12 }), fc.constantFrom('"', '\\', '%', '%2', '\\u00', '=', '/', 'é', '\n'));

  it('random tokens, random bodies embedding them in each encoding, random chunking (1,000 cases)', async () => {
    await fc.assert(
      fc.asyncProperty(
        token,
        fc.array(fc.tuple(filler, fc.constantFrom(...TOKEN_ENCODINGS)), { minLength: 1, maxLength: 6 }),
        filler,
        fc.array(fc.nat(), { maxLength: 6 }),
        async (tok, parts, end, cuts) => {
          const body = parts.map(([f, e]) => f + encodeToken(tok, e)).join('') + end;
          const out = await streamed(redactorFor(tok), body, cuts);
          expect(revealsToken(out, tok), `${tok}\n${body}\n${out}`).toBe(false);
        },
      ),
      { numRuns: 1000 },
    );
  });
});
