/**
 * Lifetimes and budgets on a fake clock (issue 2, points 4 and 5): sliding expiry, refresh ahead
 * of expiry, and a token-request budget that no load can exceed.
 */
import { describe, expect, it, vi } from 'vitest';
import { clearIsolateCache } from '../../src/token/cache';
import { apiHits, post, revoke, setToken, tokenHits } from '../helpers';
import { fakeClock, MINUTE, SECOND, scopeStatus } from './token-helpers';

describe('sliding expiry (seed 002: expires_in counted from the most recent use)', () => {
  it('a token used every lifetime/2 is never refreshed; left unused past its lifetime, it is', async () => {
    const clock = fakeClock();
    await setToken('sliding', { expiresIn: 300 });
    for (let i = 0; i < 12; i++) {
      expect((await post('/t/sliding', { i })).status).toBe(200);
      clock.advance(150 * SECOND);
    }
    expect(await tokenHits('sliding')).toHaveLength(1); // 30 minutes of use, one token

    clock.advance(301 * SECOND);
    expect((await post('/t/sliding', {})).status).toBe(200);
    expect(await tokenHits('sliding')).toHaveLength(2);
  });

  it('isolates report their uses, so the store keeps a busy token alive for a cold isolate', async () => {
    const clock = fakeClock(Date.UTC(2026, 10, 23));
    await setToken('sliding', { expiresIn: 300 });
    const before = (await tokenHits('sliding')).length;
    expect((await post('/t/sliding', {})).status).toBe(200); // t=0: from the store
    const start = clock.now();
    for (const t of [100, 200]) {
      clock.set(start + t * SECOND); // served from the isolate cache, reported to the store
      expect((await post('/t/sliding', { t })).status).toBe(200);
    }
    await vi.waitFor(async () => expect((await scopeStatus('sliding')).token?.expiresAt).toBe(start + 500 * SECOND));
    clearIsolateCache(); // a new isolate: only the store's view can keep the token
    clock.set(start + 450 * SECOND); // past 0 + 300 s, inside 200 + 300 s
    expect((await post('/t/sliding', {})).status).toBe(200);
    expect((await tokenHits('sliding')).length - before).toBe(1);
  });

  it('a fixed-expiry token used just as often is refreshed ahead of its expiry, never used past it', async () => {
    const clock = fakeClock();
    await setToken('fixedlife', { expiresIn: 300 });
    const seen: string[] = [];
    for (let i = 0; i < 6; i++) {
      expect((await post('/t/fixedlife', { i })).status).toBe(200);
      clock.advance(150 * SECOND);
    }
    for (const h of await apiHits('fixedlife')) seen.push(h.headers.authorization!);
    // Uses at 0,150 | 300,450 | 600,750 s: the margin (30 s) makes the 300 s use take a new token.
    expect(await tokenHits('fixedlife')).toHaveLength(3);
    expect(new Set(seen).size).toBe(3);
  });
});

describe('token budget: 1 token request per hour (ABS)', () => {
  it('never sends a second token request inside the window, under any load', async () => {
    const clock = fakeClock();
    const t0 = clock.now();
    await setToken('budget', { expiresIn: 1800 });
    const burst = await Promise.all(Array.from({ length: 200 }, (_, i) => post('/t/budget', { i })));
    expect(burst.every((a) => a.status === 200)).toBe(true);
    expect(await tokenHits('budget')).toHaveLength(1);

    // Inside the refresh margin: the budget forbids a refresh, so the current token is still used
    // (usable until 1790 s: its 1800 s minus the 10 s skew).
    clock.advance(1785 * SECOND);
    expect((await post('/t/budget', {})).status).toBe(200);
    expect(await tokenHits('budget')).toHaveLength(1);

    // Past its usable end, budget still spent: fail fast with 503 + Retry-After until the window
    // reopens: 3600 s after the answer to the first request came back, plus the 2 s slack.
    clock.advance(10 * SECOND);
    const waits = await Promise.all(Array.from({ length: 100 }, () => post('/t/budget', {})));
    for (const w of waits) {
      expect(w.status).toBe(503);
      expect(w.headers.get('Content-Type')).toContain('application/problem+json');
      expect(w.headers.get('Retry-After')).toBe(String(3602 - 1795));
    }
    expect(await apiHits('budget')).toHaveLength(201);
    // A rejected token does not buy a refresh either.
    await revoke('budget');
    clock.advance(10 * MINUTE);
    expect((await post('/t/budget', {})).status).toBe(503);
    expect(await tokenHits('budget')).toHaveLength(1);

    // One second past the window, the slack still holds the token request back (the upstream counts
    // from arrival): the callers are held until it passes, then served with one new token.
    clock.set(t0 + 3601 * SECOND);
    const rollover = await Promise.all(Array.from({ length: 100 }, (_, i) => post('/t/budget', { i })));
    expect(rollover.every((a) => a.status === 200)).toBe(true);
    expect(clock.now()).toBeGreaterThanOrEqual(t0 + 3602 * SECOND);
    expect(await tokenHits('budget')).toHaveLength(2);
  });

  it('ABS style: the raw token is injected without the Bearer prefix', async () => {
    await setToken('raw', {});
    expect((await post('/t/raw', {})).status).toBe(200);
    expect((await apiHits('raw'))[0]!.headers.authorization).toMatch(/^tok_raw_/);
  });
});
