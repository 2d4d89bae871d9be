/**
 * `npm run check-config`: validate wrangler.toml without deploying — the top level and every
 * `[env.NAME]` — with the Worker's own checks, so each message is the one the Worker would log at
 * start (`UPSTREAMS.abs.token_url: must be an absolute http(s) URL`).
 *
 *   npm run check-config                          # every environment; secrets from .dev.vars(.<env>)
 *   npm run check-config -- --env production     # one environment (`--env top` for the top level)
 *   npm run check-config -- --secrets A,B         # the secrets you have set (`wrangler secret list`)
 *   npm run check-config -- --config other.toml
 *
 * Per environment: its own `vars` (environments do not inherit `vars` or bindings), parsed with
 * `parseConfig`; every secret the config names looked up in `.dev.vars.<env>` (else `.dev.vars`,
 * as `wrangler dev` does) or in `--secrets` (then only their presence is known, not their
 * strength); every binding it names looked up among that environment's own declarations; and the
 * TokenStore binding. One line per problem, `::error` annotations under GitHub Actions, exit 1 on
 * any problem (2 on a usage error). Runs on Node 22 with type stripping, as scripts/start.ts.
 */
import { existsSync, readFileSync } from 'node:fs';
import { registerHooks } from 'node:module';
import { dirname, join } from 'node:path';
import { parseArgs } from 'node:util';
import { parse, TomlError } from 'smol-toml';

