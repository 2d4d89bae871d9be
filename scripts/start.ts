/**
 * `npm start`: the whole demo on this machine, with no real credentials.
 *
 * 1. `.dev.vars` (Worker secrets for local runs) is created from `.dev.vars.example` if missing.
 * 2. The bundled demo coding service (ABS-like, demo/main.ts) listens on 127.0.0.1:8790.
 * 3. The injector runs under `wrangler dev` on http://localhost:8787, with fresh local state so a
 *    token left over from an earlier run is not reused against a restarted demo service.
 * 4. The terminal says where to open the form, and follows the demo's token state, and its API
 *    limits (1 call per second, 1,000 a day, like the ABS public tier) whenever a call is refused.
 *
 * `DEMO_TURNSTILE=1 npm start` runs the `turnstile` environment of wrangler.toml instead: the
 * coding route checks Cloudflare Turnstile, with Cloudflare's published test keys (the page's
 * widget and siteverify are Cloudflare's own, so this needs the internet).
 *
 * Runs on Node 22 (type stripping); `npm start` finds the Node 22 from the `node` devDependency.
 */
import { spawn, type ChildProcess } from 'node:child_process';
import { appendFileSync, copyFileSync, existsSync, readFileSync, rmSync } from 'node:fs';
import { setTimeout as sleep } from 'node:timers/promises';
import { duration, type CodingServiceStats } from '../demo/coding-service.ts';

const WORKER_PORT = Number(process.env.PORT ?? 8787);
const TURNSTILE = process.env.DEMO_TURNSTILE === '1' || process.env.DEMO_TURNSTILE === 'true';
const CODER_PORT = Number(process.env.DEMO_CODER_PORT ?? 8790);
const STATE_DIR = '.wrangler/demo-state';

/** Read KEY=VALUE lines (the .dev.vars format). */
function readVars(path: string): Record<string, string> {
  const vars: Record<string, string> = {};
  for (const line of readFileSync(path, 'utf8').split('\n')) {
    const m = /^\s*([A-Za-z_][A-Za-z0-9_]*)\s*=\s*(.*?)\s*$/.exec(line);
    if (m) vars[m[1]!] = m[2]!.replace(/^"(.*)"$/, '$1');
  }
  return vars;
}

const children: ChildProcess[] = [];
function stopAll(code = 0): never {
  for (const c of children) if (c.exitCode === null) c.kill('SIGTERM');
  process.exit(code);
}
process.on('SIGINT', () => stopAll(0));
process.on('SIGTERM', () => stopAll(0));

function start(name: string, command: string, args: string[], env: Record<string, string> = {}): ChildProcess {
  const child = spawn(command, args, { env: { ...process.env, ...env }, stdio: ['ignore', 'pipe', 'pipe'] });
  const prefix = (chunk: Buffer) =>
    chunk
      .toString()
      .split('\n')
      .filter((l) => l.trim() !== '')
      .map((l) => `[${name}] ${l}`)
      .join('\n');
  child.stdout?.on('data', (c: Buffer) => process.stdout.write(`${prefix(c)}\n`));
  child.stderr?.on('data', (c: Buffer) => process.stderr.write(`${prefix(c)}\n`));
  child.on('exit', (code) => {
    console.error(`[${name}] exited (${code ?? 'signal'}); stopping the demo`);
    stopAll(code === 0 ? 0 : 1);
  });
  children.push(child);
  return child;
}

async function waitFor(url: string, what: string, seconds: number): Promise<void> {
  for (let i = 0; i < seconds * 4; i++) {
    try {
      await fetch(url);
      return;
    } catch {
      await sleep(250);
    }
  }
  console.error(`${what} did not start within ${seconds} s (${url})`);
  stopAll(1);
}

if (!existsSync('.dev.vars')) {
  copyFileSync('.dev.vars.example', '.dev.vars');
  console.log('created .dev.vars from .dev.vars.example (demo secrets only; never commit real ones)');
}
const secret = readVars('.dev.vars').DEMO_CLIENT_SECRET;
if (secret === undefined || secret === '') {
  console.error('.dev.vars has no DEMO_CLIENT_SECRET: copy it from .dev.vars.example');
  process.exit(1);
}
if (TURNSTILE && !readVars('.dev.vars').DEMO_TURNSTILE_SECRET) {
  // An older .dev.vars: add the public always-passes test secret from the example.
  const testSecret = readVars('.dev.vars.example').DEMO_TURNSTILE_SECRET!;
  appendFileSync('.dev.vars', `\n# Cloudflare's always-passes Turnstile test secret (added by npm start)\nDEMO_TURNSTILE_SECRET=${testSecret}\n`);
  console.log('added DEMO_TURNSTILE_SECRET (Cloudflare\'s public test secret) to .dev.vars');
}

