/**
 * `npm run deploy`: check the config first, deploy only if it passes. A broken config never
 * reaches Cloudflare: the Worker would otherwise load it at its first request and answer 500.
 *
 *   npm run deploy                              # the top-level config
 *   npm run deploy -- --env production         # one environment
 *   npm run deploy -- --env production --dry-run --outdir dist   # any `wrangler deploy` option
 *
 * The check is `npm run check-config` for the same wrangler.toml (`--config`) and environment
 * (`--env`). The secrets it checks for are the ones Cloudflare holds (`wrangler secret list`), or,
 * with `--dry-run` (nothing is uploaded), the ones in `.dev.vars`. Any problem: the messages, and
 * exit 1 without deploying. Every argument is passed on to `wrangler deploy` unchanged.
 */
import { spawnSync } from 'node:child_process';
import { dirname, join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';

const ROOT = resolve(dirname(fileURLToPath(import.meta.url)), '..');
const WRANGLER = join(ROOT, 'node_modules/wrangler/bin/wrangler.js');
const args = process.argv.slice(2);

/** The value of `--name VALUE` or `--name=VALUE` (or `-e` for --env) among `args`. */
function option(name: string, short?: string): string | undefined {
  for (let i = 0; i < args.length; i++) {
    const a = args[i]!;
    if (a === `--${name}` || (short !== undefined && a === short)) return args[i + 1];
    if (a.startsWith(`--${name}=`)) return a.slice(name.length + 3);
  }
  return undefined;
}

const env = option('env', '-e');
const config = option('config', '-c');
const dryRun = args.includes('--dry-run');
const where = env === undefined ? '' : ` --env ${env}`;

const check = ['--experimental-transform-types', '--disable-warning=ExperimentalWarning', join(ROOT, 'scripts/check-config.ts'), '--env', env ?? 'top'];
if (config !== undefined) check.push('--config', config);
if (!dryRun) {
  // The names of the secrets Cloudflare holds for this Worker (never their values).
  const listed = spawnSync(process.execPath, [WRANGLER, 'secret', 'list', '--format', 'json', ...(env === undefined ? [] : ['--env', env]), ...(config === undefined ? [] : ['--config', config])], {
    encoding: 'utf8',
    env: { ...process.env, WRANGLER_SEND_METRICS: 'false' },
  });
  let names: string[] | undefined;
  try {
    const parsed: unknown = JSON.parse(listed.stdout);
    if (Array.isArray(parsed)) names = parsed.flatMap((s: unknown) => (typeof s === 'object' && s !== null && typeof Reflect.get(s, 'name') === 'string' ? [String(Reflect.get(s, 'name'))] : []));
  } catch {
    names = undefined;
  }
  if (listed.status !== 0 || names === undefined) {
    console.error(`deploy: refused: could not list the Worker's secrets to check the config (npx wrangler secret list${where}).`);
    console.error('deploy: log in with `npx wrangler login`, set the secrets with `npx wrangler secret put NAME`, or try `npm run deploy -- --dry-run` first.');
    process.exit(1);
  }
  check.push('--secrets', names.join(','));
}

const checked = spawnSync(process.execPath, check, { stdio: 'inherit' });
if (checked.status !== 0) {
  console.error(`deploy: refused: the config has problems (above). Nothing was deployed. Fix them, then run npm run deploy${where === '' ? '' : ` --${where}`} again.`);
  process.exit(1);
}
const deployed = spawnSync(process.execPath, [WRANGLER, 'deploy', ...args], { stdio: 'inherit', env: process.env });
process.exit(deployed.status ?? 1);
