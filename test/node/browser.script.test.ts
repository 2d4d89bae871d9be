/**
 * public/injector-form.js in real Chromium against a scripted stand-in for the Worker (node:http,
 * same origin as the page), so each rule can be shown on its own: what a submission sends, when
 * it retries and when it must not, how errors reach fields, and the events a page can take over.
 *
 * Run: npx vitest run --project node test/node/browser
 */
import { readFileSync } from 'node:fs';
import { createServer, type IncomingMessage, type Server, type ServerResponse } from 'node:http';
import type { AddressInfo } from 'node:net';
import { join } from 'node:path';
import type { Browser, Page } from 'playwright-core';
import { afterAll, beforeAll, beforeEach, describe, expect, it } from 'vitest';
import { launchChromium, ROOT } from './browser-support.ts';

const SCRIPT = readFileSync(join(ROOT, 'public/injector-form.js'), 'utf8');

const PAGE = `<!doctype html><html lang="en"><head><meta charset="utf-8"><title>Script test</title>
<script src="/injector-form.js" defer></script><script src="/injector-form.js" defer></script></head><body>
<form id="post" action="/api/code" method="post" data-injector>
  <label for="occp_text">Occupation title</label>
  <input id="occp_text" name="occp_text" aria-describedby="hint"> <p id="hint">A hint</p>
  <label for="tasks_text">Main tasks</label> <textarea id="tasks_text" name="tasks_text"></textarea>
  <button>Send</button>
  <div data-injector-output></div>
</form>
<form id="get" action="/api/topics" method="get" data-injector>
  <input name="q" aria-label="Query"> <button>Look up</button>
</form>
<div data-injector-output="get"></div>
<form id="ts" action="/api/checked" method="post" data-injector>
  <input type="hidden" name="occp_text" value="baker">
  <div class="cf-turnstile"><input type="hidden" name="cf-turnstile-response" value="tok-1"></div>
  <button>Send checked</button>
</form>
<form id="tsget" action="/api/checked" method="get" data-injector>
  <input type="hidden" name="q" value="bread">
  <div class="cf-turnstile"><input type="hidden" name="cf-turnstile-response" value="tok-1"></div>
  <button>Look up checked</button>
</form>
</body></html>`;

/** One request the stand-in received. */
interface Hit {
  method: string;
  url: string;
  accept: string;
  type: string;
  body: string;
}

type Answer = (res: ServerResponse) => void;

const json = (status: number, body: unknown, headers: Record<string, string> = {}): Answer => (res) =>
  res.writeHead(status, { 'Content-Type': 'application/json', ...headers }).end(JSON.stringify(body));
/** The Worker's own problem (its type is the Worker's URN for `reason`). */
const problemJson = (status: number, body: Record<string, unknown> & { reason: string }, headers: Record<string, string> = {}): Answer => (res) =>
  res
    .writeHead(status, { 'Content-Type': 'application/problem+json; charset=utf-8', ...headers })
    .end(JSON.stringify({ type: `urn:edge-token-injector:problem:${body.reason}`, status, ...body }));
/** An API's own problem+json, passed through by the Worker: not the Worker's type. */
const apiProblemJson = (status: number, body: Record<string, unknown>, headers: Record<string, string> = {}): Answer => (res) =>
  res.writeHead(status, { 'Content-Type': 'application/problem+json', ...headers }).end(JSON.stringify({ type: 'https://api.example/problems/maintenance', status, ...body }));
/** No answer at all (until the connection is closed when the test ends). */
const hang: Answer = (res) => void hung.push(res);
let hung: ServerResponse[] = [];
/** A connection dropped without an answer: fetch sees a network error. */
const drop: Answer = (res) => res.socket?.destroy();

let server: Server;
let origin: string;
let browser: Browser;
let hits: Hit[] = [];
/** The CF-Turnstile-Response header of each request ('' when absent). */
let turnstileHeaders: string[] = [];
let plan: Answer[] = [];

