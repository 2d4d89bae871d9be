/**
 * `npm run check-config` (issue 10): wrangler.toml checked without deploying, every environment,
 * with the Worker's own messages; secrets against `.dev.vars(.<env>)` or `--secrets`; bindings
 * against each environment's own declarations; exit 1 on any problem. Each case writes its own
 * wrangler.toml in a temporary directory and runs the script as CI would.
 */
import { spawnSync } from 'node:child_process';
import { generateKeyPairSync } from 'node:crypto';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterEach, describe, expect, it } from 'vitest';
import { ROOT } from './browser-support.ts';

const dirs: string[] = [];
afterEach(() => {
  for (const d of dirs.splice(0)) rmSync(d, { recursive: true, force: true });
});

/** Run the script (as `npm run check-config` does) over `files` written to a fresh directory. */
function checkConfig(files: Record<string, string>, args: string[] = [], env: Record<string, string> = {}) {
  const dir = mkdtempSync(join(tmpdir(), 'eti-check-config-'));
  dirs.push(dir);
  for (const [name, text] of Object.entries(files)) writeFileSync(join(dir, name), text);
  const r = spawnSync(
    join(ROOT, 'node_modules/.bin/node'),
    ['--experimental-transform-types', '--disable-warning=ExperimentalWarning', join(ROOT, 'scripts/check-config.ts'), '--config', join(dir, 'wrangler.toml'), ...args],
    { cwd: ROOT, encoding: 'utf8', env: { ...process.env, GITHUB_ACTIONS: '', ...env } },
  );
  return { code: r.status, out: r.stdout, err: r.stderr, lines: r.stdout.split('\n').filter(Boolean) };
}

const HEAD = `name = "x"
main = "src/index.ts"
compatibility_date = "2026-10-20"
[[durable_objects.bindings]]
name = "TOKEN_STORE"
class_name = "TokenStore"
`;

/** An environment's own TokenStore binding and a valid upstream and route, under `[<prefix>vars]`. */
const environment = (prefix: string, extra = '') => `
${prefix === '' ? '' : `[[${prefix}durable_objects.bindings]]\nname = "TOKEN_STORE"\nclass_name = "TokenStore"\n`}
[${prefix}vars.UPSTREAMS.abs]
api_origin = "https://api.example.org"
token_url = "https://auth.example.org/oauth2/token"
client_id = "forms"
client_secret_from = "ABS_SECRET"
${extra}
[${prefix}vars.ROUTES.code]
path = "/api/code/:topic"
upstream = "abs"
target = "/v1/topics/{topic}/code"
allowed_origins = ["https://forms.example.org"]
`;

