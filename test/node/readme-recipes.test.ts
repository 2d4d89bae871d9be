/**
 * Every TOML config block in the README (the recipes) is a config the Worker accepts: parsed as
 * wrangler would, validated by the same code the Worker runs, with each named secret present.
 * The demo config in wrangler.toml is checked the same way.
 */
import { readFileSync } from 'node:fs';
import { parse } from 'smol-toml';
import { describe, expect, it } from 'vitest';
import { parseConfig, readCredentials } from '../../src/config.ts';

const readme = readFileSync(new URL('../../README.md', import.meta.url), 'utf8');
const blocks = [...readme.matchAll(/```toml\n([\s\S]*?)```/g)].map((m) => m[1]!);
const recipes = blocks.filter((b) => /^\[vars\.(UPSTREAMS|ROUTES)\./m.test(b));

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
  });

  it('the demo config in wrangler.toml is accepted', () => {
    const toml = parse(readFileSync(new URL('../../wrangler.toml', import.meta.url), 'utf8')) as { vars: Record<string, unknown> };
    expect(() => accept(toml.vars)).not.toThrow();
    expect(parseConfig(toml.vars).demoPages).toBe(true);
  });
});