beforeAll(async () => {
  server = createServer((req: IncomingMessage, res: ServerResponse) => {
    // A fresh connection per request: Chromium itself resends a request whose reused keep-alive
    // connection closed without an answer, which would hide what the script does.
    res.setHeader('Connection', 'close');
    const path = new URL(req.url ?? '/', 'http://x').pathname;
    if (path === '/') return void res.writeHead(200, { 'Content-Type': 'text/html; charset=utf-8' }).end(PAGE);
    if (path === '/injector-form.js') return void res.writeHead(200, { 'Content-Type': 'text/javascript' }).end(SCRIPT);
    if (!path.startsWith('/api/')) return void res.writeHead(404).end(); // favicon.ico and the like
    const chunks: Buffer[] = [];
    req.on('data', (c: Buffer) => chunks.push(c));
    req.on('end', () => {
      hits.push({ method: req.method ?? '', url: req.url ?? '', accept: req.headers.accept ?? '', type: req.headers['content-type'] ?? '', body: Buffer.concat(chunks).toString() });
      turnstileHeaders.push(String(req.headers['cf-turnstile-response'] ?? ''));
      (plan.shift() ?? json(500, { message: 'the test planned no answer for this request' }))(res);
    });
  });
  await new Promise<void>((done) => server.listen(0, '127.0.0.1', done));
  origin = `http://127.0.0.1:${(server.address() as AddressInfo).port}`;
  browser = await launchChromium();
}, 60_000);

afterAll(async () => {
  await browser?.close();
  await new Promise<void>((done) => (server ? server.close(() => done()) : done()));
});

let page: Page;
beforeEach(async () => {
  hits = [];
  turnstileHeaders = [];
  plan = [];
  const pageErrors: string[] = [];
  page = await browser.newPage();
  page.setDefaultTimeout(15_000);
  page.on('pageerror', (err) => pageErrors.push(err.message));
  await page.goto(`${origin}/`);
  return async () => {
    for (const res of hung.splice(0)) res.socket?.destroy();
    await page.context().close();
    expect(pageErrors, 'uncaught errors in the page').toEqual([]);
  };
});

/** Submit `form` (#post or #get) with the button and wait for the script's event. */
async function submit(form = 'post'): Promise<{ type: string; status: number }> {
  const event = page.evaluate(
    (id) =>
      new Promise<{ type: string; status: number }>((done) => {
        const f = document.getElementById(id)!;
        const on = (e: Event) => done({ type: e.type, status: (e as CustomEvent<{ status: number }>).detail.status });
        f.addEventListener('injector:result', on, { once: true });
        f.addEventListener('injector:error', on, { once: true });
      }),
    form,
  );
  await page.locator(`#${form} button`).click();
  return event;
}

describe('what a submission sends', () => {
  it('POSTs the fields urlencoded to the action, asking for JSON, once although the script is included twice', async () => {
    plan = [json(200, { ok: true })];
    await page.getByLabel('Occupation title').fill('chef & cook');
    await page.getByLabel('Main tasks').fill('menus');
    expect(await submit()).toEqual({ type: 'injector:result', status: 200 });
    expect(hits).toEqual([
      { method: 'POST', url: '/api/code', accept: 'application/json', type: 'application/x-www-form-urlencoded;charset=UTF-8', body: 'occp_text=chef+%26+cook&tasks_text=menus' },
    ]);
  });

  it('puts a GET form’s fields in the query and shows the answer as JSON in the output named by the form id', async () => {
    plan = [json(200, [{ topic: 'occp' }])];
    await page.getByLabel('Query').fill('a b');
    await submit('get');
    expect(hits.map((h) => `${h.method} ${h.url} ${h.body}`)).toEqual(['GET /api/topics?q=a+b ']);
    const pre = page.locator('[data-injector-output="get"] pre');
    expect(JSON.parse((await pre.textContent()) ?? '')).toEqual([{ topic: 'occp' }]);
    expect(await page.evaluate(() => document.activeElement?.tagName)).toBe('PRE');
  });
});

