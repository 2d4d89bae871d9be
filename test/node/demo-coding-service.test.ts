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
import type { CodingServiceOptions, CodingServiceStats, TokenRequestEvent } from '../../demo/coding-service.ts';
import { parseOccupations } from '../../demo/matcher.ts';

const CLIENT_ID = 'demo-client';
const SECRET = 'p@ss:w/rd+%';
const T0 = Date.parse('2026-03-02T09:00:00Z');
const HOUR_MS = 3600 * 1000;

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
    for (const t of [first, second]) expect((await fetch(`${svc.base}/v1/topics`, { headers: { Authorization: t } })).status).toBe(200);
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
  it.each([
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
  ])('codes %j to %j', async (record, expected) => {
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

  it('answers 413 for a body over 64 KiB', async () => {
    const svc = await start();
    const res = await svc.code(await svc.token(), { record: { occp_text: 'x'.repeat(70 * 1024) } });
    expect(res.status).toBe(413);
  });
});

describe('stats and unknown paths', () => {
  it('counts token requests, tokens issued, refusals and API calls, and never shows the token', async () => {
    const svc = await start();
    expect(await svc.stats()).toEqual({ tokenRequests: 0, tokensIssued: 0, tokenRequestsRefused: 0, apiCalls: 0, lastTokenIssuedAt: null });

    const token = await svc.token();
    await svc.requestToken();
    await svc.requestToken();
    await svc.requestToken(basic(CLIENT_ID, 'wrong'));
    await svc.code(token, { record: { occp_text: 'chef' } });
    await svc.code(token, { record: { occp_text: 'baker' } });
    await fetch(`${svc.base}/v1/topics`);

    const res = await fetch(`${svc.base}/__stats`);
    expect(res.headers.get('content-type')).toMatch(/^application\/json/);
    const text = await res.text();
    expect(text).not.toContain(token);
    expect(JSON.parse(text)).toEqual({
      tokenRequests: 4,
      tokensIssued: 1,
      tokenRequestsRefused: 2,
      apiCalls: 3,
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
