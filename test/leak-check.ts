/**
 * The leak check run on every response (`call()` in helpers.ts) and on every test's log lines
 * (test/worker/setup.ts): no secret, no Turnstile token and no token the stand-ins ever issued may
 * appear, and no token in any spelling `decodedViews` reads (JSON escapes, percent-encoding, base64
 * at each offset: test/standin/encodings.ts).
 *
 * Work per token happens once: each token is fetched from the stand-in once (only what this isolate
 * has not seen yet) and filed in an index once. Work per text is one decoding and one scan of each
 * view, whatever the number of tokens; then one assertion per kind of leak.
 */
import { expect } from 'vitest';
import { SECRETS } from './fixtures/config';
import { NeedleIndex, decodedViews, tokenCore } from './standin/encodings';

/** Found as written: the secrets and every Turnstile token. */
const written = new NeedleIndex();
/** Found in any view of a text: each token's core (what `revealed` looks for). */
const cores = new NeedleIndex();
const tokensOfCore = new Map<string, string[]>();
const seen = { tokens: 0, turnstile: 0 };
for (const secret of Object.values(SECRETS)) written.add(secret);

/** Index the tokens issued and the Turnstile tokens registered since the last call. */
async function catchUp(): Promise<void> {
  const res = await fetch(`http://control.standin/leak-watch?tokens=${seen.tokens}&turnstile=${seen.turnstile}`);
  const fresh = (await res.json()) as { tokens: string[]; turnstile: string[] };
  for (const token of fresh.tokens) {
    const core = tokenCore(token);
    cores.add(core);
    tokensOfCore.set(core, [...(tokensOfCore.get(core) ?? []), token]);
  }
  for (const token of fresh.turnstile) written.add(token);
  seen.tokens += fresh.tokens.length;
  seen.turnstile += fresh.turnstile.length;
}

/** What leaked, and where: `needle` in the text around it (`as` names a token by its core). */
function shown(found: Set<string>, views: string[], as: (needle: string) => string = (n) => n): string[] {
  return [...found].map((needle) => {
    const view = views.find((v) => v.includes(needle))!;
    const at = view.indexOf(needle);
    return `${as(needle)} in ${JSON.stringify(view.slice(Math.max(0, at - 60), at + needle.length + 60))}`;
  });
}

const tokenOf = (core: string) => (tokensOfCore.get(core) ?? [core]).join(' or ');

/** Fail the current test if `text` (a response, or log lines) gives away a secret or a token. */
export async function assertNothingLeaks(text: string, into: 'a response' | 'a log line'): Promise<void> {
  await catchUp();
  const views = decodedViews(text);
  const asIs = views.slice(0, 1);
  const plain = [...shown(written.foundIn(text), asIs), ...shown(cores.foundIn(text), asIs, tokenOf)];
  expect(plain, `a secret or token leaked into ${into}: ${plain.join('; ')}`).toEqual([]);
  const found = new Set<string>();
  for (const view of views.slice(1)) cores.foundIn(view, found);
  const encoded = shown(found, views, tokenOf);
  expect(encoded, `an encoded token leaked into ${into}: ${encoded.join('; ')}`).toEqual([]);
}
