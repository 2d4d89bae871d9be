/**
 * The token engine: one token request per token lifetime for the whole edge, kept across
 * restarts, and compare-and-swap invalidation (issue 2, points 1, 2 and 7).
 */
import { evictDurableObject } from 'cloudflare:test';
import { describe, expect, it } from 'vitest';
import { clearIsolateCache } from '../../src/token/cache';
import { apiHits, post, revoke, tokenHits } from '../helpers';
import { countStoreCalls, failStoreCalls, store } from './token-helpers';

describe('single-flight', () => {
  it('500 concurrent requests on a cold start make exactly one token request, and all 500 reach the API with it', async () => {
    const answers = await Promise.all(Array.from({ length: 500 }, (_, i) => post('/t/cold', { n: i })));
    expect(answers.map((a) => a.status)).toEqual(Array(500).fill(200));
    expect(await tokenHits('cold')).toHaveLength(1);
    const api = await apiHits('cold');
    expect(api).toHaveLength(500);
    expect(new Set(api.map((h) => h.headers.authorization)).size).toBe(1);
    expect(api[0]!.headers.authorization).toMatch(/^Bearer tok_cold_/);
  });

  it('callers from many isolates (direct store calls, no isolate cache) share one token request', async () => {
    const { key, stub } = await store('multi');
    const results = await Promise.all(Array.from({ length: 100 }, () => stub.getToken(key)));
    expect(results.every((r) => r.kind === 'token')).toBe(true);
    expect(new Set(results.map((r) => (r.kind === 'token' ? r.token : '')))).toHaveProperty('size', 1);
    expect(await tokenHits('multi')).toHaveLength(1);
  });

  it('a warm request makes no Durable Object call and no token request: its only subrequest is the API call', async () => {
    expect((await post('/t/warm', {})).status).toBe(200);
    const store = countStoreCalls('warm');
    try {
      const before = (await tokenHits('warm')).length;
      for (let i = 0; i < 20; i++) expect((await post('/t/warm', { i })).status).toBe(200);
      expect(store.calls).toBe(0);
      expect((await tokenHits('warm')).length).toBe(before);
      expect(await apiHits('warm')).toHaveLength(21);
      // The counter does count: a cold isolate asks the store.
      clearIsolateCache();
      expect((await post('/t/warm', {})).status).toBe(200);
      expect(store.calls).toBe(1);
    } finally {
      store.restore();
    }
  });
});

describe('egress', () => {
  it('an upstream with a binding egress sends its token request and its API calls through the binding', async () => {
    const first = await post('/t/viabinding', {});
    expect(first.status, first.text).toBe(200);
    const all = [...(await tokenHits('viabinding')), ...(await apiHits('viabinding'))];
    expect(all).toHaveLength(2);
    for (const hit of all) expect(hit.headers['x-standin-via']).toBe('binding');
    // A direct upstream does not.
    expect((await post('/t/direct', {})).status).toBe(200);
    const direct = [...(await tokenHits('direct')), ...(await apiHits('direct'))];
    expect(direct).toHaveLength(2);
    expect(direct.every((h) => h.headers['x-standin-via'] === undefined)).toBe(true);
  });
});

describe('a failing token store', () => {
  it('a Durable Object call that throws becomes 503 + Retry-After, not a 500', async () => {
    const failing = failStoreCalls('storedown');
    try {
      const res = await post('/t/storedown', {});
      expect(res.status).toBe(503);
      expect(res.headers.get('Retry-After')).toBe('1');
      expect(res.json()).toMatchObject({ title: 'Token store unavailable' });
      expect(await apiHits('storedown')).toHaveLength(0);
    } finally {
      failing.restore();
    }
  });
});

describe('persistence', () => {
  it('after the Durable Object is evicted (and the isolate cache is gone) no new token request is made', async () => {
    expect((await post('/t/evict', {})).status).toBe(200);
    const [first] = await tokenHits('evict');
    const { stub } = await store('evict');
    await evictDurableObject(stub);
    clearIsolateCache();
    const again = await post('/t/evict', {});
    expect(again.status).toBe(200);
    expect(await tokenHits('evict')).toHaveLength(1);
    const api = await apiHits('evict');
    expect(api[1]!.headers.authorization).toBe(api[0]!.headers.authorization);
    expect(first).toBeDefined();
  });
});

describe('compare-and-swap invalidation', () => {
  it('100 concurrent rejection reports of the same token make one token request', async () => {
    const { key, stub } = await store('cas');
    const first = await stub.getToken(key);
    if (first.kind !== 'token') throw new Error('no token');
    const results = await Promise.all(Array.from({ length: 100 }, () => stub.reportRejected({ ...key, token: first.token })));
    expect(await tokenHits('cas')).toHaveLength(2); // the first token, then exactly one replacement
    const tokens = new Set(results.map((r) => (r.kind === 'token' ? r.token : 'failed')));
    expect(tokens.size).toBe(1);
    expect(tokens.has(first.token)).toBe(false);
    // Reporting the old token again changes nothing: it is no longer current.
    await stub.reportRejected({ ...key, token: first.token });
    expect(await tokenHits('cas')).toHaveLength(2);
  });

  it('100 concurrent requests whose token the API rejects recover with one new token', async () => {
    expect((await post('/t/retry', {})).status).toBe(200);
    await revoke('retry');
    const answers = await Promise.all(Array.from({ length: 100 }, (_, i) => post('/t/retry', { i })));
    expect(answers.map((a) => a.status)).toEqual(Array(100).fill(200));
    expect(await tokenHits('retry')).toHaveLength(2);
  });
});
