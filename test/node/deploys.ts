/**
 * @module Deploys over one storage: the Worker built once as `wrangler deploy` would build it, then
 * run under Miniflare once per "deploy" with that deploy's config, every run over the same Durable
 * Object storage, so a test sees what a real redeploy would keep or change.
 */
import { spawnSync } from 'node:child_process';
import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { dirname, join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import { Miniflare, convertV4MiniflareOptions, type Json, type Request as MfRequest, type Response as MfResponse } from 'miniflare';

const ROOT = resolve(dirname(fileURLToPath(import.meta.url)), '../..');
const COMPATIBILITY_DATE = /^compatibility_date\s*=\s*"([^"]+)"/m.exec(readFileSync(join(ROOT, 'wrangler.toml'), 'utf8'))![1]!;

export interface Deploys {
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
  const deployAndAnswer: Deploys['deployAndAnswer'] = async (bindings, outbound, origin, path = '/code') => {
    const mf = new Miniflare(
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
    try {
      const res = await mf.dispatchFetch(`https://injector.example${path}`, { method: 'POST', headers: { Origin: origin, 'Content-Type': 'application/json' }, body: '{}' });
      return { status: res.status, text: await res.text() };
    } finally {
      await mf.dispose();
    }
  };
  return {
    deployAndAnswer,
    deployAndCall: async (bindings, outbound, origin, path) => (await deployAndAnswer(bindings, outbound, origin, path)).status,
    dispose: () => rmSync(dir, { recursive: true, force: true }),
  };
}
