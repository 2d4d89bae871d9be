/**
 * One request's worst case (token wait, API call, replacement token, the one retry) is documented
 * in docs/configuration.md ("Timeouts"), and injector-form.js waits at least that long per
 * attempt, so it never gives up on an answer the Worker is still working on (a POST the visitor
 * would then send twice). The README's form section states the same wait.
 */
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { upstreamSchema } from '../../src/config/schema.ts';
import { ROOT } from './browser-support.ts';

describe('timeouts', () => {
  const docs = readFileSync(join(ROOT, 'docs/configuration.md'), 'utf8');
  const script = readFileSync(join(ROOT, 'public/injector-form.js'), 'utf8');
  const documented = Number(/worst case is \*\*`2 × \(token_timeout_ms \+ api_timeout_ms\)`: (\d+) s with the defaults\*\*/.exec(docs)?.[1]);
  const waits = Number(/const TIMEOUT_S = (\d+);/.exec(script)?.[1]);

  it('the documented worst case is what the default timeouts add up to', () => {
    const u = upstreamSchema.parse({ api_origin: 'https://a.example', token_url: 'https://a.example/token', client_auth: 'none' });
    expect(documented).toBe(80);
    expect(2 * (u.token_timeout_ms + u.api_timeout_ms)).toBe(documented * 1000);
  });

  it('injector-form.js waits the worst case and a margin of at most 10 s, and the docs say so', () => {
    expect(waits).toBeGreaterThanOrEqual(documented);
    expect(waits).toBeLessThanOrEqual(documented + 10);
    expect(docs).toContain(`\`injector-form.js\` waits ${waits} s per attempt`);
    expect(readFileSync(join(ROOT, 'README.md'), 'utf8')).toContain(`each attempt waits up to ${waits} s`);
  });
});
