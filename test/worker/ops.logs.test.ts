/**
 * Structured logs (issue 10): every line the Worker and its TokenStores write during a full run —
 * forwards, refusals, failures, token events, /healthz and /status — is JSON with an `event`, holds
 * no secret, token, credential or submitted value (but the fields a route opts in to), and each
 * request produced exactly one request line with the documented fields.
 */
import { createExecutionContext, env } from 'cloudflare:test';
import { describe, expect, it } from 'vitest';
import worker from '../../src/index';
import { SECRETS } from '../fixtures/config';
import { call, hits, issuedTokens, post, setApi, setToken, tokenHits, type Answer } from '../helpers';
import { capturedLines } from './log-capture';
import { fakeClock, SECOND } from './token-helpers';

/** A value only this test submits; it must never reach a log line unless its field is opted in. */
const submitted = (what: string) => `submitted-${what}-${crypto.randomUUID()}`;

/** Every captured line, parsed; a line that is not a JSON object with an `event` fails the test. */
function parsedLines(): Array<Record<string, unknown>> {
  return capturedLines.map((line) => {
    let parsed: unknown;
    try {
      parsed = JSON.parse(line);
    } catch {
      throw new Error(`a log line is not JSON: ${line.slice(0, 200)}`);
    }
    expect(typeof parsed === 'object' && parsed !== null && typeof (parsed as { event?: unknown }).event === 'string', `no event: ${line.slice(0, 200)}`).toBe(true);
    return parsed as Record<string, unknown>;
  });
}

/** The request id of an answer: its `X-Request-Id`, which every answer carries. */
function idOf(a: Answer): string {
  const id = a.headers.get('X-Request-Id');
  expect(id, `no X-Request-Id on a ${a.status}`).toMatch(/^[0-9a-f-]{36}$/);
  return id!;
}

