/**
 * The demo coding service (demo/): the ABS Coding Service stand-in that `npm start` runs beside the
 * Worker. Each server listens on a free port on 127.0.0.1 and has its own injected clock, so "an hour
 * later" is a variable change, not a wait.
 */
import { spawn } from 'node:child_process';
import { existsSync, readFileSync } from 'node:fs';
import type { AddressInfo } from 'node:net';
import type { Server } from 'node:http';
import { fileURLToPath } from 'node:url';
import { afterEach, describe, expect, it } from 'vitest';
import { createCodingService } from '../../demo/coding-service.ts';
import type { ApiLimitEvent, CodingServiceOptions, CodingServiceStats, TokenRequestEvent } from '../../demo/coding-service.ts';
import { parseOccupations } from '../../demo/matcher.ts';

const CLIENT_ID = 'demo-client';
const SECRET = 'p@ss:w/rd+%';
const T0 = Date.parse('2026-03-02T09:00:00Z');
const HOUR_MS = 3600 * 1000;

/** Records the bundled sample codes, and the codes each may be given first. */
const KNOWN: [{ occp_text: string; tasks_text?: string }, string[]][] = [
  [{ occp_text: 'software developer' }, ['261312', '261313']],
  [{ occp_text: 'registered nurse', tasks_text: 'care for patients in hospital ward' }, ['254418', '254499']],
  [{ occp_text: 'truck driver' }, ['733111']],
  [{ occp_text: 'Primary School Teacher' }, ['241213']],
  [{ occp_text: 'chef' }, ['351311']],
  [{ occp_text: 'electrician' }, ['341111']],
  [{ occp_text: 'accountant' }, ['221111']],
  [{ occp_text: 'civil engineer', tasks_text: 'design roads and bridges' }, ['233211']],
  [{ occp_text: 'IT support', tasks_text: 'help desk, reset passwords' }, ['313112']],
  [{ occp_text: '', tasks_text: 'drive a semi trailer hauling interstate freight' }, ['733111']],
  ];

interface TokenAnswer {
  access_token: string;
  expires_in: number;
  token_type: string;
}
interface CodeAnswer {
  recordId: string;
  codeStatus: 'Coded' | 'Uncoded';
  input: { occp_text: string; tasks_text?: string };
  result: { codeCategory: string; codeLabel: string; codeConfidence: number }[];
}

const servers: Server[] = [];
afterEach(async () => {
  for (const server of servers.splice(0)) {
    server.closeAllConnections();
    await new Promise((resolve) => server.close(resolve));
  }
});

/** A demo service on a free port, with a clock the test moves by hand. */
async function start(overrides: Partial<CodingServiceOptions> = {}) {
  const clock = { now: T0 };
  const server = createCodingService({ clientId: CLIENT_ID, clientSecret: SECRET, now: () => clock.now, ...overrides });
  servers.push(server);
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  const base = `http://127.0.0.1:${(server.address() as AddressInfo).port}`;

  /** `null` sends no Authorization header; `undefined` sends the right credentials. */
  const requestToken = (authorization: string | null = basic(CLIENT_ID, SECRET), body = 'grant_type=client_credentials') =>
    fetch(`${base}/oauth2/token`, {
      method: 'POST',
      headers: { 'Content-Type': 'application/x-www-form-urlencoded', ...(authorization === null ? {} : { Authorization: authorization }) },
      body,
    });
  const token = async () => {
    const res = await requestToken();
    expect(res.status).toBe(200);
    return ((await res.json()) as TokenAnswer).access_token;
  };
  const code = (authorization: string, body: unknown, topic = 'occp') =>
    fetch(`${base}/v1/topics/${topic}/code`, {
      method: 'POST',
      headers: { 'Content-Type': 'application/json', Authorization: authorization },
      body: typeof body === 'string' ? body : JSON.stringify(body),
    });
  const stats = async () => (await (await fetch(`${base}/__stats`)).json()) as CodingServiceStats;
  return { base, clock, requestToken, token, code, stats };
}

/** RFC 6749 §2.3.1: form-urlencode id and secret, then join and base64 (what the Worker sends). */
function basic(id: string, secret: string): string {
  const enc = (s: string) => new URLSearchParams({ s }).toString().slice(2);
  return `Basic ${Buffer.from(`${enc(id)}:${enc(secret)}`).toString('base64')}`;
}

/** The same credentials without the form-urlencoding step (what `echo -n id:secret | base64` gives). */
function basicRaw(id: string, secret: string): string {
  return `Basic ${Buffer.from(`${id}:${secret}`).toString('base64')}`;
}

