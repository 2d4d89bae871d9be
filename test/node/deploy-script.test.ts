/**
 * `npm run deploy` checks the config first: a broken config is refused before wrangler builds or
 * uploads anything; a good one is deployed (here `--dry-run`, which builds the bundle and uploads
 * nothing). Each case writes its own wrangler.toml in a temporary directory.
 */
import { spawnSync } from 'node:child_process';
import { existsSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterEach, describe, expect, it } from 'vitest';
import { ROOT } from './browser-support.ts';

const dirs: string[] = [];
afterEach(() => {
  for (const d of dirs.splice(0)) rmSync(d, { recursive: true, force: true });
});

/** Run `npm run deploy -- <args>` as a user would, over a wrangler.toml holding `vars`. */
function deploy(vars: string, args: string[]) {
  const dir = mkdtempSync(join(tmpdir(), 'eti-deploy-'));
  dirs.push(dir);
  writeFileSync(
    join(dir, 'wrangler.toml'),
    `name = "eti-deploy-test"\nmain = "${join(ROOT, 'src/index.ts')}"\ncompatibility_date = "2026-11-02"\n[[durable_objects.bindings]]\nname = "TOKEN_STORE"\nclass_name = "TokenStore"\n[[migrations]]\ntag = "v1"\nnew_sqlite_classes = ["TokenStore"]\n${vars}`,
  );
  writeFileSync(join(dir, '.dev.vars'), 'ABS_SECRET=dev-secret\n');
  const outdir = join(dir, 'dist');
  const r = spawnSync('npm', ['run', '--silent', 'deploy', '--', '--config', join(dir, 'wrangler.toml'), ...args, '--outdir', outdir], {
    cwd: ROOT,
    encoding: 'utf8',
    env: { ...process.env, WRANGLER_SEND_METRICS: 'false', CI: '1' },
  });
  return { code: r.status, out: `${r.stdout}${r.stderr}`, built: existsSync(join(outdir, 'index.js')) };
}

const UPSTREAM = `
[vars.UPSTREAMS.abs]
api_origin = "https://api.example.org"
token_url = "https://auth.example.org/oauth2/token"
client_id = "forms"
client_secret_from = "ABS_SECRET"
[vars.ROUTES.code]
path = "/api/code/:topic"
upstream = "abs"
target = "/v1/topics/{topic}/code"
allowed_origins = ["https://forms.example.org"]
`;

describe('npm run deploy', () => {
  it('refuses a broken config, naming the key, and builds nothing', () => {
    const r = deploy(UPSTREAM.replace('https://auth.example.org/oauth2/token', 'http://auth.example.org/oauth2/token'), ['--dry-run']);
    expect(r.code, r.out).toBe(1);
    expect(r.out).toContain('UPSTREAMS.abs.token_url: must be https');
    expect(r.out).toContain('deploy: refused');
    expect(r.built).toBe(false);
  });

  it('refuses a config whose secret is not set (here: not in .dev.vars)', () => {
    const r = deploy(UPSTREAM.replace('"ABS_SECRET"', '"NOT_SET_SECRET"'), ['--dry-run']);
    expect(r.code, r.out).toBe(1);
    expect(r.out).toContain('UPSTREAMS.abs.client_secret_from: Worker secret "NOT_SET_SECRET" is not set');
    expect(r.built).toBe(false);
  });

  it('deploys a good config (dry run: the bundle is built)', () => {
    const r = deploy(UPSTREAM, ['--dry-run']);
    expect(r.code, r.out).toBe(0);
    expect(r.built).toBe(true);
  });
});
