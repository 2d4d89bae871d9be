/**
 * Every TOML config block of the docs is a config the Worker accepts: parsed as wrangler would,
 * validated by the same code the Worker runs, with each named secret present, and each rate-limit
 * binding declared by the abuse-protection page's `[[ratelimits]]` with the route's period. The
 * recipes are in docs/configuration.md; the README's first deploy is one more, and the secrets it
 * tells you to set are the ones its config names. The demo config in wrangler.toml is checked the
 * same way, in every environment.
 */
import { readFileSync } from 'node:fs';
import { parse } from 'smol-toml';
import { describe, expect, it } from 'vitest';
import { rateLimitDeclarationIssues, type RateLimitDeclaration } from '../../src/config/checks.ts';
import { parseConfig } from '../../src/config/load.ts';
import { readCredentials } from '../../src/config/secrets.ts';

const doc = (path: string) => readFileSync(new URL(`../../${path}`, import.meta.url), 'utf8');
const tomlBlocks = (text: string) => [...text.matchAll(/```toml\n([\s\S]*?)```/g)].map((m) => m[1]!.replace(/^ {3}/gm, ''));
const recipes = tomlBlocks(doc('docs/configuration.md')).filter((b) => /^\[vars\.(UPSTREAMS|ROUTES)\./m.test(b));
/** The abuse-protection page's `[[ratelimits]]` declarations (the wrangler.toml part of a recipe). */
const declared = tomlBlocks(doc('docs/abuse-protection.md')).flatMap((b) => ((parse(b) as { ratelimits?: RateLimitDeclaration[] }).ratelimits ?? []));

/** Any secret a config names, with a stand-in value. */
function secretsFor(vars: Record<string, unknown>): Record<string, string> {
  const names = JSON.stringify(vars).match(/"\w+_from":"(\w+)"/g) ?? [];
  return Object.fromEntries(names.map((n) => [n.split(':')[1]!.replace(/"/g, ''), 'stand-in-secret']));
}

function accept(vars: Record<string, unknown>): void {
  const config = parseConfig(vars);
  const env = { ...vars, ...secretsFor(vars) };
  for (const [name, u] of Object.entries(config.upstreams)) readCredentials(name, u, env);
}

describe('docs recipes', () => {
  it('has one recipe per API style (ABS, directory JWT, IP-bound sliding, login, AEMO IDX)', () => {
    expect(recipes.map((r) => r.split('\n')[0])).toEqual([
      '[vars.UPSTREAMS.abs]', '[vars.UPSTREAMS.directory]', '[vars.UPSTREAMS.hosting]', '[vars.UPSTREAMS.platform]', '[vars.UPSTREAMS.idx]',
    ]);
  });

  it.each(recipes.map((r) => [r.split('\n')[0], r]))('%s … is accepted', (_, block) => {
    const vars = (parse(block) as { vars: Record<string, unknown> }).vars;
    expect(() => accept(vars)).not.toThrow();
    expect(rateLimitDeclarationIssues(parseConfig(vars), declared)).toEqual([]);
  });

  it('the abuse-protection page declares the binding the ABS recipe names', () => {
    expect(declared.map((d) => d.name)).toEqual(['FORM_LIMIT']);
    const abs = parseConfig((parse(recipes[0]!) as { vars: Record<string, unknown> }).vars);
    expect(abs.routes.code).toMatchObject({ rate_limit: { binding: 'FORM_LIMIT' }, turnstile: { secret_from: 'TURNSTILE_SECRET' }, honeypot: 'website' });
  });

  it('the README’s first deploy is accepted, names its TokenStore binding, and sets exactly the secrets it names', () => {
    const readme = doc('README.md');
    const block = tomlBlocks(readme).find((b) => b.startsWith('[env.production]'));
    if (block === undefined) throw new Error('README.md has no [env.production] block');
    const env = (parse(block) as unknown as { env: { production: { vars: Record<string, unknown>; durable_objects?: { bindings?: unknown[] } } } }).env.production;
    expect(() => accept(env.vars)).not.toThrow();
    expect(rateLimitDeclarationIssues(parseConfig(env.vars), [])).toEqual([]);
    expect(env.durable_objects?.bindings).toEqual([{ name: 'TOKEN_STORE', class_name: 'TokenStore' }]);
    const put = [...readme.matchAll(/wrangler secret put (\w+) --env production/g)].map((m) => m[1]!);
    expect(put.sort()).toEqual(Object.keys(secretsFor(env.vars)).sort());
  });

  interface WranglerEnv {
    vars: Record<string, unknown> & { ROUTES: Record<string, Record<string, unknown>> };
    ratelimits?: RateLimitDeclaration[];
    durable_objects?: unknown;
  }
  const wrangler = parse(doc('wrangler.toml')) as unknown as WranglerEnv & { env: Record<string, WranglerEnv> };

  it('the demo config in wrangler.toml is accepted, and its routes’ rate limits are declared with their periods', () => {
    expect(() => accept(wrangler.vars)).not.toThrow();
    expect(parseConfig(wrangler.vars).demoPages).toBe(true);
    expect(rateLimitDeclarationIssues(parseConfig(wrangler.vars), wrangler.ratelimits ?? [])).toEqual([]);
    expect(parseConfig(wrangler.vars).routes.code).toMatchObject({ rate_limit: { binding: 'FORM_LIMIT', period: 60 }, honeypot: 'website' });
    expect(parseConfig(wrangler.vars).routes.code!.turnstile).toBeUndefined();
  });

  it('the turnstile environment is the demo config with Turnstile on (environments inherit no vars or bindings)', () => {
    const t = wrangler.env.turnstile!;
    expect(() => accept(t.vars)).not.toThrow();
    expect(rateLimitDeclarationIssues(parseConfig(t.vars), t.ratelimits ?? [])).toEqual([]);
    const { DEMO_TURNSTILE_SITEKEY, ...vars } = t.vars;
    expect(DEMO_TURNSTILE_SITEKEY).toBe('1x00000000000000000000AA');
    const { turnstile, ...code } = vars.ROUTES.code!;
    expect(turnstile).toMatchObject({ secret_from: 'DEMO_TURNSTILE_SECRET' });
    expect({ ...vars, ROUTES: { ...vars.ROUTES, code } }).toEqual(wrangler.vars);
    expect([t.ratelimits, t.durable_objects]).toEqual([wrangler.ratelimits, wrangler.durable_objects]);
  });
});