describe('retries', () => {
  it('retries once when the Worker answers problem+json 503 with Retry-After <= 10', async () => {
    plan = [problemJson(503, { reason: 'token-store-unavailable', title: 'Token store unavailable' }, { 'Retry-After': '1' }), json(200, { ok: true })];
    const started = Date.now();
    expect(await submit()).toEqual({ type: 'injector:result', status: 200 });
    expect(hits).toHaveLength(2);
    expect(Date.now() - started).toBeGreaterThanOrEqual(900);
  });

  it('retries a problem+json 429 once, and only once', async () => {
    plan = [
      problemJson(429, { reason: 'rate-limited', title: 'Slow down' }, { 'Retry-After': '0' }),
      problemJson(429, { reason: 'rate-limited', title: 'Slow down', detail: 'still busy' }, { 'Retry-After': '0' }),
    ];
    expect(await submit()).toEqual({ type: 'injector:error', status: 429 });
    expect(hits).toHaveLength(2);
    expect(await page.getByRole('alert').textContent()).toContain('still busy');
  });

  it('does not retry a 503 that is the API’s own answer (not problem+json): the API was called', async () => {
    plan = [json(503, { message: 'Service under maintenance' }, { 'Retry-After': '1' })];
    expect(await submit()).toEqual({ type: 'injector:error', status: 503 });
    expect(hits).toHaveLength(1);
    expect(await page.getByRole('alert').textContent()).toContain('Service under maintenance');
  });

  it('does not retry when Retry-After is longer than 10 s; the visitor reads the message for the reason', async () => {
    plan = [
      problemJson(
        503,
        { reason: 'token-endpoint-unavailable', title: 'Upstream token endpoint unavailable', detail: 'the token endpoint answered 503', request_id: 'req-1' },
        { 'Retry-After': '60' },
      ),
    ];
    expect(await submit()).toEqual({ type: 'injector:error', status: 503 });
    expect(hits).toHaveLength(1);
    const alert = page.getByRole('alert');
    expect(await alert.textContent()).toContain('The service is unavailable. Please try again later.');
    expect(await alert.textContent()).toContain('Reference: req-1');
    expect(await alert.getAttribute('data-injector-reason')).toBe('token-endpoint-unavailable');
  });

  it('does not retry an API’s own problem+json 503: the API was called, and a retry could run it twice', async () => {
    plan = [apiProblemJson(503, { title: 'Maintenance', detail: 'back at noon' }, { 'Retry-After': '1' }), json(200, {})];
    expect(await submit()).toEqual({ type: 'injector:error', status: 503 });
    expect(hits).toHaveLength(1);
    expect(await page.getByRole('alert').textContent()).toContain('back at noon');
    expect(await page.getByRole('alert').getAttribute('data-injector-reason')).toBeNull();
  });

  it('gives up after data-injector-timeout seconds and says the service took too long', async () => {
    plan = [hang];
    await page.evaluate(() => document.getElementById('post')!.setAttribute('data-injector-timeout', '1'));
    expect(await submit()).toEqual({ type: 'injector:error', status: 0 });
    expect(await page.getByRole('alert').textContent()).toMatch(/took too long/);
  });

  it('retries a GET after a network error', async () => {
    plan = [drop, json(200, [])];
    const started = Date.now();
    expect(await submit('get')).toEqual({ type: 'injector:result', status: 200 });
    expect(hits).toHaveLength(2);
    expect(Date.now() - started).toBeGreaterThanOrEqual(900); // the script's pause, not the browser's resend
  });

  it('does not retry a POST after a network error, and says the service could not be reached', async () => {
    plan = [drop, json(200, {})];
    expect(await submit()).toEqual({ type: 'injector:error', status: 0 });
    expect(hits).toHaveLength(1);
    expect(await page.getByRole('alert').textContent()).toMatch(/could not reach the service/i);
    expect(await page.locator('#post button').isEnabled()).toBe(true);
  });
});