describe('token endpoint', () => {
  it('issues a token for HTTP Basic client credentials and grant_type=client_credentials', async () => {
    const svc = await start();
    const res = await svc.requestToken();
    expect(res.status).toBe(200);
    expect(res.headers.get('content-type')).toMatch(/^application\/json/);
    expect(res.headers.get('cache-control')).toBe('no-store');
    const body = (await res.json()) as TokenAnswer;
    expect(body).toEqual({ access_token: expect.any(String), expires_in: 3600, token_type: 'Bearer' });
    expect(body.access_token.length).toBeGreaterThanOrEqual(32);
  });

  it('decodes a form-urlencoded secret with special characters (RFC 6749 §2.3.1)', async () => {
    const svc = await start();
    expect(basic(CLIENT_ID, SECRET)).not.toBe(basicRaw(CLIENT_ID, SECRET));
    expect((await svc.requestToken(basic(CLIENT_ID, SECRET))).status).toBe(200);
  });

  it('also accepts the secret base64-encoded as is, as the ABS documentation shows', async () => {
    const svc = await start();
    expect((await svc.requestToken(basicRaw(CLIENT_ID, SECRET))).status).toBe(200);
  });

  it.each([
    ['a wrong secret', basic(CLIENT_ID, 'p@ss:w/rd+')],
    ['a wrong client id', basic('someone-else', SECRET)],
    ['no Authorization header', null],
    ['a non-Basic scheme', `Bearer ${SECRET}`],
    ['base64 without a colon', `Basic ${Buffer.from('demo-client').toString('base64')}`],
  ])('answers 401 invalid_client for %s', async (_, authorization) => {
    const svc = await start();
    const res = await svc.requestToken(authorization);
    expect(res.status).toBe(401);
    expect(await res.json()).toEqual({ error: 'invalid_client' });
  });

  it('answers 400 unsupported_grant_type for another grant type', async () => {
    const svc = await start();
    const res = await svc.requestToken(undefined, 'grant_type=password&username=a&password=b');
    expect(res.status).toBe(400);
    expect(await res.json()).toEqual({ error: 'unsupported_grant_type' });
  });

  it('answers 400 invalid_request when grant_type is missing or the body is not a form', async () => {
    const svc = await start();
    const missing = await svc.requestToken(undefined, 'scope=x');
    expect(missing.status).toBe(400);
    expect(await missing.json()).toEqual({ error: 'invalid_request' });

    const json = await fetch(`${svc.base}/oauth2/token`, {
      method: 'POST',
      headers: { 'Content-Type': 'application/json', Authorization: basic(CLIENT_ID, SECRET) },
      body: JSON.stringify({ grant_type: 'client_credentials' }),
    });
    expect(json.status).toBe(400);
    expect(await json.json()).toEqual({ error: 'invalid_request' });
  });

  it('refuses a second token request within the hour with 403 "Too many token requests"', async () => {
    const svc = await start();
    await svc.token();
    svc.clock.now += 59 * 60 * 1000;
    const res = await svc.requestToken();
    expect(res.status).toBe(403);
    expect(await res.json()).toEqual({ message: 'Too many token requests' });
    expect(res.headers.get('retry-after')).toBe('60');
  });

  it('issues a new token an hour after the last one issued', async () => {
    const svc = await start();
    const first = await svc.token();
    svc.clock.now += HOUR_MS;
    const second = await svc.token();
    expect(second).not.toBe(first);
  });

  it('counts the hour from the last token issued, not from the last refused request', async () => {
    const svc = await start();
    await svc.token();
    svc.clock.now += 50 * 60 * 1000;
    expect((await svc.requestToken()).status).toBe(403);
    svc.clock.now += 10 * 60 * 1000;
    expect((await svc.requestToken()).status).toBe(200);
  });

  it('honours a custom lifetime and rate window', async () => {
    const svc = await start({ tokenLifetimeSeconds: 300, tokenRateWindowSeconds: 60 });
    const res = await svc.requestToken();
    expect(((await res.json()) as TokenAnswer).expires_in).toBe(300);
    svc.clock.now += 60 * 1000;
    expect((await svc.requestToken()).status).toBe(200);
  });

  it('reports each request to onTokenRequest without the token', async () => {
    const events: TokenRequestEvent[] = [];
    const svc = await start({ onTokenRequest: (e) => events.push(e) });
    const token = await svc.token();
    await svc.requestToken();
    await svc.requestToken(basic(CLIENT_ID, 'wrong'));
    expect(events.map((e) => e.outcome)).toEqual(['issued', 'refused', 'rejected']);
    expect(events[0]).toEqual({ outcome: 'issued', clientId: CLIENT_ID, at: T0, expiresAt: T0 + HOUR_MS });
    expect(JSON.stringify(events)).not.toContain(token);
  });

  it('answers 405 to other methods', async () => {
    const svc = await start();
    const res = await fetch(`${svc.base}/oauth2/token`);
    expect(res.status).toBe(405);
    expect(res.headers.get('allow')).toBe('POST');
  });
});

describe('API authorisation', () => {
  it('accepts the raw token in Authorization', async () => {
    const svc = await start();
    const token = await svc.token();
    const res = await fetch(`${svc.base}/v1/topics`, { headers: { Authorization: token } });
    expect(res.status).toBe(200);
  });

  it('rejects the token with a "Bearer " prefix with 401, as the real API does', async () => {
    const svc = await start();
    const token = await svc.token();
    const res = await fetch(`${svc.base}/v1/topics`, { headers: { Authorization: `Bearer ${token}` } });
    expect(res.status).toBe(401);
    expect(await res.json()).toEqual({ message: 'Unauthorized' });
  });

  it('answers 401 Unauthorized for a missing or unknown token', async () => {
    const svc = await start();
    const missing = await fetch(`${svc.base}/v1/topics`);
    expect(missing.status).toBe(401);
    expect(await missing.json()).toEqual({ message: 'Unauthorized' });
    const unknown = await svc.code('not-a-token', { record: { occp_text: 'chef' } });
    expect(unknown.status).toBe(401);
  });

  it('keeps a token working for its whole hour, then answers 403 "The incoming token has expired"', async () => {
    const svc = await start();
    const token = await svc.token();
    svc.clock.now += HOUR_MS - 1000;
    expect((await svc.code(token, { record: { occp_text: 'chef' } })).status).toBe(200);
    svc.clock.now += 1000;
    const res = await svc.code(token, { record: { occp_text: 'chef' } });
    expect(res.status).toBe(403);
    expect(await res.json()).toEqual({ message: 'The incoming token has expired' });
  });

  it('keeps the old token working until it expires after a new one is issued', async () => {
    const svc = await start({ tokenRateWindowSeconds: 60 });
    const first = await svc.token();
    svc.clock.now += 60 * 1000;
    const second = await svc.token();
    for (const t of [first, second]) {
      expect((await fetch(`${svc.base}/v1/topics`, { headers: { Authorization: t } })).status).toBe(200);
      svc.clock.now += 1000; // one call a second
    }
  });
});

