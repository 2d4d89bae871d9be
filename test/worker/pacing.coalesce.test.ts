/**
 * Pacing and coalescing (issue 15), in workerd against the coding stand-in (test/standin/coder.ts),
 * which records when each call arrives and refuses what the real service refuses. The upstreams and
 * routes are in test/fixtures/pacing.ts.
 */
import { describe, expect, it } from 'vitest';
import { codesFor, type CoderCall, type CoderLimits } from '../standin/coder';
import { SECRETS } from '../fixtures/config';
import { apiHits, call, post, setApi } from '../helpers';

const CONTROL = 'http://control.standin';
const ABS: CoderLimits = { perSecond: 1, perDay: 1000, maxRecords: 300, maxChars: 100 };

async function coder(host: string, limits: CoderLimits): Promise<void> {
  await fetch(`${CONTROL}/coder?host=${host}.test`, { method: 'DELETE' });
  await setApi(host, { coder: limits });
}

async function coderCalls(host: string): Promise<CoderCall[]> {
  return (await fetch(`${CONTROL}/coder?host=${host}.test`)).json();
}

/** The least time between two accepted calls' arrivals, in ms (Infinity for fewer than two). */
function closest(calls: CoderCall[]): number {
  const at = calls.filter((c) => c.status !== 429).map((c) => c.at).sort((a, b) => a - b);
  let least = Infinity;
  for (let i = 1; i < at.length; i++) least = Math.min(least, at[i]! - at[i - 1]!);
  return least;
}

describe('coalescing through a 1-call-per-second API', () => {
  it('100 submissions at once: at most 1 call per second, each submitter gets its own record’s codes, within 2 s', async () => {
    await coder('pcode', ABS);
    const texts = Array.from({ length: 100 }, (_, i) => `occupation number ${i} ${crypto.randomUUID().slice(0, 8)}`);
    const started = Date.now();
    const answers = await Promise.all(texts.map((t) => post('/pcode/code/occp', { occp_text: t, tasks_text: 'tasks' })));
    const elapsed = Date.now() - started;
    for (const [i, a] of answers.entries()) {
      expect(a.status, a.text).toBe(200);
      // The shape a single call returns (no record id of ours), with this record's own codes.
      expect(a.json()).toEqual({ codeStatus: 'successful', input: { occp_text: texts[i], tasks_text: 'tasks' }, result: codesFor(texts[i]!, 'tasks') });
    }
    const calls = await coderCalls('pcode');
    expect(calls.every((c) => c.status === 200), JSON.stringify(calls)).toBe(true);
    expect(calls.reduce((n, c) => n + c.records, 0)).toBe(100);
    expect(calls.length).toBeLessThanOrEqual(3);
    expect(closest(calls)).toBeGreaterThanOrEqual(1000);
    expect(elapsed).toBeLessThan(2000 + 1000); // the test's own overhead on a loaded machine: see the bench for the number
  });

  it('100 submissions over 3 s: several calls, each at least 1 s after the last, each submitter its own codes', async () => {
    await coder('pcode', ABS);
    const texts = Array.from({ length: 100 }, (_, i) => `spread job ${i} ${crypto.randomUUID().slice(0, 8)}`);
    const answers = await Promise.all(
      texts.map(async (t, i) => {
        await new Promise((r) => setTimeout(r, i * 30));
        return post('/pcode/code/occp', { occp_text: t });
      }),
    );
    for (const [i, a] of answers.entries()) {
      expect(a.status, a.text).toBe(200);
      expect((a.json() as { result: unknown }).result).toEqual(codesFor(texts[i]!));
    }
    const calls = await coderCalls('pcode');
    expect(calls.every((c) => c.status === 200), JSON.stringify(calls)).toBe(true);
    expect(calls.length).toBeGreaterThanOrEqual(3);
    expect(calls.reduce((n, c) => n + c.records, 0)).toBe(100);
    expect(closest(calls)).toBeGreaterThanOrEqual(1000);
  });

  it('a record id sent by the client is not trusted: the Worker’s own id matches answers to submitters', async () => {
    await coder('pcode', ABS);
    const [a, b] = await Promise.all([
      post('/pcode/raw/occp', { record: { occp_text: 'nurse', recordId: 'same' }, numberOfSuggestions: 3 }),
      post('/pcode/raw/occp', { record: { occp_text: 'baker', recordId: 'same' }, numberOfSuggestions: 3 }),
    ]);
    expect(a.status, a.text).toBe(200);
    expect(b.status, b.text).toBe(200);
    expect((a.json() as { result: unknown }).result).toEqual(codesFor('nurse'));
    expect((b.json() as { result: unknown }).result).toEqual(codesFor('baker'));
    const sent = (await apiHits('pcode')).at(-1)!;
    const ids = (JSON.parse(sent.body) as { records: Array<{ recordId: string }> }).records.map((r) => r.recordId);
    expect(ids).toHaveLength(2);
    expect(ids).not.toContain('same');
    expect(new Set(ids).size).toBe(2);
  });
});

