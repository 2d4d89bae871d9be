/**
 * Runs around every Worker test: whatever the Worker logs (structured lines from the token store,
 * errors) must never contain a secret, a token or a Turnstile token. Responses are checked by `call()` in helpers.ts.
 */
import { afterEach, beforeEach, expect, vi } from 'vitest';
import { SECRETS } from '../fixtures/config';
import { issuedTokens, turnstileTokens } from '../helpers';
import { decodedViews, revealed } from '../standin/encodings';
import { capturedLines as lines } from './log-capture';

beforeEach(() => {
  lines.length = 0;
  for (const level of ['log', 'info', 'warn', 'error', 'debug'] as const) {
    const original = console[level].bind(console);
    vi.spyOn(console, level).mockImplementation((...args: unknown[]) => {
      lines.push(args.map((a) => (typeof a === 'string' ? a : JSON.stringify(a) ?? String(a))).join(' '));
      original(...args);
    });
  }
});

afterEach(async () => {
  vi.restoreAllMocks();
  const tokens = await issuedTokens();
  const text = lines.join('\n');
  for (const s of [...Object.values(SECRETS), ...tokens, ...(await turnstileTokens())]) expect(text, 'a secret or token reached a log line').not.toContain(s);
  const views = decodedViews(text);
  for (const t of tokens) expect(revealed(views, t), 'an encoded token reached a log line').toBe(false);
});