describe('topics', () => {
  it('lists the occupation topic', async () => {
    const svc = await start();
    const res = await fetch(`${svc.base}/v1/topics`, { headers: { Authorization: await svc.token() } });
    expect(res.headers.get('content-type')).toMatch(/^application\/json/);
    expect(await res.json()).toContainEqual({ topic: 'occp', name: 'Occupation (ANZSCO 2022)' });
  });

  it('answers 404 for an unknown topic', async () => {
    const svc = await start();
    const res = await svc.code(await svc.token(), { record: { occp_text: 'chef' } }, 'nope');
    expect(res.status).toBe(404);
    expect(((await res.json()) as { message: string }).message).toContain('nope');
  });
});

describe('coding', () => {
  it.each(KNOWN)('codes %j to %j', async (record, expected) => {
    const svc = await start();
    const res = await svc.code(await svc.token(), { record });
    expect(res.status).toBe(200);
    const body = (await res.json()) as CodeAnswer;
    expect(body.codeStatus).toBe('Coded');
    expect(expected).toContain(body.result[0]?.codeCategory);
  });

  it('answers in the ABS shape: record id, status, the input echoed, suggestions best first', async () => {
    const svc = await start();
    const record = { occp_text: 'registered nurse', tasks_text: 'care for patients in hospital ward' };
    const res = await svc.code(await svc.token(), { record });
    expect(res.headers.get('content-type')).toMatch(/^application\/json/);
    const body = (await res.json()) as CodeAnswer;
    expect(body.recordId).toMatch(/\S/);
    expect(body.input).toEqual(record);
    expect(body.result).toHaveLength(5);
    const confidences = body.result.map((r) => r.codeConfidence);
    for (const c of confidences) expect(c > 0 && c <= 1).toBe(true);
    expect([...confidences].sort((a, b) => b - a)).toEqual(confidences);
    expect(body.result[0]).toEqual({ codeCategory: expect.stringMatching(/^2544\d\d$/), codeLabel: expect.stringMatching(/^Registered Nurse/), codeConfidence: expect.any(Number) });
  });

  it('gives an exact title full confidence', async () => {
    const svc = await start();
    const body = (await (await svc.code(await svc.token(), { record: { occp_text: 'Developer Programmer' } })).json()) as CodeAnswer;
    expect(body.result[0]).toEqual({ codeCategory: '261312', codeLabel: 'Developer Programmer', codeConfidence: 1 });
  });

  it.each([
    [undefined, 5],
    [3, 3],
    [0, 1],
    [-4, 1],
    [50, 10],
    [2.7, 2],
  ])('numberOfSuggestions %j gives %i suggestions', async (n, expected) => {
    const svc = await start();
    const res = await svc.code(await svc.token(), { record: { occp_text: 'nurse' }, numberOfSuggestions: n });
    expect(((await res.json()) as CodeAnswer).result).toHaveLength(expected);
  });

  it('answers Uncoded with no suggestions when no word is known', async () => {
    const svc = await start();
    const res = await svc.code(await svc.token(), { record: { occp_text: 'xyzzy plugh', tasks_text: 'the and of' } });
    expect(res.status).toBe(200);
    const body = (await res.json()) as CodeAnswer;
    expect(body.codeStatus).toBe('Uncoded');
    expect(body.result).toEqual([]);
  });

  it.each([
    ['not JSON', '{"record":', 'must be JSON'],
    ['an array', [], 'JSON object'],
    ['no record', { occp_text: 'chef' }, 'Missing "record"'],
    ['a string record', { record: 'chef' }, '"record" must be an object'],
    ['occp_text not a string', { record: { occp_text: 42 } }, '"record.occp_text" must be a string'],
    ['tasks_text not a string', { record: { occp_text: 'chef', tasks_text: ['cook'] } }, '"record.tasks_text" must be a string'],
    ['an unknown record field', { record: { occp_text: 'chef', occupation: 'chef' } }, '"occupation"'],
    ['nothing to code', { record: { occp_text: '  ', tasks_text: '' } }, 'nothing to code'],
    ['numberOfSuggestions a string', { record: { occp_text: 'chef' }, numberOfSuggestions: '5' }, '"numberOfSuggestions" must be a number'],
  ])('answers 400 saying what is wrong for %s', async (_, body, message) => {
    const svc = await start();
    const res = await svc.code(await svc.token(), body);
    expect(res.status).toBe(400);
    expect(res.headers.get('content-type')).toMatch(/^application\/json/);
    expect(((await res.json()) as { message: string }).message).toContain(message);
  });

  it('answers 413 for a body over 1 MiB', async () => {
    const svc = await start();
    const res = await svc.code(await svc.token(), { record: { occp_text: 'x'.repeat(1100 * 1024) } });
    expect(res.status).toBe(413);
  });
});