start('coder', process.execPath, ['demo/main.ts'], { DEMO_CODER_PORT: String(CODER_PORT), DEMO_CLIENT_SECRET: secret });
await waitFor(`http://127.0.0.1:${CODER_PORT}/__stats`, 'the demo coding service', 30);

rmSync(STATE_DIR, { recursive: true, force: true });
const envArgs = TURNSTILE ? ['--env', 'turnstile'] : [];
start('worker', process.execPath, ['node_modules/wrangler/bin/wrangler.js', 'dev', ...envArgs, '--ip', '127.0.0.1', '--port', String(WORKER_PORT), '--persist-to', STATE_DIR, '--show-interactive-dev-session=false'], {
  WRANGLER_SEND_METRICS: 'false',
});
await waitFor(`http://127.0.0.1:${WORKER_PORT}/`, 'wrangler dev', 120);

/** The demo coding service's counters, or undefined while it cannot be asked. */
async function coderStats(): Promise<CodingServiceStats | undefined> {
  try {
    return (await (await fetch(`http://127.0.0.1:${CODER_PORT}/__stats`)).json()) as CodingServiceStats;
  } catch {
    return undefined; // the coder is restarting or gone; its exit handler stops the demo
  }
}

const limits = (await coderStats())?.limits;
const abs = limits?.requestsPerSecond === 1 && limits.dailyQuota === 1000 ? 'like the ABS public tier' : 'the ABS public tier allows 1 per second, 1000 a day';
const limitsLine = limits === undefined ? '' : `${limits.requestsPerSecond} API call(s) per second, ${limits.dailyQuota} a day (day in ${limits.quotaTimeZone}); ${abs}`;

console.log(`
  Demo ready.
    Open the coding form:        http://localhost:${WORKER_PORT}/
    The injector route:          POST http://localhost:${WORKER_PORT}/api/code/occp
    Demo coding service (ABS-like, holds the only credentials): http://127.0.0.1:${CODER_PORT}
      its limits:                ${limitsLine}
    Cloudflare Turnstile on the form: ${TURNSTILE ? "on (Cloudflare's test keys; needs the internet)" : 'off (DEMO_TURNSTILE=1 npm start turns it on)'}
  The browser never sees a token; watch the token state below. Ctrl-C stops both.
`);

// Follow the demo service's counters: one token, reused by every submission; and say so when a
// call is refused by the rate or by the day's quota (the form then shows the service's message).
let lastToken = '';
let refusedByRate = 0;
let refusedByQuota = 0;
for (;;) {
  const s = await coderStats();
  if (s !== undefined) {
    const token = `token state: ${s.tokensIssued} token(s) issued, ${s.tokenRequestsRefused} token request(s) refused, ${s.apiCalls} API call(s) made with it`;
    if (token !== lastToken) console.log(`[demo] ${token}`);
    lastToken = token;
    if (s.apiCallsRefusedByRate > refusedByRate) {
      console.log(
        `[demo] rate: ${s.apiCallsRefusedByRate} API call(s) refused (429) so far, ` +
          `for exceeding ${s.limits.requestsPerSecond} call(s) per second`,
      );
    }
    refusedByRate = s.apiCallsRefusedByRate;
    if (s.apiCallsRefusedByQuota > refusedByQuota) {
      const q = s.quotaToday;
      const resets = Date.parse(q.resetsAt);
      console.log(
        `[demo] quota state: ${q.used} of ${s.limits.dailyQuota} API calls used today (day in ${s.limits.quotaTimeZone}), ` +
          `${s.apiCallsRefusedByQuota} refused (429) so far; ` +
          (q.remaining === 0 ? `spent until ${q.resetsAt} (in ${duration(resets - Date.now())})` : `${q.remaining} left today`),
      );
    }
    refusedByQuota = s.apiCallsRefusedByQuota;
  }
  await sleep(2000);
}