describe('a full run: every log line', () => {
  it('is JSON, free of secrets, tokens and submitted values, and each request has exactly one request line with the documented fields', async () => {
    const clock = fakeClock();
    const answers: Answer[] = [];
    const values: string[] = [];
    const run = async (a: Promise<Answer>, status: number) => {
      const answer = await a;
      expect(answer.status, answer.text).toBe(status);
      answers.push(answer);
      return answer;
    };
    const codeBody = () => {
      const occp = submitted('occp');
      const tasks = submitted('tasks');
      values.push(occp, tasks);
      return { occp_text: occp, tasks_text: tasks, suggestions: '3' };
    };

    // Forwarded: a cold token, then the isolate's; a field the route opts in to logging.
    await setToken('opslog', { expiresIn: 3600 });
    await run(post('/ops/code/nurse?lang=en', codeBody()), 200);
    await run(post('/ops/code/nurse?lang=de', codeBody(), { headers: { 'X-Request-Id': 'client-run-7' } }), 200);
    // A plain HTML form: a 303, its fields urlencoded.
    const form = codeBody();
    await run(call('/ops/code/welder', { method: 'POST', body: new URLSearchParams(form).toString(), headers: { 'Content-Type': 'application/x-www-form-urlencoded', Accept: 'text/html' } }), 303);
    // The API's own error passes through; a rejected token is replaced and the call sent again.
    await setApi('opslog', { status: 500, body: '{"error":"boom"}' });
    await run(post('/ops/code/nurse', codeBody()), 500);
    await setApi('opslog', { rejectNext: 1 });
    await run(post('/ops/code/nurse', codeBody()), 200);
    // Refused before the API: origin, method, path, query, body, fields; a preflight; a 404.
    const refusedValue = submitted('refused');
    values.push(refusedValue);
    await run(post('/ops/code/nurse', { occp_text: refusedValue }, { origin: 'https://evil.example.com' }), 403);
    await run(call('/ops/code/nurse', { method: 'PUT', body: JSON.stringify({ occp_text: refusedValue }) }), 405);
    await run(call(`/ops/code/${'x'.repeat(3)}%2e%2e`, { method: 'POST', body: '{}' }), 400);
    const queryValue = submitted('query');
    values.push(queryValue);
    await run(post(`/ops/code/nurse?secret=${queryValue}`, codeBody()), 400);
    await run(post('/ops/code/nurse?lang=english', codeBody()), 400);
    await run(post('/ops/code/nurse', { occp_text: 'y'.repeat(3000) }), 413);
    const tasksOnly = submitted('tasks-only');
    values.push(tasksOnly);
    await run(post('/ops/code/nurse', { tasks_text: tasksOnly }), 422);
    const broken = submitted('broken');
    values.push(broken);
    await run(call('/ops/code/nurse', { method: 'POST', body: `{"occp_text":"${broken}"` }), 400);
    await run(call('/ops/code/nurse', { method: 'OPTIONS', headers: { 'Access-Control-Request-Method': 'POST' } }), 204);
    await run(call('/ops/items/42', { method: 'OPTIONS', headers: { 'Access-Control-Request-Method': 'GET' } }), 204);
    await run(call('/no/such/path', { method: 'GET' }), 404);

    // Token events: a refresh ahead of expiry; a refresh the budget forbids, then none to be had.
    clock.advance(3600 * SECOND - 30 * SECOND);
    await run(post('/ops/code/nurse', codeBody()), 200);
    await setToken('opsbudget', { expiresIn: 60 });
    await run(post('/t/opsbudget', {}), 200);
    clock.advance(55 * SECOND);
    await run(post('/t/opsbudget', {}), 200);
    clock.advance(5 * SECOND);
    await run(post('/t/opsbudget', {}), 503);
    // A throttling endpoint: a cool-down, then (past the isolate's 30 s memory of it) a blocked request.
    await setToken('opsthrottle', { status: 429, headers: { 'Retry-After': '120' }, body: '{"error":"slow_down"}' });
    await run(post('/t/opsthrottle', {}), 503);
    clock.advance(31 * SECOND);
    await run(post('/t/opsthrottle', {}), 503);
    // An endpoint that is down: three failed attempts, then a back-off.
    await setToken('opsoutage', { failNext: 10 });
    await run(post('/t/opsoutage', {}), 503);

    // The operator's paths.
    await run(call('/healthz', { origin: null }), 200);
    await run(call('/status', { origin: null }), 401);
    await run(call('/status?upstream=opslog', { origin: null, headers: { Authorization: `Bearer ${SECRETS.TEST_STATUS_TOKEN}` } }), 200);
    await run(call('/status', { origin: null, headers: { Authorization: 'Bearer not-the-admin-token-but-long-enough-0000' } }), 401);

    // Every line parses, and nothing submitted is in any of them (setup.ts checks secrets and tokens).
    const lines = parsedLines();
    const text = capturedLines.join('\n');
    for (const v of values) expect(text, 'a submitted value reached a log line').not.toContain(v);
    for (const t of await issuedTokens()) expect(text).not.toContain(t);
    expect(text).not.toContain('not-the-admin-token-but-long-enough');

    // Exactly one request line per request, with the documented fields and the answer's status.
    const requestLines = lines.filter((l) => l.event === 'request');
    expect(requestLines).toHaveLength(answers.length);
    for (const a of answers) {
      const mine = requestLines.filter((l) => l.request_id === idOf(a));
      expect(mine, `request lines for the ${a.status}`).toHaveLength(1);
      const line = mine[0]!;
      expect(line).toMatchObject({ status: a.status, method: expect.stringMatching(/^[A-Z]+$/), duration_ms: expect.any(Number), outcome: expect.any(String) });
      expect(line.route === null || typeof line.route === 'string').toBe(true);
      expect(Object.keys(line).filter((k) => !['event', 'request_id', 'client_request_id', 'route', 'method', 'status', 'upstream_status', 'upstream_calls', 'duration_ms', 'outcome', 'token', 'fields'].includes(k))).toEqual([]);
    }
    const byId = new Map(requestLines.map((l) => [l.request_id, l]));
    const lineOf = (i: number) => byId.get(idOf(answers[i]!))!;
    expect(lineOf(0)).toEqual({
      event: 'request',
      request_id: idOf(answers[0]!),
      route: 'ops_code',
      method: 'POST',
      status: 200,
      upstream_status: 200,
      duration_ms: expect.any(Number),
      outcome: 'forwarded',
      token: 'store',
      fields: { topic: 'nurse', lang: 'en', suggestions: 3 },
    });
    expect(lineOf(1)).toMatchObject({ client_request_id: 'client-run-7', token: 'cached', fields: { topic: 'nurse', lang: 'de' } });
    expect(lineOf(2)).toMatchObject({ route: 'ops_code', status: 303, upstream_status: 200, outcome: 'forwarded', fields: { topic: 'welder' } });
    expect(lineOf(3)).toMatchObject({ status: 500, upstream_status: 500, outcome: 'forwarded' });
    expect(lineOf(4)).toMatchObject({ status: 200, upstream_status: 200, upstream_calls: 2, outcome: 'forwarded' });
    expect(lineOf(5)).toMatchObject({ route: 'ops_code', status: 403, outcome: 'origin-not-allowed' });
    expect(lineOf(6)).toMatchObject({ route: 'ops_code', method: 'PUT', status: 405, outcome: 'method-not-allowed' });
    expect(lineOf(7)).toMatchObject({ status: 400, outcome: 'path-not-allowed' });
    expect(lineOf(8)).toMatchObject({ status: 400, outcome: 'query-not-allowed' });
    expect(lineOf(10)).toMatchObject({ status: 413, outcome: 'body-too-large' });
    expect(lineOf(11)).toMatchObject({ status: 422, outcome: 'invalid-submission' });
    expect(lineOf(11)).not.toHaveProperty('upstream_status');
    expect(lineOf(12)).toMatchObject({ status: 400, outcome: 'malformed-json' });
    expect(lineOf(13)).toMatchObject({ route: 'ops_code', method: 'OPTIONS', status: 204, outcome: 'preflight' });
    expect(lineOf(14)).toMatchObject({ route: 'ops_items_get', outcome: 'preflight' });
    expect(lineOf(15)).toMatchObject({ route: null, status: 404, outcome: 'not-found' });
    expect(lineOf(19)).toMatchObject({ route: 'echo_opsbudget', status: 503, outcome: 'token-budget-exhausted' });
    expect(lineOf(20)).toMatchObject({ status: 503, outcome: 'token-endpoint-throttling' });
    expect(lineOf(23)).toMatchObject({ route: null, status: 200, outcome: 'health' });
    expect(lineOf(24)).toMatchObject({ route: null, status: 401, outcome: 'unauthorized' });
    expect(lineOf(25)).toMatchObject({ status: 200, outcome: 'status-admin' });

    // The token events of the README's table, each from its scenario.
    const events = (name: string, upstream: string) => lines.filter((l) => l.event === name && l.upstream === upstream);
    expect(events('token_fetched', 'opslog').map((l) => l.cause)).toEqual(['cold', 'rejected']);
    expect(events('token_rejected_by_api', 'opslog')).toMatchObject([{ action: 'replace' }]);
    expect(events('token_invalidated', 'opslog')).toHaveLength(1);
    expect(events('token_refreshed', 'opslog')).toMatchObject([{ cause: 'expiring', attempt: 1, lifetime_s: 3600 }]);
    expect(events('token_budget_blocked', 'opsbudget').map((l) => l.cause)).toEqual(['expiring', 'expired']);
    expect(events('token_cooldown_started', 'opsthrottle')).toMatchObject([{ reason: 'throttled', cooldown_s: 120 }]);
    expect(events('token_cooldown_blocked', 'opsthrottle')).toMatchObject([{ cause: 'cold', reason: 'throttled', retry_in_s: 89 }]);
    expect(events('token_request_failed', 'opsoutage').map((l) => l.attempt)).toEqual([1, 2, 3]);
    expect(events('token_cooldown_started', 'opsoutage')).toMatchObject([{ reason: 'outage', cooldown_s: 1 }]);
    expect(lines.filter((l) => l.event === 'status_refused').map((l) => l.why)).toEqual(['no-credentials', 'admin-token-mismatch']);
    // What the token endpoints saw agrees with the events.
    expect(await tokenHits('opslog')).toHaveLength(3);
    expect(await tokenHits('opsbudget')).toHaveLength(1);
    expect(await tokenHits('opsoutage')).toHaveLength(3);
    expect((await hits('opslog')).filter((h) => h.path.startsWith('/v1/')).length).toBe(7);
  });
});

