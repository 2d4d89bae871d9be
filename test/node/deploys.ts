/**
 * @module Deploys over one storage: the Worker built once as `wrangler deploy` would build it, then
 * run under Miniflare once per "deploy" with that deploy's config, every run over the same Durable
 * Object storage, so a test sees what a real redeploy would keep or change.
 */
import { spawnSync } from 'node:child_process';
import { mkdtempSync, readdirSync, readFileSync, readlinkSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { dirname, join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import { Miniflare, convertV4MiniflareOptions, type Json, type Request as MfRequest, type RequestInit as MfRequestInit, type Response as MfResponse } from 'miniflare';

const ROOT = resolve(dirname(fileURLToPath(import.meta.url)), '../..');
const COMPATIBILITY_DATE = /^compatibility_date\s*=\s*"([^"]+)"/m.exec(readFileSync(join(ROOT, 'wrangler.toml'), 'utf8'))![1]!;

/** One deploy left running, for tests that send it several requests and watch its process. */
export interface Running {
  /** `https://injector.example<path>` with `init`, answered by the Worker. */
  dispatch(path: string, init?: MfRequestInit): Promise<MfResponse>;
  /** The workerd process serving this deploy (Linux: found by the socket it listens on). */
  pid: number;
  dispose(): Promise<void>;
}

export interface Deploys {
  /**
   * Start the Worker with `bindings`; without `outbound` its requests go out on real sockets. Stop
   * it with `dispose()`.
   */
  start(bindings: Record<string, Json>, outbound?: (request: MfRequest) => Promise<MfResponse>): Promise<Running>;
  /**
   * One deploy: start the Worker with `bindings` (vars and secrets), every outbound request answered
   * by `outbound`; send `POST https://injector.example<path>` from `origin` with `{}`; stop.
   * Returns the answer's status.
   */
  deployAndCall(bindings: Record<string, Json>, outbound: (request: MfRequest) => Promise<MfResponse>, origin: string, path?: string): Promise<number>;
  /** The same, with the answer's text; without `outbound` the Worker's requests go out on real sockets. */
  deployAndAnswer(bindings: Record<string, Json>, outbound: ((request: MfRequest) => Promise<MfResponse>) | undefined, origin: string, path?: string): Promise<{ status: number; text: string }>;
  /** Remove the bundle and the storage. */
  dispose(): void;
}

/** Build the Worker (in a temp dir named `prefix…`); takes a while, call it from `beforeAll`. */
export function prepareDeploys(prefix: string): Deploys {
  const dir = mkdtempSync(join(tmpdir(), prefix));
  const bundle = join(dir, 'bundle');
  const storage = join(dir, 'storage');
  const r = spawnSync(process.execPath, [join(ROOT, 'node_modules/wrangler/bin/wrangler.js'), 'deploy', '--dry-run', '--outdir', bundle], {
    cwd: ROOT,
    env: { ...process.env, WRANGLER_SEND_METRICS: 'false', CI: '1' },
    encoding: 'utf8',
  });
  if (r.status !== 0) throw new Error(`wrangler build failed: ${r.stdout}${r.stderr}`);
  const miniflare = (bindings: Record<string, Json>, outbound: ((request: MfRequest) => Promise<MfResponse>) | undefined) =>
    new Miniflare(
      convertV4MiniflareOptions({
        compatibilityDate: COMPATIBILITY_DATE,
        scriptPath: join(bundle, 'index.js'),
        modules: true,
        modulesRoot: bundle,
        durableObjects: { TOKEN_STORE: { className: 'TokenStore', useSQLite: true } },
        bindings,
        ...(outbound === undefined ? {} : { outboundService: outbound }),
        resourcePersistencePath: storage,
      }),
    );
  const start: Deploys['start'] = async (bindings, outbound) => {
    const mf = miniflare(bindings, outbound);
    try {
      const pid = listenerPid(Number((await mf.ready).port));
      return { pid, dispatch: (path, init) => mf.dispatchFetch(`https://injector.example${path}`, init), dispose: () => mf.dispose() };
    } catch (e) {
      await mf.dispose();
      throw e;
    }
  };
  const deployAndAnswer: Deploys['deployAndAnswer'] = async (bindings, outbound, origin, path = '/code') => {
    const mf = miniflare(bindings, outbound);
    try {
      const res = await mf.dispatchFetch(`https://injector.example${path}`, { method: 'POST', headers: { Origin: origin, 'Content-Type': 'application/json' }, body: '{}' });
      return { status: res.status, text: await res.text() };
    } finally {
      await mf.dispose();
    }
  };
  return {
    start,
    deployAndAnswer,
    deployAndCall: async (bindings, outbound, origin, path) => (await deployAndAnswer(bindings, outbound, origin, path)).status,
    dispose: () => rmSync(dir, { recursive: true, force: true }),
  };
}

/**
 * The child process of this one listening on TCP `port` on 127.0.0.1: its socket's inode from
 * /proc/net/tcp, then the child holding that inode. (Other test files may run their own workerd
 * next to ours; the port tells them apart.)
 */
function listenerPid(port: number): number {
  const hexPort = port.toString(16).toUpperCase().padStart(4, '0');
  const inodes = new Set<string>();
  for (const table of ['/proc/net/tcp', '/proc/net/tcp6']) {
    for (const line of readFileSync(table, 'utf8').split('\n').slice(1)) {
      const f = line.trim().split(/\s+/);
      // local_address is f[1] (ADDR:PORT), st is f[3] (0A: LISTEN), inode is f[9].
      if (f[1]?.endsWith(`:${hexPort}`) && f[3] === '0A') inodes.add(`socket:[${f[9]}]`);
    }
  }
  for (const pid of readdirSync('/proc').filter((d) => /^\d+$/.test(d))) {
    try {
      if (Number(readFileSync(`/proc/${pid}/stat`, 'utf8').replace(/^.*\) /s, '').split(' ')[1]) !== process.pid) continue;
      for (const fd of readdirSync(`/proc/${pid}/fd`)) if (inodes.has(readlinkSync(`/proc/${pid}/fd/${fd}`))) return Number(pid);
    } catch {
      // gone meanwhile, or not ours to read
    }
  }
  throw new Error(`no child process of ${process.pid} listens on port ${port}`);
}