describe('stats and unknown paths', () => {
  it('counts token requests, tokens issued, refusals and API calls, and never shows the token', async () => {
    const svc = await start();
    expect(await svc.stats()).toEqual({
      tokenRequests: 0,
      tokensIssued: 0,
      tokenRequestsRefused: 0,
      apiCalls: 0,
      apiCallsAccepted: 0,
      apiCallsRefusedByRate: 0,
      apiCallsRefusedByQuota: 0,
      recordsCoded: 0,
      singleRecordCalls: 0,
      batches: { count: 0, maxRecords: 0, meanRecords: null },
      limits: { requestsPerSecond: 1, dailyQuota: 1000, quotaTimeZone: 'UTC' },
      quotaToday: { used: 0, remaining: 1000, resetsAt: '2026-03-03T00:00:00.000Z' },
      acceptedCallTimes: [],
      lastTokenIssuedAt: null,
    });

    const token = await svc.token();
    await svc.requestToken();
    await svc.requestToken();
    await svc.requestToken(basic(CLIENT_ID, 'wrong'));
    await svc.code(token, { record: { occp_text: 'chef' } });
    svc.clock.now += 1000;
    await svc.code(token, { record: { occp_text: 'baker' } });
    await fetch(`${svc.base}/v1/topics`);

    const res = await fetch(`${svc.base}/__stats`);
    expect(res.headers.get('content-type')).toMatch(/^application\/json/);
    const text = await res.text();
    expect(text).not.toContain(token);
    expect(JSON.parse(text)).toMatchObject({
      tokenRequests: 4,
      tokensIssued: 1,
      tokenRequestsRefused: 2,
      apiCalls: 3,
      apiCallsAccepted: 2,
      recordsCoded: 2,
      singleRecordCalls: 2,
      lastTokenIssuedAt: new Date(T0).toISOString(),
    });
  });

  it('answers 404 JSON for an unknown path', async () => {
    const svc = await start();
    const res = await fetch(`${svc.base}/v2/whatever`);
    expect(res.status).toBe(404);
    expect(res.headers.get('content-type')).toMatch(/^application\/json/);
    expect(await res.json()).toEqual({ message: 'Not Found' });
  });
});

/** `n` records for a batch, cycling through KNOWN, with ids that are not their positions. */
function batchOf(n: number) {
  return Array.from({ length: n }, (_, i) => {
    const [record] = KNOWN[i % KNOWN.length]!;
    return { recordId: `rec-${(i * 7919) % 100_003}`, ...record };
  });
}

describe('small batches (up to 300 records, all or nothing)', () => {
  it('codes a 300-record batch: an array in the same order, each record with its own recordId, input and result', async () => {
    const svc = await start();
    const token = await svc.token();
    const records = batchOf(300);
    const res = await svc.code(token, { records, numberOfSuggestions: 3 });
    expect(res.status).toBe(200);
    expect(res.headers.get('content-type')).toMatch(/^application\/json/);
    const body = (await res.json()) as CodeAnswer[];
    expect(body).toHaveLength(300);
    body.forEach((answer, i) => {
      const { recordId, ...input } = records[i]!;
      const expected = KNOWN[i % KNOWN.length]![1];
      expect(answer.recordId).toBe(recordId);
      expect(answer.input).toEqual(input);
      expect(answer.codeStatus).toBe('Coded');
      expect(answer.result.length).toBeLessThanOrEqual(3);
      expect(expected).toContain(answer.result[0]?.codeCategory);
    });

    // Each record's result is the one it gets alone (same matcher, nothing mixed between records).
    const byId = new Map(body.map((a) => [a.recordId, a]));
    for (const [i, [record]] of KNOWN.entries()) {
      svc.clock.now += 1000;
      const single = (await (await svc.code(token, { record, numberOfSuggestions: 3 })).json()) as CodeAnswer;
      expect(byId.get(records[i]!.recordId)?.result).toEqual(single.result);
    }
  });

  it('answers a batch of one with an array of one', async () => {
    const svc = await start();
    const res = await svc.code(await svc.token(), { records: [{ recordId: 'only', occp_text: 'chef' }] });
    expect(res.status).toBe(200);
    const body = (await res.json()) as CodeAnswer[];
    expect(body).toEqual([{ recordId: 'only', codeStatus: 'Coded', input: { occp_text: 'chef' }, result: expect.any(Array) }]);
    expect(body[0]?.result[0]?.codeCategory).toBe('351311');
  });

  it('refuses 301 records with 400, coding none', async () => {
    const svc = await start();
    const res = await svc.code(await svc.token(), { records: batchOf(301) });
    expect(res.status).toBe(400);
    const { message } = (await res.json()) as { message: string };
    expect(message).toContain('301');
    expect(message).toContain('at most 300');
    expect((await svc.stats()).recordsCoded).toBe(0);
  });

  const bad: [string, Record<string, unknown>, string][] = [
    ['no occp_text', { recordId: 'x', tasks_text: 'cook' }, '"records[150].occp_text" must be a string'],
    ['a number for occp_text', { recordId: 'x', occp_text: 7 }, '"records[150].occp_text" must be a string'],
    ['a non-string tasks_text', { recordId: 'x', occp_text: 'chef', tasks_text: null }, '"records[150].tasks_text" must be a string'],
    ['an unknown field', { recordId: 'x', occp_text: 'chef', industry: 'food' }, '"industry"'],
    ['over 100 characters', { recordId: 'x', occp_text: 'c'.repeat(50), tasks_text: 't'.repeat(51) }, '101 characters'],
    ['no recordId', { occp_text: 'chef' }, '"records[150].recordId" must be a non-empty string'],
    ['a number for recordId', { recordId: 150, occp_text: 'chef' }, '"records[150].recordId" must be a non-empty string'],
    ['the recordId of record 3', { recordId: 'REPEATED', occp_text: 'chef' }, 'repeats records[3]'],
    ['nothing to code', { recordId: 'x', occp_text: ' ' }, 'nothing to code'],
  ];
  it.each(bad)('refuses a whole batch of 300 with 400 when record 150 has %s, coding none', async (_, record, message) => {
    const svc = await start();
    const records: Record<string, unknown>[] = batchOf(300);
    records[3] = { ...records[3], recordId: 'REPEATED' };
    records[150] = record;
    const res = await svc.code(await svc.token(), { records });
    expect(res.status).toBe(400);
    const body = (await res.json()) as { message: string };
    expect(body.message).toContain(message);
    expect(body.message).toContain('the whole batch is refused');
    const stats = await svc.stats();
    expect(stats.recordsCoded).toBe(0);
    expect(stats.batches.count).toBe(0);
  });

  it.each([
    ['"records" not an array', { records: { recordId: 'a', occp_text: 'chef' } }, '"records" must be an array'],
    ['"records" empty', { records: [] }, 'nothing to code'],
    ['both "record" and "records"', { record: { occp_text: 'chef' }, records: [{ recordId: 'a', occp_text: 'chef' }] }, 'not both'],
    ['a record given a recordId', { record: { recordId: 'a', occp_text: 'chef' } }, '"recordId"'],
  ])('answers 400 for %s', async (_, body, message) => {
    const svc = await start();
    const res = await svc.code(await svc.token(), body);
    expect(res.status).toBe(400);
    expect(((await res.json()) as { message: string }).message).toContain(message);
  });
});