describe('one bad record never fails the others', () => {
  it('a malformed record among 50 valid ones: the 50 get their codes, it gets 422', async () => {
    await coder('pbad', { perSecond: 20, maxRecords: 300, maxChars: 100 });
    const texts = Array.from({ length: 51 }, (_, i) => (i === 17 ? 'MALFORMED' : `valid job ${i}`));
    const answers = await Promise.all(texts.map((t) => post('/pbad/code/occp', { occp_text: t })));
    for (const [i, a] of answers.entries()) {
      if (i === 17) {
        expect(a.status, a.text).toBe(422);
        expect(a.json()).toMatchObject({ reason: 'record-rejected' });
      } else {
        expect(a.status, a.text).toBe(200);
        expect((a.json() as { result: unknown }).result).toEqual(codesFor(texts[i]!));
      }
    }
    const calls = await coderCalls('pbad');
    // Halving 51 records down to the one refused: one refused call per level, every good half coded once.
    expect(calls.filter((c) => c.status === 400).length).toBeLessThanOrEqual(7);
    expect(calls.filter((c) => c.status === 200).reduce((n, c) => n + c.records, 0)).toBe(50);
    expect(closest(calls)).toBeGreaterThanOrEqual(50);
  });

  it('a record over the cross-field limit is refused before it joins a batch: 422 naming the field, nothing sent', async () => {
    await coder('plimit', ABS);
    const before = (await coderCalls('plimit')).length;
    const a = await post('/plimit/code/occp', { occp_text: 'x'.repeat(60), tasks_text: 'y'.repeat(41) });
    expect(a.status, a.text).toBe(422);
    expect(a.json()).toMatchObject({ reason: 'invalid-submission', errors: [{ field: 'occp_text', message: expect.stringContaining('together are longer than 100 characters (101)') }] });
    // Exactly 100 (counted in characters, not bytes) is fine.
    const ok = await post('/plimit/code/occp', { occp_text: 'é'.repeat(60), tasks_text: 'y'.repeat(40) });
    expect(ok.status, ok.text).toBe(200);
    const calls = await coderCalls('plimit');
    expect(calls.length - before).toBe(1);
    expect(calls.at(-1)!.records).toBe(1);
  });
});

describe('the daily quota', () => {
  it('spent: 429 with the time it resets, and nothing is sent', async () => {
    await coder('pquota', { perSecond: 20, maxRecords: 300, maxChars: 100 });
    for (let i = 0; i < 2; i++) expect((await post('/pquota/code/occp', { occp_text: `job ${i}` })).status).toBe(200);
    const spent = await post('/pquota/code/occp', { occp_text: 'one too many' });
    expect(spent.status, spent.text).toBe(429);
    const now = new Date();
    const midnight = Date.UTC(now.getUTCFullYear(), now.getUTCMonth(), now.getUTCDate() + 1);
    expect(spent.json()).toMatchObject({ reason: 'quota-exhausted', resets_at: new Date(midnight).toISOString() });
    const retryAfter = Number(spent.headers.get('Retry-After'));
    expect(Math.abs(retryAfter - (midnight - Date.now()) / 1000)).toBeLessThan(5);
    expect((await coderCalls('pquota')).length).toBe(2);
  });
});

describe('/status', () => {
  type Pacing = { requests_per_second: number; calls_last_minute: number; calls_today: number; callers_waiting: number; batches_sent: number; quota: { per_day: number; left: number; resets_at: string }; records_per_batch: { mean: number; max: number }; wait_ms: { p50: number | null; p99: number | null } };
  const pacingOf = async (): Promise<Pacing> => {
    const res = await call('/status?upstream=pcode', { origin: null, headers: { Accept: 'application/json', Authorization: `Bearer ${SECRETS.TEST_STATUS_TOKEN}` } });
    expect(res.status, res.text).toBe(200);
    return (res.json() as { credential_sets: Array<{ pacing: Pacing }> }).credential_sets[0]!.pacing;
  };

  it('per credential set: calls in the last minute and today, quota left and its reset, waiting, batches, records per batch, wait p50/p99', async () => {
    await coder('pcode', ABS);
    const before = await pacingOf();
    await Promise.all(Array.from({ length: 30 }, (_, i) => post('/pcode/code/occp', { occp_text: `status job ${i}` })));
    const p = await pacingOf();
    const calls = (await coderCalls('pcode')).length;
    expect(calls).toBeGreaterThanOrEqual(1);
    expect(p.requests_per_second).toBe(1);
    expect(p.callers_waiting).toBe(0);
    expect(p.batches_sent - before.batches_sent).toBe(calls);
    expect(p.calls_today - before.calls_today).toBe(calls);
    expect(p.calls_last_minute).toBeGreaterThanOrEqual(calls);
    expect(p.quota.per_day).toBe(1000);
    expect(p.quota.left).toBe(1000 - p.calls_today);
    const midnight = new Date();
    expect(p.quota.resets_at).toBe(new Date(Date.UTC(midnight.getUTCFullYear(), midnight.getUTCMonth(), midnight.getUTCDate() + 1)).toISOString());
    expect(p.records_per_batch.max).toBeGreaterThanOrEqual(Math.ceil(30 / calls));
    expect(p.wait_ms.p50).not.toBeNull();
    expect(p.wait_ms.p99!).toBeGreaterThanOrEqual(p.wait_ms.p50!);
    expect(p.wait_ms.p99!).toBeLessThan(3000);
  });
});