describe('log_fields', () => {
  it('only the fields a route names are logged (a mapped one as the API got it); a route without log_fields logs none', async () => {
    fakeClock();
    const res = await post('/ops/code/plumber?lang=fr', { occp_text: 'secret occupation 456', tasks_text: 'secret tasks 123' });
    expect(res.status, res.text).toBe(200);
    const line = parsedLines().find((l) => l.event === 'request' && l.request_id === idOf(res))!;
    // `suggestions` was not sent: the API got the template's 5 at its place.
    expect(line.fields).toEqual({ topic: 'plumber', lang: 'fr', suggestions: 5 });
    expect(capturedLines.join('\n')).not.toContain('secret occupation 456');
    expect(capturedLines.join('\n')).not.toContain('secret tasks 123');
    const plain = await post('/t/opslog', { anything: 'value-not-logged-42' });
    expect(plain.status).toBe(200);
    expect(parsedLines().find((l) => l.request_id === idOf(plain))).not.toHaveProperty('fields');
    expect(capturedLines.join('\n')).not.toContain('value-not-logged-42');
  });
});

describe('/healthz', () => {
  it('public, no detail, no upstream or Durable Object call; HEAD too; other methods 405', async () => {
    const before = (await hits()).length;
    const res = await call('/healthz', { origin: null });
    expect(res.status).toBe(200);
    expect(res.text).toBe('ok\n');
    expect(res.headers.get('Cache-Control')).toBe('no-store');
    expect(res.headers.get('Access-Control-Allow-Origin')).toBeNull();
    expect((await call('/healthz', { method: 'HEAD', origin: null })).status).toBe(200);
    const post405 = await call('/healthz', { method: 'POST', origin: null, body: '{}' });
    expect(post405.status).toBe(405);
    expect(post405.headers.get('Allow')).toBe('GET, HEAD');
    expect((await hits()).length).toBe(before);
  });

  it('a Worker with an invalid config answers 500 there too, with its one request line', async () => {
    const broken = { ...env, UPSTREAMS: { bad: { api_origin: 'nope' } } };
    const res = await worker.fetch(new Request('https://injector.example/healthz'), broken, createExecutionContext());
    expect(res.status).toBe(500);
    expect(await res.json()).toMatchObject({ reason: 'invalid-configuration' });
    const lines = parsedLines().filter((l) => l.request_id === res.headers.get('X-Request-Id'));
    expect(lines.map((l) => l.event)).toEqual(['invalid_configuration', 'request']);
    expect(lines[1]).toMatchObject({ route: null, method: 'GET', status: 500, outcome: 'invalid-configuration' });
  });
});