describe('100 characters for occp_text and tasks_text together', () => {
  it.each([
    ['100 in occp_text alone', 200, { occp_text: 'a'.repeat(100) }],
    ['101 in occp_text alone', 400, { occp_text: 'a'.repeat(101) }],
    ['60 + 40', 200, { occp_text: 'a'.repeat(60), tasks_text: 'b'.repeat(40) }],
    ['60 + 41', 400, { occp_text: 'a'.repeat(60), tasks_text: 'b'.repeat(41) }],
    ['0 + 101', 400, { occp_text: '', tasks_text: 'b'.repeat(101) }],
    // Characters, not UTF-16 units: 100 emoji are 200 units.
    ['50 emoji + 50 letters', 200, { occp_text: '🍳'.repeat(50), tasks_text: 'c'.repeat(50) }],
    ['100 emoji', 200, { occp_text: '🍳'.repeat(100) }],
    ['101 emoji', 400, { occp_text: '🍳'.repeat(101) }],
  ])('a single record with %s → %i', async (_, status, record) => {
    const svc = await start();
    const res = await svc.code(await svc.token(), { record });
    expect(res.status).toBe(status);
    if (status === 400) expect(((await res.json()) as { message: string }).message).toMatch(/\d+ characters together; the limit is 100/);
  });

  it('the same rule for each record of a batch: 100 together passes, 101 refuses the batch', async () => {
    const svc = await start();
    const token = await svc.token();
    const at100 = [{ recordId: 'a', occp_text: 'chef '.repeat(12), tasks_text: 'cook '.repeat(8) }];
    expect(at100[0]!.occp_text.length + at100[0]!.tasks_text.length).toBe(100);
    expect((await svc.code(token, { records: at100 })).status).toBe(200);
    svc.clock.now += 1000;
    const at101 = [{ ...at100[0]!, tasks_text: `${at100[0]!.tasks_text}x` }];
    expect((await svc.code(token, { records: at101 })).status).toBe(400);
  });
});

/** A call to `GET /v1/topics` with this token, at the service's current clock; its status. */
async function topics(svc: Awaited<ReturnType<typeof start>>, token: string): Promise<number> {
  return (await fetch(`${svc.base}/v1/topics`, { headers: { Authorization: token } })).status;
}

describe('one API call per second', () => {
  it('refuses a second call within the second with 429 saying which limit; one a full second later passes', async () => {
    const svc = await start();
    const token = await svc.token();
    expect((await svc.code(token, { record: { occp_text: 'chef' } })).status).toBe(200);
    svc.clock.now += 999;
    const refused = await svc.code(token, { record: { occp_text: 'chef' } });
    expect(refused.status).toBe(429);
    expect(refused.headers.get('content-type')).toMatch(/^application\/json/);
    expect(await refused.json()).toEqual({ message: 'Too Many Requests: at most 1 request per second' });
    svc.clock.now += 1;
    expect((await svc.code(token, { record: { occp_text: 'chef' } })).status).toBe(200);
  });

  it('counts from the last accepted call: a refused one does not push the next back', async () => {
    const svc = await start();
    const token = await svc.token();
    expect(await topics(svc, token)).toBe(200);
    svc.clock.now += 600;
    expect(await topics(svc, token)).toBe(429);
    svc.clock.now += 400; // 1 s after the accepted call, 0.4 s after the refused one
    expect(await topics(svc, token)).toBe(200);
  });

  it('counts every API call whatever its answer: a 400, a 404 topic, an expired token all spend the second', async () => {
    const svc = await start({ tokenLifetimeSeconds: 10 });
    const token = await svc.token();
    expect((await svc.code(token, '{"record":')).status).toBe(400);
    expect(await topics(svc, token)).toBe(429);
    svc.clock.now += 1000;
    expect((await svc.code(token, { record: { occp_text: 'chef' } }, 'nope')).status).toBe(404);
    expect(await topics(svc, token)).toBe(429);
    svc.clock.now += 10_000;
    expect(await topics(svc, token)).toBe(403); // expired, and charged
    expect(await topics(svc, token)).toBe(429);
  });

  it('charges no one for a call without a token it issued (401), so a stranger cannot spend the second', async () => {
    const svc = await start();
    const token = await svc.token();
    expect(await topics(svc, 'not-a-token')).toBe(401);
    expect((await fetch(`${svc.base}/v1/topics`)).status).toBe(401);
    expect(await topics(svc, token)).toBe(200);
  });

  it('takes another rate: at 20 per second, 50 ms apart passes and 49 ms does not', async () => {
    const svc = await start({ requestsPerSecond: 20 });
    const token = await svc.token();
    expect(await topics(svc, token)).toBe(200);
    svc.clock.now += 49;
    const refused = await fetch(`${svc.base}/v1/topics`, { headers: { Authorization: token } });
    expect(refused.status).toBe(429);
    expect(await refused.json()).toEqual({ message: 'Too Many Requests: at most 20 requests per second' });
    svc.clock.now += 1;
    expect(await topics(svc, token)).toBe(200);
  });

  it('reports each refusal to onApiLimit', async () => {
    const events: ApiLimitEvent[] = [];
    const svc = await start({ onApiLimit: (e) => events.push(e) });
    const token = await svc.token();
    await topics(svc, token);
    svc.clock.now += 250;
    await topics(svc, token);
    expect(events).toEqual([{ limit: 'rate', clientId: CLIENT_ID, at: T0 + 250, requestsPerSecond: 1, nextAllowedAt: T0 + 1000 }]);
  });
});

