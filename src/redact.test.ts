/**
 * The redactor, unit by unit, with its input written inline: each spelling of a token, mixed
 * spellings, escapes within escapes, chunk boundaries, near misses left alone, bytes (not text)
 * preserved, work linear in the text whatever the token, and the property that for random and
 * adversarial tokens and random bodies embedding them in every encoding, nothing of the token
 * survives. Encodings and the "does it still reveal the token" check come from the test side
 * (test/standin/encodings.ts), not from the code under test. (The CPU-time ratio, which workerd's
 * clock cannot measure, is in test/node/redact-cpu.test.ts.)
 */
import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { TOKEN_ENCODINGS, encodeToken, revealsToken } from '../test/standin/encodings';
import { adversarialAnswer, adversarialToken, ADVERSARIAL_SHAPES } from '../test/standin/adversarial';
import { MAX_SPELLING_BYTES, MIN_REDACTED, MIN_TOKEN_LENGTH, redact, Redactor, redactorFor } from './redact';

const TOKEN = 'eyJhbGciOi+J/IUzI1NiJ9.tok=en_0123456789';
const enc = new TextEncoder();
const dec = new TextDecoder();

/** Run `text` through a redactor stream, cut into chunks at `cuts`; the hold-back checked against its bound after each. */
async function streamed(redactor: Redactor, text: string, cuts: number[] = []): Promise<string> {
  const bytes = enc.encode(text);
  const ends = [...new Set(cuts.map((c) => c % (bytes.length + 1)))].sort((a, b) => a - b);
  const chunks = [...ends, bytes.length].map((end, i, all) => bytes.slice(i === 0 ? 0 : all[i - 1], end));
  const cursor = redactor.cursor();
  const out: Uint8Array[] = [];
  for (const ch of chunks) {
    out.push(...cursor.push(ch));
    expect(cursor.held).toBeLessThanOrEqual(redactor.maxMatchBytes);
  }
  out.push(...cursor.end());
  // And the same through the TransformStream the gateway uses.
  const body = new ReadableStream<Uint8Array>({
    start(c) {
      for (const ch of chunks) c.enqueue(ch);
      c.close();
    },
  }).pipeThrough(redactor.stream());
  const viaStream = dec.decode(await new Response(body).arrayBuffer());
  const viaCursor = out.map((b) => dec.decode(b, { stream: true })).join('') + dec.decode();
  expect(viaStream).toBe(viaCursor);
  return viaStream;
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

describe('Redactor: overlapping echoes', () => {
  it('two echoes sharing a byte are both cut (the longest reading of one may take the other’s first byte)', () => {
    const t = '\\u00\\u00\\u00\\u00\\'; // ends in a backslash, which with the one after it reads as one (a JSON escape)
    const out = new Redactor([t]).redactText(`${t}\\${t}`);
    expect(out).toBe('[redacted]');
    expect(new Redactor(['_-+=_-+=_-+=_-+=']).redactText('_-+=_-+=_-+=_-+=_-+=_')).toBe('[redacted]_');
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
    out.push(...cursor.push(enc.encode('no token here at all; ')));
    expect(cursor.held).toBe(0);
    out.push(...cursor.push(enc.encode('text \\u0065'))); // "e" escaped: the token may start here
    expect(cursor.held).toBe(6);
    out.push(...cursor.push(enc.encode('%79%4A'))); // "yJ": still the token
    expect(cursor.held).toBe(12);
    out.push(...cursor.push(enc.encode(';'))); // not the token after all
    expect(cursor.held).toBe(0);
    out.push(...cursor.end());
    expect(out.map((b) => dec.decode(b)).join('')).toBe('no token here at all; text \\u0065%79%4A;');
  });

  it(`never holds back more than ${MAX_SPELLING_BYTES} bytes per character of the token, however long a spelling keeps going`, () => {
    const r = new Redactor([TOKEN]);
    expect(r.maxMatchBytes).toBe(MAX_SPELLING_BYTES * 53); // the longest needle: a 53-character base64 run of the 40-character token
    // A spelling that stays possible as long as it goes: the token's first character, then ever more whitespace.
    const cursor = r.cursor();
    let most = 0;
    cursor.push(enc.encode('e'));
    for (let i = 0; i < 5000; i++) {
      cursor.push(enc.encode(' '));
      most = Math.max(most, cursor.held);
    }
    expect(most).toBeGreaterThan(0);
    expect(most).toBeLessThanOrEqual(MAX_SPELLING_BYTES * TOKEN.length);
  });
});

describe('Redactor: spellings that stack encoders (issue 13)', () => {
  const r = new Redactor([TOKEN]);
  const cut = (spelled: string) => r.redactText(`<${spelled}>`);

  it('HTML numeric references, decimal or hex, any case, leading zeros, with or without ;, mixed with raw characters', () => {
    for (const [from, to] of [['+', '&#43;'], ['+', '&#x2b;'], ['+', '&#X2B'], ['+', '&#00043;'], ['/', '&#x00002F;'], ['=', '&#61']] as const) {
      expect(cut(TOKEN.replace(from, to)), to).toBe('<[redacted]>');
    }
    expect(cut([...TOKEN].map((c, i) => (i % 2 === 0 ? `&#${c.charCodeAt(0)};` : c)).join(''))).toBe('<[redacted]>');
  });

  it('HTML named references of the token’s punctuation (&plus; &sol; &equals; &lowbar; &period;) and legacy &amp without ;', () => {
    expect(cut('eyJhbGciOi&plus;J&sol;IUzI1NiJ9&period;tok&equals;en&lowbar;0123456789')).toBe('<[redacted]>');
    expect(new Redactor(['a&b-0123456789abcdef']).redactText('<a&ampb-0123456789abcdef>')).toBe('<[redacted]>');
    // A name that is not the character's, or a non-legacy name without its ;, is not the token.
    expect(cut(TOKEN.replace('+', '&plus'))).toBe(`<${TOKEN.replace('+', '&plus')}>`);
    expect(cut(TOKEN.replace('+', '&sol;'))).toBe(`<${TOKEN.replace('+', '&sol;')}>`);
  });

  it('percent-encoding at any depth, and escapes of escapes: %252B, %25252B, \\u00252B, %5Cu002B, %26%2343%3B, \\u0026plus;', () => {
    for (const spelled of ['%252B', '%25252B', '%2525252b', '\\u00252B', '%5Cu002B', '%5C%75%30%30%32%62', '%26%2343%3B', '%2526%252343%253B', '\\u0026plus;', '&#37;2B', '\\\\u002B']) {
      expect(cut(TOKEN.replace('+', spelled)), spelled).toBe('<[redacted]>');
    }
  });

  it('base64 wrapped into lines (MIME: CRLF every 76 characters), the token across a break, also inside JSON as \\r\\n', () => {
    const payload = btoa(`${'x'.repeat(50)}${TOKEN}${'y'.repeat(50)}`);
    const mime = payload.replace(/(.{76})/g, '$1\r\n');
    expect(mime.slice(0, 200)).toContain('\r\n'); // the token's run straddles a line break
    expect(revealsToken(r.redactText(mime), TOKEN)).toBe(false);
    expect(revealsToken(r.redactText(JSON.stringify(mime)), TOKEN)).toBe(false);
  });

  it('+ read as a space (form decoding), raw or as %20', () => {
    expect(cut(TOKEN.replace('+', ' '))).toBe('<[redacted]>');
    expect(cut(TOKEN.replace('+', '%20'))).toBe('<[redacted]>');
  });

  it('UTF-16 bytes (each character followed by NUL) and a folded line', () => {
    expect(revealsToken(r.redactText([...TOKEN].map((c) => `${c}\0`).join('')), TOKEN)).toBe(false);
    expect(cut(`${TOKEN.slice(0, 20)}\r\n ${TOKEN.slice(20)}`)).toBe('<[redacted]>');
  });

  it(`a spelling longer than ${MAX_SPELLING_BYTES} bytes per character is not followed (the bound on what a stream holds back)`, () => {
    const spaced = [...TOKEN].join(' '.repeat(MAX_SPELLING_BYTES));
    expect(cut(spaced)).toBe(`<${spaced}>`);
  });
});

describe('Redactor: work linear in the text, whatever the token', () => {
  it('the issue’s case: a token of 40 backslashes against a 61-byte answer takes a few thousand steps, not 2^40', () => {
    const cursor = new Redactor(['\\'.repeat(40)]).cursor();
    cursor.push(enc.encode(`${'\\'.repeat(39)}x${'\\'.repeat(21)}`));
    cursor.end();
    expect(cursor.steps).toBeLessThanOrEqual(61 * (2 * 40 + 16));
  });

  // What the README promises: at most 2 steps per byte per character of the token, plus 16.
  it.each(ADVERSARIAL_SHAPES.map((s) => [s]))('%s tokens of 16 to 64 characters: steps ≤ bytes × (2 × length + 16), and twice the text is twice the work', (shape) => {
    for (const length of [16, 40, 64]) {
      const token = adversarialToken(shape, length);
      const work = (bytes: number) => {
        const cursor = new Redactor([token]).cursor();
        cursor.push(adversarialAnswer(token, bytes));
        cursor.end();
        return cursor.steps;
      };
      const [once, twice] = [work(8192), work(16384)];
      expect(once, `${shape} ${length}`).toBeLessThanOrEqual(8192 * (2 * length + 16));
      expect(twice / once, `${shape} ${length}`).toBeLessThan(2.1);
    }
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
  // Tokens as token endpoints issue them (printable ASCII without spaces, at least the minimum),
  // and adversarial ones: repeated escape characters, repeated prefixes.
  const token = fc.oneof(
    { weight: 3, arbitrary: fc.stringMatching(new RegExp(`^[A-Za-z0-9._~+/=%!$&'()*,;:@-]{${MIN_TOKEN_LENGTH},64}$`)) },
    { weight: 1, arbitrary: fc.tuple(fc.constantFrom(...ADVERSARIAL_SHAPES), fc.integer({ min: MIN_TOKEN_LENGTH, max: 48 })).map(([shape, n]) => adversarialToken(shape, n)) },
    { weight: 1, arbitrary: fc.stringMatching(new RegExp(`^[%\\\\&#;xu0-9+ab]{${MIN_TOKEN_LENGTH},40}$`)).filter((t) => !t.includes(' ')) },
  );
  const filler = fc.oneof(fc.string({ maxLength: 12 }), fc.constantFrom('"', '\\', '%', '%2', '\\u00', '=', '/', 'é', '\n'));

  it('random tokens, random bodies embedding them in each encoding, random chunking (1,000 cases)', async () => {
    await fc.assert(
      fc.asyncProperty(
        token,
        fc.array(fc.tuple(filler, fc.constantFrom(...TOKEN_ENCODINGS)), { minLength: 1, maxLength: 6 }),
        filler,
        fc.array(fc.nat(), { maxLength: 6 }),
        async (tok, parts, end, cuts) => {
          // Filler that spells the token by itself (a token of backslashes, filler of backslashes) proves nothing.
          fc.pre(!revealsToken(parts.map(([f]) => `${f}\u2603`).join('') + end, tok));
          const body = parts.map(([f, e]) => f + encodeToken(tok, e)).join('') + end;
          const out = await streamed(redactorFor(tok), body, cuts);
          expect(revealsToken(out, tok), `${tok}\n${body}\n${out}`).toBe(false);
        },
      ),
      { numRuns: 1000 },
    );
  });
});