describe('npm run check-config', () => {
  it('a bad key in a non-default environment: named with its environment, exit 1; the others OK', () => {
    const toml = HEAD + environment('') + environment('env.staging.', 'tokn_url = "https://auth.example.org/token"') + environment('env.production.');
    const r = checkConfig({ 'wrangler.toml': toml, '.dev.vars': 'ABS_SECRET=dev-secret\n' });
    expect(r.code, r.out + r.err).toBe(1);
    expect(r.lines).toContain('error [env.staging] UPSTREAMS.abs: Unrecognized key: "tokn_url"');
    expect(r.lines.filter((l) => l.startsWith('error'))).toHaveLength(1);
    expect(r.out).toMatch(/^ok {4}\[top level\] 1 upstream\(s\), 1 route\(s\), \/status off; secrets from \.dev\.vars$/m);
    expect(r.out).toMatch(/^ok {4}\[env\.production\] /m);
    expect(r.lines.at(-1)).toBe('check-config: problems in env.staging');
  });

  it('the same messages as at start: a bad value, an unknown upstream, a STATUS without a guard', () => {
    const toml =
      HEAD +
      environment('', 'token_budget = { max_requests = 0 }') +
      `[vars.ROUTES.other]\npath = "/other"\nupstream = "nope"\ntarget = "/x"\n[vars.STATUS]\n`;
    const r = checkConfig({ 'wrangler.toml': toml, '.dev.vars': 'ABS_SECRET=s\n' });
    expect(r.code).toBe(1);
    expect(r.lines).toEqual(
      expect.arrayContaining([
        'error [top level] UPSTREAMS.abs.token_budget.max_requests: Too small: expected number to be >=1',
        'error [top level] ROUTES.other.upstream: no upstream named "nope"',
        'error [top level] STATUS: set admin_token_from, access, or both (leave STATUS out and /status is off)',
      ]),
    );
  });

  it('secrets: from .dev.vars.<env> before .dev.vars, or only by name with --secrets; a missing one says where it looked', () => {
    const toml = HEAD + environment('') + environment('env.staging.', 'egress = { mode = "origin", url = "https://egress.example.org", secret_from = "EGRESS_SECRET" }') + '[env.staging.vars.STATUS]\nadmin_token_from = "STATUS_TOKEN"\n';
    const files = { 'wrangler.toml': toml, '.dev.vars': 'ABS_SECRET=s\n', '.dev.vars.staging': `ABS_SECRET=s\nEGRESS_SECRET=too-short\nSTATUS_TOKEN="${'a'.repeat(40)}"\n` };
    const r = checkConfig(files);
    expect(r.code).toBe(1);
    expect(r.lines).toContain(
      'error [env.staging] UPSTREAMS.abs.egress.secret_from: Worker secret "EGRESS_SECRET" must be 32 to 100 characters of A-Z a-z 0-9 _ - (make one with: openssl rand -hex 32)',
    );
    expect(r.out).not.toContain('too-short');
    const missing = checkConfig({ 'wrangler.toml': toml, '.dev.vars': 'ABS_SECRET=s\n' }, ['--env', 'staging']);
    expect(missing.lines).toEqual([
      'error [env.staging] UPSTREAMS.abs.egress.secret_from: Worker secret "EGRESS_SECRET" is not set',
      'error [env.staging] STATUS.admin_token_from: Worker secret "STATUS_TOKEN" is not set',
      'note  [env.staging] secrets looked up in .dev.vars; name the ones you have set with --secrets A,B, e.g. from: npx wrangler secret list --env staging',
      'check-config: problems in env.staging',
    ]);
    const named = checkConfig({ 'wrangler.toml': toml }, ['--secrets', 'ABS_SECRET,EGRESS_SECRET,STATUS_TOKEN']);
    expect(named.code, named.out).toBe(0);
    expect(named.out).toContain('ok    [env.staging] 1 upstream(s), 1 route(s), /status admin token; secrets from --secrets');
  });

  it('bindings are not inherited: an egress binding and the TokenStore declared only at the top level fail in an environment', () => {
    const egress = 'egress = { mode = "binding", binding = "EGRESS" }';
    const toml = `${HEAD}[[services]]\nbinding = "EGRESS"\nservice = "egress-worker"\n${environment('', egress)}${environment('env.staging.', egress).replace(/\[\[env\.staging\.durable_objects\.bindings\]\]\nname = "TOKEN_STORE"\nclass_name = "TokenStore"\n/, '')}`;
    const r = checkConfig({ 'wrangler.toml': toml }, ['--secrets', 'ABS_SECRET']);
    expect(r.code).toBe(1);
    expect(r.out).toMatch(/^ok {4}\[top level\]/m);
    expect(r.lines).toContain('error [env.staging] UPSTREAMS.abs.egress.binding: no service binding named "EGRESS"');
    expect(r.lines).toContain('error [env.staging] durable_objects.bindings: no TOKEN_STORE binding with class_name = "TokenStore" (environments do not inherit bindings)');
  });

  it('an environment without vars, a TOML syntax error, an unknown --env; GitHub annotations', () => {
    const noVars = checkConfig({ 'wrangler.toml': `${HEAD + environment('')}[env.empty]\nname = "x-empty"\n` }, ['--secrets', 'ABS_SECRET'], { GITHUB_ACTIONS: 'true' });
    expect(noVars.code).toBe(1);
    expect(noVars.lines).toContain('error [env.empty] vars: none here (environments do not inherit [vars]: give this one its own UPSTREAMS and ROUTES)');
    expect(noVars.out).toMatch(/^::error file=.*wrangler\.toml,title=check-config \[env\.empty\]::vars: none here/m);
    const broken = checkConfig({ 'wrangler.toml': `${HEAD}[vars\nX = 1\n` });
    expect(broken.code).toBe(1);
    expect(broken.out).toMatch(/^error .*wrangler\.toml \(line 7, column \d+\): not valid TOML/m);
    const unknown = checkConfig({ 'wrangler.toml': HEAD + environment('') }, ['--env', 'prod']);
    expect(unknown.code).toBe(2);
    expect(unknown.err).toContain('no [env.prod]');
  });

  it('a route whose rate-limit period is not its binding\'s (Retry-After would be wrong): exit 1, both periods named', () => {
    const limited = (routePeriod: string) =>
      HEAD +
      `[[ratelimits]]\nname = "FORM_LIMIT"\nnamespace_id = "1001"\nsimple = { limit = 100, period = 10 }\n` +
      environment('').replace('allowed_origins = ["https://forms.example.org"]', `allowed_origins = ["https://forms.example.org"]\nrate_limit = ${routePeriod}`);
    const wrong = checkConfig({ 'wrangler.toml': limited('"FORM_LIMIT"') }, ['--secrets', 'ABS_SECRET']);
    expect(wrong.code, wrong.out).toBe(1);
    expect(wrong.out).toContain('ROUTES.code.rate_limit.period: 60 s, but binding "FORM_LIMIT" counts per 10 s (simple.period)');
    const right = checkConfig({ 'wrangler.toml': limited('{ binding = "FORM_LIMIT", period = 10 }') }, ['--secrets', 'ABS_SECRET']);
    expect(right.code, right.out).toBe(0);
  });

  it("this repository's wrangler.toml passes, given its secrets (the demo's, and its Turnstile environment's)", () => {
    const args = ['--experimental-transform-types', '--disable-warning=ExperimentalWarning', 'scripts/check-config.ts', '--secrets', 'DEMO_CLIENT_SECRET,DEMO_TURNSTILE_SECRET'];
    const r = spawnSync(join(ROOT, 'node_modules/.bin/node'), args, { cwd: ROOT, encoding: 'utf8' });
    expect(r.status, r.stdout + r.stderr).toBe(0);
    expect(r.stdout).toContain('ok    [top level] 1 upstream(s), 2 route(s), /status off; secrets from --secrets');
    expect(r.stdout).toMatch(/^ok +\[env\.turnstile\]/m);
    // Without the Turnstile secret, the environment that needs it is named.
    const without = spawnSync(join(ROOT, 'node_modules/.bin/node'), args.slice(0, -1).concat('DEMO_CLIENT_SECRET'), { cwd: ROOT, encoding: 'utf8' });
    expect(without.status).toBe(1);
    expect(without.stdout).toContain('error [env.turnstile] ROUTES.code.turnstile.secret_from: Worker secret "DEMO_TURNSTILE_SECRET" is not set');
  });
  it('client authentication (issue 16): a key that does not fit its alg, read from .dev.vars; --secrets checks presence only; the mTLS binding under mtls_certificates', () => {
    const auth = [
      'client_auth = "private_key_jwt"',
      'client_assertion = { keys = [{ from = "API_KEY", alg = "ES256" }] }',
      'mtls = { via = "binding", binding = "API_CERT", certificate = "' + 'x'.repeat(43) + '" }',
    ].join('\n');
    const toml = HEAD + environment('', auth).replace('client_secret_from = "ABS_SECRET"\n', '');
    const rsa = JSON.stringify(generateKeyPairSync('rsa', { modulusLength: 2048 }).privateKey.export({ format: 'jwk' }));
    const bad = checkConfig({ 'wrangler.toml': toml, '.dev.vars': `API_KEY=${rsa}\n` });
    expect(bad.code, bad.out).toBe(1);
    expect(bad.lines).toEqual([
      'error [top level] UPSTREAMS.abs.client_assertion.keys.0.from: Worker secret "API_KEY" is an RSA key, but ES256 needs a P-256 key (make one with: openssl genpkey -algorithm EC -pkeyopt ec_paramgen_curve:P-256)',
      'error [top level] UPSTREAMS.abs.mtls.binding: no mTLS certificate binding named "API_CERT" (declare it under mtls_certificates in wrangler.toml)',
      'check-config: problems in top level',
    ]);
    const declared = `${toml}\n[[mtls_certificates]]\nbinding = "API_CERT"\ncertificate_id = "00000000-0000-0000-0000-000000000000"\n`;
    const named = checkConfig({ 'wrangler.toml': declared }, ['--secrets', 'API_KEY']);
    expect(named.code, named.out).toBe(0);
    // Named by --secrets but not among them: still missing.
    const unnamed = checkConfig({ 'wrangler.toml': declared }, ['--secrets', 'OTHER']);
    expect(unnamed.lines).toContain('error [top level] UPSTREAMS.abs.client_assertion.keys.0.from: Worker secret "API_KEY" is not set');
    const ec = JSON.stringify(generateKeyPairSync('ec', { namedCurve: 'P-256' }).privateKey.export({ format: 'jwk' }));
    expect(checkConfig({ 'wrangler.toml': declared, '.dev.vars': `API_KEY=${ec}\n` }).code).toBe(0);
  });
});