describe('daily quota', () => {
  /** Makes `n` accepted calls one second apart, starting now. */
  async function spend(svc: Awaited<ReturnType<typeof start>>, token: string, n: number) {
    for (let i = 0; i < n; i++) {
      expect(await topics(svc, token)).toBe(200);
      svc.clock.now += 1000;
    }
  }

  it('refuses the call after the quota with 429 "Limit Exceeded", saying when it resets, Retry-After to 00:00 UTC', async () => {
    const svc = await start({ dailyQuota: 3 });
    const token = await svc.token();
    await spend(svc, token, 3); // 09:00:00, :01, :02
    svc.clock.now += 500; // 09:00:03.5: 14 h 59 min 56.5 s to midnight, rounded up
    const res = await svc.code(token, { record: { occp_text: 'chef' } });
    expect(res.status).toBe(429);
    expect(res.headers.get('retry-after')).toBe(String(15 * 3600 - 3));
    expect(await res.json()).toEqual({
      message: 'Limit Exceeded: the daily quota of 3 requests is used up; it resets at 00:00 UTC (2026-03-03T00:00:00.000Z, in 15 h 0 min)',
    });
  });

  it('stays spent until the day ends, then starts again at 00:00 UTC', async () => {
    const svc = await start({ dailyQuota: 2, tokenLifetimeSeconds: 2 * 86_400 });
    const token = await svc.token();
    await spend(svc, token, 2);
    svc.clock.now = Date.parse('2026-03-02T23:59:59.999Z');
    expect(await topics(svc, token)).toBe(429);
    svc.clock.now += 1;
    expect(await topics(svc, token)).toBe(200);
    svc.clock.now += 1000;
    expect(await topics(svc, token)).toBe(200);
    svc.clock.now += 1000;
    expect(await topics(svc, token)).toBe(429);
  });

  it('counts only accepted calls: one refused by the rate, or by the quota, does not spend the day', async () => {
    const svc = await start({ dailyQuota: 2 });
    const token = await svc.token();
    expect(await topics(svc, token)).toBe(200);
    svc.clock.now += 500;
    expect(await topics(svc, token)).toBe(429); // the rate
    svc.clock.now += 500;
    expect(await topics(svc, token)).toBe(200); // still the second of two
    svc.clock.now += 1000;
    expect(await topics(svc, token)).toBe(429); // the quota
    expect((await svc.stats()).quotaToday).toEqual({ used: 2, remaining: 0, resetsAt: '2026-03-03T00:00:00.000Z' });
  });

  it('counts the day in another zone when told: Australia/Sydney (UTC+11 in March) resets at 13:00 UTC', async () => {
    const svc = await start({ dailyQuota: 1, quotaTimeZone: 'Australia/Sydney', tokenLifetimeSeconds: 86_400 });
    const token = await svc.token();
    await spend(svc, token, 1); // 20:00 in Sydney
    svc.clock.now = Date.parse('2026-03-02T10:00:00Z');
    const res = await fetch(`${svc.base}/v1/topics`, { headers: { Authorization: token } });
    expect(res.status).toBe(429);
    expect(res.headers.get('retry-after')).toBe(String(3 * 3600));
    expect(((await res.json()) as { message: string }).message).toContain('resets at midnight in Australia/Sydney (2026-03-02T13:00:00.000Z, in 3 h 0 min)');
    svc.clock.now = Date.parse('2026-03-02T12:59:59.999Z');
    expect(await topics(svc, token)).toBe(429);
    svc.clock.now += 1;
    expect(await topics(svc, token)).toBe(200);
  });

  it('reports a quota refusal to onApiLimit with when it resets', async () => {
    const events: ApiLimitEvent[] = [];
    const svc = await start({ dailyQuota: 1, onApiLimit: (e) => events.push(e) });
    const token = await svc.token();
    await spend(svc, token, 1);
    await topics(svc, token);
    expect(events).toEqual([{ limit: 'quota', clientId: CLIENT_ID, at: T0 + 1000, dailyQuota: 1, resetsAt: Date.parse('2026-03-03T00:00:00Z') }]);
  });

  it.each([
    [{ requestsPerSecond: 0 }, 'requestsPerSecond'],
    [{ requestsPerSecond: Number.NaN }, 'requestsPerSecond'],
    [{ dailyQuota: 0 }, 'dailyQuota'],
    [{ dailyQuota: 2.5 }, 'dailyQuota'],
    [{ quotaTimeZone: 'Mars/Olympus_Mons' }, 'quotaTimeZone "Mars/Olympus_Mons"'],
    [{ keepCallTimes: -1 }, 'keepCallTimes'],
  ])('refuses the option %j, naming it', (option, named) => {
    expect(() => createCodingService({ clientId: CLIENT_ID, clientSecret: SECRET, ...option })).toThrow(named);
  });
});