describe('the route a request line names is the one the router chose', () => {
  const FORMS = 'https://forms.example.org';
  const lineOf = (id: string | null) => parsedLines().find((l) => l.event === 'request' && l.request_id === id);

  it('a path the router does not match (a trailing slash) names no route', async () => {
    const res = await call('/ops/items/42/', { method: 'GET' });
    expect(res.status).toBe(404);
    expect(lineOf(res.headers.get('X-Request-Id'))).toMatchObject({ status: 404, route: null, outcome: 'not-found' });
  });

  it('two overlapping paths: a request taken and the same one refused by origin name the same route', async () => {
    const ROUTES = {
      ...(env.ROUTES as object),
      zz_param: { path: '/zz/:x/c', methods: ['POST'], upstream: 'opslog', target: '/v1/{x}', allowed_origins: [FORMS], required_fields: ['q'] },
      zz_spec: { path: '/zz/b/:y', methods: ['POST'], upstream: 'opslog', target: '/v1/{y}', allowed_origins: [FORMS], required_fields: ['q'] },
    };
    const send = async (origin: string) => {
      const res = await worker.fetch(new Request('https://injector.example/zz/b/c', { method: 'POST', headers: { Origin: origin, 'Content-Type': 'application/json' }, body: '{}' }), { ...env, ROUTES }, createExecutionContext());
      return lineOf(res.headers.get('X-Request-Id'));
    };
    const taken = await send(FORMS);
    const refused = await send('https://evil.example.com');
    expect(taken).toMatchObject({ status: 422, route: 'zz_spec' });
    expect(refused).toMatchObject({ status: 403, route: 'zz_spec', outcome: 'origin-not-allowed' });
  });
});