// The Worker's modules import each other without extensions (the bundler's way); Node needs one.
registerHooks({
  resolve(specifier, context, nextResolve) {
    if (/^\.\.?\//.test(specifier) && !/\.[cm]?[jt]s$/.test(specifier) && context.parentURL?.includes('/src/')) return nextResolve(`${specifier}.ts`, context);
    return nextResolve(specifier, context);
  },
});
const { ConfigError } = await import('../src/config/schema.ts');
const { parseConfig } = await import('../src/config/load.ts');
const { BINDING_KINDS, startIssues } = await import('../src/config/secrets.ts');
const { rateLimitDeclarationIssues } = await import('../src/config/checks.ts');
type BindingKind = keyof typeof BINDING_KINDS;

/** A value that stands for a secret known only by name (`--secrets`): strong enough for every check. */
const NAMED_SECRET = 'f'.repeat(64);

/** A binding wrangler.toml declares, standing in for the runtime object in `startIssues`. */
class Declared {
  constructor(readonly kinds: Set<BindingKind>) {}
}

interface Environment {
  /** `top level` or `env.NAME`. */
  label: string;
  /** The NAME of `[env.NAME]`; undefined for the top level. */
  name?: string;
  section: Record<string, unknown>;
}


function usage(message: string): never {
  console.error(`check-config: ${message}\nusage: npm run check-config -- [--config wrangler.toml] [--env NAME]... [--secrets A,B]`);
  process.exit(2);
}

/** KEY=VALUE lines (the .dev.vars format: comments, optional quotes). */
function readDevVars(text: string): Record<string, string> {
  const vars: Record<string, string> = {};
  for (const line of text.split(/\r?\n/)) {
    const m = /^\s*(?:export\s+)?([A-Za-z_][A-Za-z0-9_]*)\s*=\s*(.*?)\s*$/.exec(line);
    if (m) vars[m[1]!] = m[2]!.replace(/^"(.*)"$/, '$1').replace(/^'(.*)'$/, '$1');
  }
  return vars;
}

const isTable = (v: unknown): v is Record<string, unknown> => typeof v === 'object' && v !== null && !Array.isArray(v);

/** The bindings an environment declares itself, by name, with their kinds. */
function declaredBindings(section: Record<string, unknown>): Record<string, Declared> {
  const out: Record<string, Declared> = {};
  for (const [kind, spec] of Object.entries(BINDING_KINDS) as Array<[BindingKind, (typeof BINDING_KINDS)[BindingKind]]>) {
    for (const key of spec.sections) {
      const entries = section[key];
      if (!Array.isArray(entries)) continue;
      for (const e of entries) {
        const name = isTable(e) ? (e.binding ?? e.name) : undefined;
        if (typeof name === 'string') (out[name] ??= new Declared(new Set())).kinds.add(kind);
      }
    }
  }
  return out;
}

/** Whether the environment declares the Durable Object binding `name` of class `className`. */
function hasDurableObject(section: Record<string, unknown>, name: string, className: string): boolean {
  const dos = section.durable_objects;
  const bindings = isTable(dos) ? dos.bindings : undefined;
  return Array.isArray(bindings) && bindings.some((b) => isTable(b) && b.name === name && b.class_name === className);
}

const hasTokenStore = (section: Record<string, unknown>) => hasDurableObject(section, 'TOKEN_STORE', 'TokenStore');

/** Stands in for a declared Durable Object namespace in the start checks. */
const DECLARED_NAMESPACE = { idFromName: () => undefined, get: () => undefined };

/** Check one environment: its problems, notes that help fix them, and a one-line summary. */
function check(env: Environment, root: string, namedSecrets: string[] | undefined): { problems: string[]; notes: string[]; summary: string } {
  const problems: string[] = [];
  const vars = isTable(env.section.vars) ? env.section.vars : undefined;
  if (vars === undefined && env.name !== undefined) problems.push('vars: none here (environments do not inherit [vars]: give this one its own UPSTREAMS and ROUTES)');
  if (!hasTokenStore(env.section)) {
    problems.push(`durable_objects.bindings: no TOKEN_STORE binding with class_name = "TokenStore"${env.name === undefined ? '' : ' (environments do not inherit bindings)'}`);
  }

  let secrets: Record<string, string>;
  let secretsFrom: string;
  if (namedSecrets !== undefined) {
    secrets = Object.fromEntries(namedSecrets.map((n) => [n, NAMED_SECRET]));
    secretsFrom = '--secrets';
  } else {
    const own = env.name === undefined ? undefined : join(root, `.dev.vars.${env.name}`);
    const file = own !== undefined && existsSync(own) ? own : join(root, '.dev.vars');
    secrets = existsSync(file) ? readDevVars(readFileSync(file, 'utf8')) : {};
    secretsFrom = existsSync(file) ? file.slice(root.length + 1) : `no ${own === undefined ? '.dev.vars' : `.dev.vars.${env.name} or .dev.vars`}`;
  }

  let summary = '';
  try {
    const config = parseConfig(vars ?? {});
    const bindings = declaredBindings(env.section);
    // With --secrets only the names are known: a client-assertion key is checked for presence, not content.
    const bound = (kind: BindingKind, value: unknown) => value instanceof Declared && value.kinds.has(kind);
    const pacer = hasDurableObject(env.section, 'PACER', 'Pacer') ? { PACER: DECLARED_NAMESPACE } : {};
    problems.push(...startIssues(config, { ...vars, ...secrets, ...bindings, ...pacer }, bound, namedSecrets !== undefined).map((i) => i.issue));
    // What only wrangler.toml can tell: a route's period is its binding's (else Retry-After lies).
    // (A binding not declared at all is already a start issue above.)
    const ratelimits = (Array.isArray(env.section.ratelimits) ? env.section.ratelimits : []).flatMap((e: unknown) =>
      isTable(e) && typeof e.name === 'string' ? [{ name: e.name, ...(isTable(e.simple) ? { simple: e.simple as { period?: number } } : {}) }] : [],
    );
    problems.push(...rateLimitDeclarationIssues(config, ratelimits).filter((p) => p.includes('.period:')));
    const guard = config.status === undefined ? 'off' : [config.status.admin_token_from === undefined ? '' : 'admin token', config.status.access === undefined ? '' : 'Access'].filter(Boolean).join(' + ');
    summary = `${Object.keys(config.upstreams).length} upstream(s), ${Object.keys(config.routes).length} route(s), /status ${guard}; secrets from ${secretsFrom}`;
  } catch (e) {
    if (!(e instanceof ConfigError)) throw e;
    problems.push(...e.issues);
  }
  const notes: string[] = [];
  if (problems.some((p) => p.includes('" is not set'))) {
    notes.push(`secrets looked up in ${secretsFrom}; name the ones you have set with --secrets A,B, e.g. from: npx wrangler secret list${env.name === undefined ? '' : ` --env ${env.name}`}`);
  }
  return { problems, notes, summary };
}

// ---------------------------------------------------------------------------------------------

let args: ReturnType<typeof parseArgs<{ options: { config: { type: 'string' }; env: { type: 'string'; multiple: true }; secrets: { type: 'string' } } }>>;
try {
  args = parseArgs({ options: { config: { type: 'string' }, env: { type: 'string', multiple: true }, secrets: { type: 'string' } }, allowPositionals: false });
} catch (e) {
  usage(e instanceof Error ? e.message : String(e));
}
const configPath = args.values.config ?? 'wrangler.toml';
if (!existsSync(configPath)) usage(`${configPath} not found`);
const root = dirname(configPath) === '.' ? process.cwd() : dirname(configPath);
const namedSecrets = args.values.secrets?.split(',').map((s) => s.trim()).filter(Boolean);

let toml: Record<string, unknown>;
try {
  toml = parse(readFileSync(configPath, 'utf8'));
} catch (e) {
  const where = e instanceof TomlError ? ` (line ${e.line}, column ${e.column})` : '';
  console.log(`error ${configPath}${where}: not valid TOML: ${e instanceof Error ? e.message.split('\n')[0] : String(e)}`);
  process.exit(1);
}

const envs: Environment[] = [{ label: 'top level', section: toml }];
if (isTable(toml.env)) for (const [name, section] of Object.entries(toml.env)) if (isTable(section)) envs.push({ label: `env.${name}`, name, section });
const wanted = args.values.env;
const selected = wanted === undefined ? envs : envs.filter((e) => wanted.includes(e.name ?? 'top'));
for (const w of wanted ?? []) if (w !== 'top' && !envs.some((e) => e.name === w)) usage(`no [env.${w}] in ${configPath}`);

const failed: string[] = [];
const github = process.env.GITHUB_ACTIONS === 'true';
for (const env of selected) {
  const { problems, notes, summary } = check(env, root, namedSecrets);
  if (problems.length === 0) console.log(`ok    [${env.label}] ${summary}`);
  else failed.push(env.label);
  for (const p of problems) {
    console.log(`error [${env.label}] ${p}`);
    if (github) console.log(`::error file=${configPath},title=check-config [${env.label}]::${p.replace(/%/g, '%25').replace(/\r?\n/g, '%0A')}`);
  }
  for (const n of notes) console.log(`note  [${env.label}] ${n}`);
}
console.log(failed.length === 0 ? `check-config: ${selected.length} environment(s) OK` : `check-config: problems in ${failed.join(', ')}`);
process.exit(failed.length === 0 ? 0 : 1);