describe('API stats', () => {
  it('counts calls accepted and refused by rate and by quota, records coded, batch sizes, and arrival times', async () => {
    const svc = await start({ dailyQuota: 4, keepCallTimes: 3 });
    const token = await svc.token();
    const arrivals: number[] = [];
    const at = (ms: number) => {
      svc.clock.now = T0 + ms;
      return svc.clock.now;
    };

    arrivals.push(at(0));
    expect((await svc.code(token, { record: { occp_text: 'chef' } })).status).toBe(200);
    at(300);
    expect((await svc.code(token, { records: batchOf(2) })).status).toBe(429);
    arrivals.push(at(1000));
    expect((await svc.code(token, { records: batchOf(3) })).status).toBe(200);
    arrivals.push(at(2500));
    expect((await svc.code(token, { records: batchOf(6) })).status).toBe(200);
    arrivals.push(at(4000));
    expect((await svc.code(token, { records: batchOf(301) })).status).toBe(400); // accepted, then refused
    at(5000);
    expect((await svc.code(token, { records: batchOf(2) })).status).toBe(429); // the quota of 4
    await fetch(`${svc.base}/v1/topics`); // 401: counted as an API call only

    const res = await fetch(`${svc.base}/__stats`);
    const text = await res.text();
    expect(text).not.toContain(token);
    expect(JSON.parse(text)).toEqual({
      tokenRequests: 1,
      tokensIssued: 1,
      tokenRequestsRefused: 0,
      apiCalls: 7,
      apiCallsAccepted: 4,
      apiCallsRefusedByRate: 1,
      apiCallsRefusedByQuota: 1,
      recordsCoded: 1 + 3 + 6,
      singleRecordCalls: 1,
      batches: { count: 2, maxRecords: 6, meanRecords: 4.5 },
      limits: { requestsPerSecond: 1, dailyQuota: 4, quotaTimeZone: 'UTC' },
      quotaToday: { used: 4, remaining: 0, resetsAt: '2026-03-03T00:00:00.000Z' },
      acceptedCallTimes: arrivals.slice(-3),
      lastTokenIssuedAt: new Date(T0).toISOString(),
    });
  });

  it('lists accepted arrival times a test can check "at most one call per second" against', async () => {
    const svc = await start();
    const token = await svc.token();
    // A client that does not pace itself: a call every 400 ms for 5 s.
    for (let ms = 0; ms < 5000; ms += 400) {
      svc.clock.now = T0 + ms;
      await topics(svc, token);
    }
    const { acceptedCallTimes, apiCallsAccepted, apiCallsRefusedByRate } = await svc.stats();
    expect(acceptedCallTimes).toEqual([0, 1200, 2400, 3600, 4800].map((ms) => T0 + ms));
    expect(apiCallsAccepted + apiCallsRefusedByRate).toBe(13);
    for (let i = 1; i < acceptedCallTimes.length; i++) expect(acceptedCallTimes[i]! - acceptedCallTimes[i - 1]!).toBeGreaterThanOrEqual(1000);
  });

  it('shows the quota of the day holding the clock: a new day starts at 0 used', async () => {
    const svc = await start({ dailyQuota: 5 });
    const token = await svc.token();
    await topics(svc, token);
    expect((await svc.stats()).quotaToday).toEqual({ used: 1, remaining: 4, resetsAt: '2026-03-03T00:00:00.000Z' });
    svc.clock.now = Date.parse('2026-03-03T00:00:00Z');
    expect((await svc.stats()).quotaToday).toEqual({ used: 0, remaining: 5, resetsAt: '2026-03-04T00:00:00.000Z' });
  });
});


describe('bundled occupation data', () => {
  const occupations = parseOccupations(JSON.parse(readFileSync(new URL('../../demo/data/occupations.json', import.meta.url), 'utf8')));

  it('holds at least 300 six-digit occupations from every major group', () => {
    expect(occupations.length).toBeGreaterThanOrEqual(300);
    expect(new Set(occupations.map((o) => o.code[0]))).toEqual(new Set(['1', '2', '3', '4', '5', '6', '7', '8']));
  });

  it.each([
    ['261312', 'Developer Programmer'],
    ['261313', 'Software Engineer'],
    ['254499', 'Registered Nurses nec'],
    ['254418', 'Registered Nurse (Medical)'],
    ['241213', 'Primary School Teacher'],
    ['351311', 'Chef'],
    ['341111', 'Electrician (General)'],
    ['221111', 'Accountant (General)'],
    ['733111', 'Truck Driver (General)'],
    ['233211', 'Civil Engineer'],
  ])('has %s %s', (code, title) => {
    expect(occupations.find((o) => o.code === code)?.title).toBe(title);
  });
});

