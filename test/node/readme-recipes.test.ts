/**
 * Every TOML config block in the README (the recipes) is a config the Worker accepts: parsed as
 * wrangler would, validated by the same code the Worker runs, with each named secret present, and
 * each rate-limit binding declared by the README's `[[ratelimits]]` with the route's period.
 * The demo config in wrangler.toml is checked the same way, in every environment.
 */
import { readFileSync } from 'node:fs';
import { parse } from 'smol-toml';
import { describe, expect, it } from 'vitest';
import { parseConfig, rateLimitDeclarationIssues, readCredentials, type RateLimitDeclaration } from '../../src/config.ts';

const readme = readFileSync(new URL('../../README.md', import.meta.url), 'utf8');
const blocks = [...readme.matchAll(/```toml\n([\s\S]*?)```/g)].map((m) => m[1]!);
const recipes = blocks.filter((b) => /^\[vars\.(UPSTREAMS|ROUTES)\./m.test(b));
/** The README's `[[ratelimits]]` declarations (the wrangler.toml part of a recipe). */
const declared = blocks.flatMap((b) => ((parse(b) as { ratelimits?: RateLimitDeclaration[] }).ratelimits ?? []));

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

describe('README recipes', () => {
  it('has one recipe per seed API style (ABS, directory, sliding, login, AEMO IDX)', () => {
    expect(recipes.length).toBe(5);
  });

  it.each(recipes.map((r) => [r.split('\n')[0], r]))('%s … is accepted', (_, block) => {
    const vars = (parse(block) as { vars: Record<string, unknown> }).vars;
    expect(() => accept(vars)).not.toThrow();
    expect(rateLimitDeclarationIssues(parseConfig(vars), declared)).toEqual([]);
  });

  it('the abuse-protection section declares the binding the ABS recipe names', () => {
    expect(declared.map((d) => d.name)).toEqual(['FORM_LIMIT']);
    const abs = parseConfig((parse(recipes[0]!) as { vars: Record<string, unknown> }).vars);
    expect(abs.routes.code).toMatchObject({ rate_limit: { binding: 'FORM_LIMIT' }, turnstile: { secret_from: 'TURNSTILE_SECRET' }, honeypot: 'website' });
  });

  interface WranglerEnv {
    vars: Record<string, unknown> & { ROUTES: Record<string, Record<string, unknown>> };
    ratelimits?: RateLimitDeclaration[];
    durable_objects?: unknown;
  }
  const wrangler = parse(readFileSync(new URL('../../wrangler.toml', import.meta.url), 'utf8')) as unknown as WranglerEnv & { env: Record<string, WranglerEnv> };

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
