/**
 * @module Browser test support: start the whole demo (`node scripts/start.ts`) once, stop it
 * afterwards, read the demo coding service's counters, and launch a Chromium headless (the one
 * scripts/chromium.ts finds: CHROMIUM_PATH, a Chrome/Chromium in the usual places, Playwright's own).
 *
 * The demo's ports are fixed by wrangler.toml (the Worker's allowed origins and the upstream's
 * address), so a demo already running on them is reported instead of being tested by mistake.
 */
import { spawn, type ChildProcess } from 'node:child_process';
import { existsSync, mkdirSync, writeFileSync } from 'node:fs';
import { createConnection } from 'node:net';
import { dirname, join, resolve } from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import { fileURLToPath } from 'node:url';
import { chromium, type Browser } from 'playwright-core';
import { findChromium, HOW_TO_GET, thisMachine } from '../../scripts/chromium.ts';

export const ROOT = resolve(dirname(fileURLToPath(import.meta.url)), '../..');
export const WORKER = 'http://127.0.0.1:8787';
export const CODER = 'http://127.0.0.1:8790';
export const ARTIFACTS = join(ROOT, 'test-artifacts');

/** The demo coding service's `GET /__stats`. */
export interface CoderStats {
  tokenRequests: number;
  tokensIssued: number;
  tokenRequestsRefused: number;
  apiCalls: number;
  apiCallsRefusedByRate: number;
  recordsCoded: number;
  batches: { count: number; maxRecords: number; meanRecords: number | null };
  /** Arrival times (ms since the epoch) of the latest accepted API calls, oldest first. */
  acceptedCallTimes: number[];
}

export async function coderStats(): Promise<CoderStats> {
  const res = await fetch(`${CODER}/__stats`);
  if (!res.ok) throw new Error(`GET ${CODER}/__stats answered ${res.status}`);
  return (await res.json()) as CoderStats;
}

/** Whether something accepts TCP connections on 127.0.0.1:`port`. */
function portInUse(port: number): Promise<boolean> {
  return new Promise((done) => {
    const socket = createConnection({ host: '127.0.0.1', port });
    socket.once('connect', () => {
      socket.destroy();
      done(true);
    });
    socket.once('error', () => done(false));
  });
}

/** A running `node scripts/start.ts`, in its own process group. */
export interface Demo {
  /** The demo's output so far (stdout and stderr, interleaved), for failure messages. */
  log(): string;
  stop(): Promise<void>;
}

/**
 * Start the demo and wait until the Worker serves `/` (the demo page) and the coder its stats.
 * Fails with the demo's output when it exits or does not come up within `timeoutMs`.
 */
export async function startDemo(timeoutMs = 120_000): Promise<Demo> {
  for (const port of [8787, 8790]) {
    if (await portInUse(port)) {
      throw new Error(`port ${port} is already in use on 127.0.0.1: stop the running demo (npm start) before the browser tests`);
    }
  }
  const node = join(ROOT, 'node_modules/.bin/node');
  if (!existsSync(node)) throw new Error(`${node} is missing: run npm ci (the Node 22 devDependency runs scripts/start.ts)`);

  const child: ChildProcess = spawn(node, ['scripts/start.ts'], {
    cwd: ROOT,
    detached: true, // its own process group: stop() ends wrangler and workerd with it
    stdio: ['ignore', 'pipe', 'pipe'],
    env: { ...process.env, WRANGLER_SEND_METRICS: 'false', NO_COLOR: '1' },
  });
  let output = '';
  const keep = (chunk: Buffer) => {
    output = (output + chunk.toString()).slice(-20_000);
  };
  child.stdout?.on('data', keep);
  child.stderr?.on('data', keep);
  const exited = new Promise<number | null>((done) => child.once('exit', (code) => done(code)));
  let gone = false;
  void exited.then(() => (gone = true));

  const demo: Demo = {
    log: () => output,
    async stop() {
      if (gone || child.pid === undefined) return;
      const group = -child.pid;
      try {
        process.kill(group, 'SIGTERM');
      } catch {
        return; // already gone
      }
      const timer = sleep(8_000).then(() => 'timeout' as const);
      if ((await Promise.race([exited, timer])) === 'timeout') {
        try {
          process.kill(group, 'SIGKILL');
        } catch {
          // gone meanwhile
        }
        await exited;
      }
      // workerd may outlive its parent by a moment; give the port back before the next run.
      for (let i = 0; i < 20 && (await portInUse(8787)); i++) await sleep(250);
      saveLog('demo.log', output);
    },
  };

  const deadline = Date.now() + timeoutMs;
  for (;;) {
    if (gone) {
      saveLog('demo.log', output);
      throw new Error(`the demo (node scripts/start.ts) exited before it was ready:\n${output.slice(-4000)}`);
    }
    try {
      const page = await fetch(`${WORKER}/`, { signal: AbortSignal.timeout(5_000) });
      await page.arrayBuffer();
      if (page.ok) {
        await coderStats();
        return demo;
      }
    } catch {
      // not up yet
    }
    if (Date.now() > deadline) {
      await demo.stop();
      throw new Error(`the demo did not serve ${WORKER}/ within ${timeoutMs / 1000} s:\n${output.slice(-4000)}`);
    }
    await sleep(500);
  }
}

export function saveLog(name: string, text: string): void {
  mkdirSync(ARTIFACTS, { recursive: true });
  writeFileSync(join(ARTIFACTS, name), text);
}

/** Headless Chromium, with everything that would reach the internet turned off. */
export async function launchChromium(): Promise<Browser> {
  const found = findChromium(thisMachine(chromium.executablePath()));
  if ('missing' in found) throw new Error(`${found.missing}\n${HOW_TO_GET}`);
  return chromium.launch({
    executablePath: found.path,
    args: [
      '--headless',
      '--no-sandbox',
      '--disable-gpu',
      '--disable-background-networking',
      '--disable-component-update',
      '--disable-sync',
      '--no-first-run',
      '--disable-quic',
    ],
    timeout: 30_000,
  });
}
