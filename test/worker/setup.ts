/**
 * Runs around every Worker test: whatever the Worker logs (structured lines from the token store,
 * errors) must never contain a secret, a token or a Turnstile token. Responses are checked by `call()` in helpers.ts.
 */
import { afterEach, beforeEach, vi } from 'vitest';
import { assertNothingLeaks } from '../leak-check';
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
  await assertNothingLeaks(lines.join('\n'), 'a log line');
});
