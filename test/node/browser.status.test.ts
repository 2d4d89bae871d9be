/**
 * The /status page in real Chromium (issue 10): the Worker built as `wrangler deploy` builds it, run
 * under Miniflare on a local port with STATUS configured; Chromium with JavaScript off opens
 * /status with the admin token. The page needs no script, shows the figures of what was done (3
 * calls, 1 token request, 1 of 1 in the budget window), shows markup from the config as text, and
 * its CSP lets its own style apply and nothing else.
 *
 * Run: flock /tmp/eti-ports.lock npx vitest run --project node test/node/browser.status
 */
import { spawnSync } from 'node:child_process';
import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Miniflare, Response as MfResponse, convertV4MiniflareOptions, type Request as MfRequest } from 'miniflare';
import type { Browser } from 'playwright-core';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { launchChromium, ROOT } from './browser-support.ts';

const ADMIN_TOKEN = 'browser-status-admin-0123456789abcdef0123456789';
const PAGE = 'https://forms.example.org';

let dir: string;
let mf: Miniflare | undefined;
let worker: URL;
let browser: Browser | undefined;
const issued: string[] = [];

/** Token endpoint on `auth.test` (a token for an hour), API on `api.test` (200 to a token it issued). */
async function upstream(request: MfRequest): Promise<MfResponse> {
  const url = new URL(request.url);
  await request.arrayBuffer();
  if (url.hostname === 'auth.test') {
    const token = `tok_browser_status_${issued.length + 1}_${Math.random().toString(36).slice(2)}`;
    issued.push(token);
    return new MfResponse(JSON.stringify({ access_token: token, expires_in: 3600 }), { headers: { 'Content-Type': 'application/json' } });
  }
  const ok = issued.some((t) => request.headers.get('Authorization') === `Bearer ${t}`);
  return new MfResponse(JSON.stringify({ ok }), { status: ok ? 200 : 401, headers: { 'Content-Type': 'application/json' } });
}

beforeAll(async () => {
  dir = mkdtempSync(join(tmpdir(), 'eti-status-'));
  const build = spawnSync(process.execPath, [join(ROOT, 'node_modules/wrangler/bin/wrangler.js'), 'deploy', '--dry-run', '--outdir', dir], {
    cwd: ROOT,
    env: { ...process.env, WRANGLER_SEND_METRICS: 'false', CI: '1' },
    encoding: 'utf8',
  });
  if (build.status !== 0) throw new Error(`wrangler build failed: ${build.stdout}${build.stderr}`);
  const base = { token_url: 'https://auth.test/oauth2/token', client_id: 'forms', client_secret_from: 'CODER_SECRET' };
  mf = new Miniflare(
    convertV4MiniflareOptions({
      compatibilityDate: /^compatibility_date\s*=\s*"([^"]+)"/m.exec(readFileSync(join(ROOT, 'wrangler.toml'), 'utf8'))![1]!,
      scriptPath: join(dir, 'index.js'),
      modules: true,
      modulesRoot: dir,
      durableObjects: { TOKEN_STORE: { className: 'TokenStore', useSQLite: true } },
      bindings: {
        UPSTREAMS: {
          coder: { ...base, api_origin: 'https://api.test', token_budget: { max_requests: 1, window_seconds: 3600 } },
          markup: { ...base, api_origin: 'https://api2.test', scope: 'read <b>bold</b>' },
        },
        ROUTES: { code: { path: '/code', methods: ['POST'], upstream: 'coder', target: '/v1/code', allowed_origins: [PAGE] } },
        STATUS: { admin_token_from: 'STATUS_TOKEN' },
        CODER_SECRET: 'not-a-real-secret',
        STATUS_TOKEN: ADMIN_TOKEN,
      },
      outboundService: upstream,
      host: '127.0.0.1',
      port: 0,
    }),
  );
  worker = await mf.ready;
  browser = await launchChromium();
}, 180_000);

afterAll(async () => {
  await browser?.close();
  await mf?.dispose();
  rmSync(dir, { recursive: true, force: true });
}, 30_000);

describe('/status in Chromium, JavaScript off', () => {
  it('shows the figures of what was done, markup from the config as text, its style applied under its CSP', async () => {
    for (let i = 0; i < 3; i++) {
      const res = await fetch(new URL('/code', worker), { method: 'POST', headers: { Origin: PAGE, 'Content-Type': 'application/json' }, body: '{}' });
      expect(res.status, await res.text()).toBe(200);
    }
    expect(issued).toHaveLength(1);

    const context = await browser!.newContext({ javaScriptEnabled: false, extraHTTPHeaders: { Authorization: `Bearer ${ADMIN_TOKEN}` } });
    const page = await context.newPage();
    const problems: string[] = [];
    page.on('console', (m) => problems.push(`${m.type()}: ${m.text()}`));
    page.on('pageerror', (e) => problems.push(e.message));
    const res = await page.goto(new URL('/status', worker).href);
    expect(res!.status()).toBe(200);
    expect(res!.headers()['content-type']).toBe('text/html; charset=utf-8');
    expect(await page.locator('h1').textContent()).toBe('Token status');

    const coder = page.locator('section', { has: page.locator('h2', { hasText: 'coder' }) });
    expect(await coder.locator('tbody td').nth(1).textContent()).toBe('held');
    expect(await coder.locator('tbody td').nth(2).textContent()).toMatch(/^3[56]\d\d s$/);
    expect(await coder.locator('dt:text-is("Token requests in window") + dd').textContent()).toBe('1 of 1 per 3600 s');
    expect(await coder.locator('dt:text-is("Tokens issued") + dd').textContent()).toBe('1');
    expect(await coder.locator('dt:text-is("Cool-down") + dd').textContent()).toBe('none');

    // The scope set is text: no <b> element came of it.
    const markup = page.locator('section', { has: page.locator('h2', { hasText: 'markup' }) });
    expect(await markup.locator('tbody td').first().textContent()).toBe('<b>bold</b> read');
    expect(await page.locator('b, script').count()).toBe(0);
    // The style block applied (its hash is in the CSP), and nothing was refused or failed.
    expect(await page.locator('h1').evaluate((h) => getComputedStyle(h).fontSize)).toBe('22.4px');
    expect(problems).toEqual([]);
    expect(await page.content()).not.toContain(issued[0]!);
    await context.close();
  });

  it('without the admin token: 401, no figures', async () => {
    const context = await browser!.newContext({ javaScriptEnabled: false });
    const page = await context.newPage();
    const res = await page.goto(new URL('/status', worker).href);
    expect(res!.status()).toBe(401);
    expect(await page.content()).not.toContain('Token requests');
    await context.close();
  });
});
