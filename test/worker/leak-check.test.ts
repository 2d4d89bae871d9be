/**
 * The leak check itself (test/leak-check.ts, test/standin/encodings.ts), in workerd where it runs:
 * every spelling of a token is found, in a response and in log lines, for an old token as for the
 * newest; secrets and Turnstile tokens as written; an unrelated text passes. And the index it uses
 * finds exactly what a plain per-token `includes` would, so indexing changed nothing but the cost.
 */
import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { SECRETS } from '../fixtures/config';
import { acceptToken, turnstileToken } from '../helpers';
import { assertNothingLeaks } from '../leak-check';
import { NeedleIndex, TOKEN_ENCODINGS, decodedViews, encodeToken, revealed, tokenCore } from '../standin/encodings';

/** A token as the stand-in issues them, and one as a JWT (dots, `-` and `_`), each unique to this run. */
const opaque = () => `tok_leakcheck_${crypto.randomUUID().replace(/-/g, '')}`;
const jwt = () => `eyJhbGciOiJIUzI1NiJ9.${btoa(JSON.stringify({ sub: crypto.randomUUID() })).replace(/=+$/, '').replace(/\+/g, '-').replace(/\//g, '_')}.c2lnX2xlYWs`;
const wrapped = (s: string) => `HTTP/1.1 200\ncontent-type: application/json\n\n{"echo":"before ${s} after","n":1}`;

describe('assertNothingLeaks: each spelling of an issued token is found', () => {
  for (const [kind, make] of [['opaque', opaque], ['JWT', jwt]] as const) {
    it.each(TOKEN_ENCODINGS.map((e) => [e]))(`${kind} token, %s`, async (encoding) => {
      const token = make();
      await acceptToken('leakcheck', token);
      // Where a spelling leaves this token as it is (no character to escape), it is found as written.
      const message = encoding === 'raw' || encodeToken(token, encoding) === token ? 'a secret or token leaked into a response' : 'an encoded token leaked into a response';
      await expect(assertNothingLeaks(wrapped(encodeToken(token, encoding)), 'a response')).rejects.toThrow(`${message}: ${token} in`);
      // A log line is JSON: the spelling is escaped once more inside it.
      await expect(assertNothingLeaks(JSON.stringify({ event: 'x', detail: encodeToken(token, encoding) }), 'a log line')).rejects.toThrow(`leaked into a log line: ${token} in`);
    });
  }

  it('an old token among many is still found, and named in the failure', async () => {
    const old = opaque();
    await acceptToken('leakcheck', old);
    for (let i = 0; i < 300; i++) await acceptToken('leakcheck', opaque());
    await expect(assertNothingLeaks(wrapped(encodeToken(old, 'b64url-1')), 'a response')).rejects.toThrow(`an encoded token leaked into a response: ${old} in`);
  });

  it('secrets and Turnstile tokens are found as written', async () => {
    for (const secret of Object.values(SECRETS)) {
      await expect(assertNothingLeaks(wrapped(secret), 'a response')).rejects.toThrow(/a secret or token leaked/);
    }
    const turnstile = await turnstileToken();
    await expect(assertNothingLeaks(wrapped(turnstile), 'a log line')).rejects.toThrow(/a secret or token leaked into a log line/);
  });

  it('an unrelated text passes: tokens never issued, in every spelling, and a near miss of an issued one', async () => {
    const issued = opaque();
    await acceptToken('leakcheck', issued);
    const strangers = TOKEN_ENCODINGS.map((e) => encodeToken(opaque(), e)).join(' ');
    await assertNothingLeaks(wrapped(`${strangers} ${issued.slice(0, 20)}… ${btoa(issued.slice(0, 20))}`), 'a response');
  });
});

describe('NeedleIndex finds what includes() finds', () => {
  // A small alphabet, so that needles overlap, share prefixes and collide in the index.
  const text = fc.string({ unit: fc.constantFrom('a', 'b', 'c', '%', '\u00e9'), maxLength: 200 });
  const needle = fc.string({ unit: fc.constantFrom('a', 'b', 'c', '%', '\u00e9'), maxLength: 14 });

  it('for random needles (short and long) in random texts', () => {
    fc.assert(
      fc.property(fc.array(needle, { maxLength: 30 }), text, (needles, t) => {
        const index = new NeedleIndex();
        for (const n of needles) index.add(n);
        expect([...index.foundIn(t)].sort()).toEqual([...new Set(needles.filter((n) => t.includes(n)))].sort());
      }),
      { numRuns: 500 },
    );
  });

  it('over decoded views, exactly the tokens `revealed` names', () => {
    const token = fc.stringMatching(/^[A-Za-z0-9._~+/=%-]{12,40}$/);
    const filler = fc.oneof(fc.string({ maxLength: 10 }), fc.constantFrom('"', '\\', '%', '\\u00', '=', '/', 'é', '\n'));
    fc.assert(
      fc.property(fc.array(token, { minLength: 1, maxLength: 8 }), fc.array(fc.tuple(filler, fc.nat(), fc.constantFrom(...TOKEN_ENCODINGS))), filler, (tokens, parts, end) => {
        const body = parts.map(([f, i, e]) => f + encodeToken(tokens[i % tokens.length]!, e)).join('') + end;
        const views = decodedViews(body);
        const index = new NeedleIndex();
        for (const t of tokens) index.add(tokenCore(t));
        const found = new Set<string>();
        for (const v of views) index.foundIn(v, found);
        expect(tokens.filter((t) => found.has(tokenCore(t)))).toEqual(tokens.filter((t) => revealed(views, t)));
      }),
      { numRuns: 300 },
    );
  });
});