describe('errors and events', () => {
  it('maps problem errors to fields, lists the ones with no field, and clears them on the next submit', async () => {
    plan = [
      problemJson(422, {
        reason: 'invalid-submission',
        title: 'Invalid submission',
        errors: [
          { field: 'tasks_text', message: 'is longer than 500 characters' },
          { field: 'record.extra', message: 'is not allowed' },
        ],
      }),
      json(200, {}),
    ];
    await submit();
    const tasks = page.getByLabel('Main tasks');
    expect(await tasks.getAttribute('aria-invalid')).toBe('true');
    const id = (await tasks.getAttribute('aria-describedby'))!;
    expect(await page.locator(`[id="${id}"]`).textContent()).toBe('Main tasks is longer than 500 characters');
    expect(await page.evaluate(() => document.activeElement?.id)).toBe('tasks_text');
    const alert = (await page.getByRole('alert').textContent()) ?? '';
    expect(alert).toContain('Invalid submission');
    expect(alert).toContain('record.extra is not allowed');
    expect(await page.getByLabel('Occupation title').getAttribute('aria-invalid')).toBeNull();

    await submit();
    expect(await tasks.getAttribute('aria-invalid')).toBeNull();
    expect(await tasks.getAttribute('aria-describedby')).toBeNull();
    expect(await page.locator('.injector-field-error').count()).toBe(0);
    // A field that had its own description keeps it.
    expect(await page.getByLabel('Occupation title').getAttribute('aria-describedby')).toBe('hint');
  });

  it('lets the page render a result or an error itself with preventDefault()', async () => {
    plan = [json(200, { n: 1 }), problemJson(403, { reason: 'origin-not-allowed', title: 'Origin not allowed' })];
    await page.evaluate(() => {
      const form = document.getElementById('post')!;
      const out = form.querySelector('[data-injector-output]')!;
      form.addEventListener('injector:result', (e) => {
        e.preventDefault();
        out.textContent = `custom result ${JSON.stringify((e as CustomEvent<{ data: unknown }>).detail.data)}`;
      });
      form.addEventListener('injector:error', (e) => {
        e.preventDefault();
        out.textContent = `custom error ${(e as CustomEvent<{ message: string }>).detail.message}`;
      });
    });
    await submit();
    expect(await page.locator('#post [data-injector-output]').textContent()).toBe('custom result {"n":1}');
    await submit();
    expect(await page.locator('#post [data-injector-output]').textContent()).toBe('custom error This page may not use the service.');
  });
});

describe('Turnstile', () => {
  /** A stand-in for Cloudflare's api.js: `reset` records the form and gives the widget a fresh token. */
  const fakeTurnstile = () =>
    page.evaluate(() => {
      const w = window as unknown as { resets: string[]; turnstile: { reset(el: Element): void } };
      w.resets = [];
      w.turnstile = {
        reset(el) {
          w.resets.push(el.closest('form')!.id);
          el.querySelector('input')!.value = `tok-${w.resets.length + 1}`;
        },
      };
    });
  const resets = () => page.evaluate(() => (window as unknown as { resets: string[] }).resets);

  it('a POST sends the widget’s token as its field; after every answer the widget is reset, so a retry after a refusal sends a fresh token', async () => {
    await fakeTurnstile();
    plan = [problemJson(403, { reason: 'turnstile-failed', title: 'Turnstile check failed', detail: 'the Turnstile token has expired' }), json(200, { ok: true })];
    expect(await submit('ts')).toEqual({ type: 'injector:error', status: 403 });
    expect(await page.getByRole('alert').textContent()).toContain('The check that you are human did not pass or has expired.');
    expect(await resets()).toEqual(['ts']);
    expect(await submit('ts')).toEqual({ type: 'injector:result', status: 200 });
    expect(hits.map((h) => h.body)).toEqual(['occp_text=baker&cf-turnstile-response=tok-1', 'occp_text=baker&cf-turnstile-response=tok-2']);
    expect(turnstileHeaders).toEqual(['', '']);
    expect(await resets()).toEqual(['ts', 'ts']);
  });

  it('a GET sends the token as the CF-Turnstile-Response header, never in the URL', async () => {
    await fakeTurnstile();
    plan = [json(200, [])];
    await submit('tsget');
    expect(hits.map((h) => h.url)).toEqual(['/api/checked?q=bread']);
    expect(turnstileHeaders).toEqual(['tok-1']);
  });

  it('without Cloudflare’s script on the page (not loaded, blocked) the form still submits', async () => {
    plan = [json(200, {})];
    expect(await submit('ts')).toEqual({ type: 'injector:result', status: 200 });
  });
});