describe('demo/main.ts (the command npm start runs)', () => {
  const main = fileURLToPath(new URL('../../demo/main.ts', import.meta.url));
  // Node 22 strips the types; the repo's `node` dev dependency is that Node, whichever runs vitest.
  const repoNode = fileURLToPath(new URL('../../node_modules/.bin/node', import.meta.url));
  const node = existsSync(repoNode) ? repoNode : process.execPath;

  function run(env: Record<string, string>) {
    const child = spawn(node, [main], { env: { PATH: process.env['PATH'] ?? '', ...env }, stdio: ['ignore', 'pipe', 'pipe'] });
    let stdout = '';
    let stderr = '';
    child.stdout.on('data', (d: Buffer) => (stdout += d.toString()));
    child.stderr.on('data', (d: Buffer) => (stderr += d.toString()));
    const exited = new Promise<number | null>((resolve) => child.on('exit', (code) => resolve(code)));
    const output = () => ({ stdout, stderr });
    async function waitFor(pattern: RegExp): Promise<RegExpMatchArray> {
      for (let i = 0; i < 200; i++) {
        const m = pattern.exec(stdout);
        if (m !== null) return m;
        await new Promise((r) => setTimeout(r, 50));
      }
      throw new Error(`timed out waiting for ${pattern}; stdout: ${stdout}; stderr: ${stderr}`);
    }
    return { child, exited, output, waitFor };
  }

  /** A token from the service `main.ts` started on `port`, for `demo-client`. */
  async function tokenAt(port: string): Promise<string> {
    const res = await fetch(`http://127.0.0.1:${port}/oauth2/token`, {
      method: 'POST',
      headers: { 'Content-Type': 'application/x-www-form-urlencoded', Authorization: basic(CLIENT_ID, SECRET) },
      body: 'grant_type=client_credentials',
    });
    return ((await res.json()) as TokenAnswer).access_token;
  }
  const topicsAt = async (port: string, token: string) => (await fetch(`http://127.0.0.1:${port}/v1/topics`, { headers: { Authorization: token } })).status;

  it('takes the rate from DEMO_CODER_REQUESTS_PER_SECOND, says its limits, and logs a call refused by the rate', async () => {
    const p = run({ DEMO_CLIENT_SECRET: SECRET, DEMO_CODER_PORT: '0', DEMO_CODER_REQUESTS_PER_SECOND: '0.01' });
    try {
      const [, port = ''] = await p.waitFor(/listening on http:\/\/127\.0\.0\.1:(\d+)/);
      await p.waitFor(/API limits per client: 0\.01 call\(s\) per second, 1000 per day \(the day in UTC\)/);
      const token = await tokenAt(port);
      expect(await topicsAt(port, token)).toBe(200);
      expect(await topicsAt(port, token)).toBe(429);
      await p.waitFor(/API call from "demo-client": refused \(429, over 0\.01 per second; next allowed in \d+ ms\)/);
      expect(p.output().stdout).not.toContain(token);
    } finally {
      p.child.kill('SIGTERM');
      await p.exited;
    }
  });

  it('takes the quota and its zone from the environment, and logs the quota being spent once, with when it resets', async () => {
    const p = run({
      DEMO_CLIENT_SECRET: SECRET,
      DEMO_CODER_PORT: '0',
      DEMO_CODER_REQUESTS_PER_SECOND: '1000',
      DEMO_CODER_DAILY_QUOTA: '1',
      DEMO_CODER_QUOTA_TIME_ZONE: 'Australia/Sydney',
    });
    try {
      const [, port = ''] = await p.waitFor(/listening on http:\/\/127\.0\.0\.1:(\d+)/);
      await p.waitFor(/1 per day \(the day in Australia\/Sydney\)/);
      const token = await tokenAt(port);
      expect(await topicsAt(port, token)).toBe(200);
      for (let i = 0; i < 2; i++) {
        await new Promise((r) => setTimeout(r, 20)); // past the 1 ms the rate asks
        expect(await topicsAt(port, token)).toBe(429);
      }
      await tokenAt(port); // refused, and logged after the refusals above
      await p.waitFor(/token request from "demo-client": refused/);
      const quotaLines = p.output().stdout.split('\n').filter((l) => l.includes('daily quota'));
      expect(quotaLines).toHaveLength(1);
      expect(quotaLines[0]).toMatch(/^API call from "demo-client": refused \(429, daily quota of 1 used up\); further calls are refused until \S+Z \(midnight Australia\/Sydney, in /);
    } finally {
      p.child.kill('SIGTERM');
      await p.exited;
    }
  });

  it.each([
    ['DEMO_CODER_DAILY_QUOTA', '0'],
    ['DEMO_CODER_DAILY_QUOTA', '2.5'],
    ['DEMO_CODER_REQUESTS_PER_SECOND', 'fast'],
    ['DEMO_CODER_QUOTA_TIME_ZONE', 'Mars/Olympus_Mons'],
  ])('exits 1 naming %s when it is %j', async (name, value) => {
    const p = run({ DEMO_CLIENT_SECRET: SECRET, DEMO_CODER_PORT: '0', [name]: value });
    expect(await p.exited).toBe(1);
    expect(p.output().stderr).toContain(name);
  });

  it('exits 1 with a clear message when DEMO_CLIENT_SECRET is missing', async () => {
    const p = run({});
    expect(await p.exited).toBe(1);
    expect(p.output().stderr).toContain('DEMO_CLIENT_SECRET is not set');
  });

  it('listens where DEMO_CODER_PORT says and logs token requests without the token', async () => {
    const p = run({ DEMO_CLIENT_SECRET: SECRET, DEMO_CODER_PORT: '0', DEMO_CLIENT_ID: 'form-7' });
    try {
      const [, port] = await p.waitFor(/listening on http:\/\/127\.0\.0\.1:(\d+)/);
      const tokenUrl = `http://127.0.0.1:${port}/oauth2/token`;
      const init = {
        method: 'POST',
        headers: { 'Content-Type': 'application/x-www-form-urlencoded', Authorization: basic('form-7', SECRET) },
        body: 'grant_type=client_credentials',
      };
      const first = await fetch(tokenUrl, init);
      const { access_token } = (await first.json()) as TokenAnswer;
      expect((await fetch(tokenUrl, init)).status).toBe(403);
      await p.waitFor(/refused/);
      const { stdout } = p.output();
      expect(stdout).toMatch(/token request from "form-7": issued/);
      expect(stdout).toMatch(/token request from "form-7": refused/);
      expect(stdout).not.toContain(access_token);
    } finally {
      p.child.kill('SIGTERM');
      await p.exited;
    }
  });
});
