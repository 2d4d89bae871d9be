/**
 * The README's table of problem types ("Requests the Worker refuses") lists every problem type
 * the Worker has, with its status, and injector-form.js has messages only for real ones.
 */
import { readFileSync } from 'node:fs';
import { describe, expect, it } from 'vitest';
import { PROBLEM_TYPES } from '../../src/problem.ts';

const readme = readFileSync(new URL('../../README.md', import.meta.url), 'utf8');
const rows = new Map([...readme.matchAll(/^\| `([a-z-]+)` \| (\d{3}) \|/gm)].map((m) => [m[1]!, Number(m[2])]));

describe('problem types', () => {
  it('every one is in the README’s table with its status', () => {
    const table = Object.keys(PROBLEM_TYPES).map((slug) => [slug, rows.get(slug)]);
    expect(table).toEqual(Object.entries(PROBLEM_TYPES).map(([slug, t]) => [slug, t.status]));
  });

  it('injector-form.js words only reasons the Worker can give', () => {
    const script = readFileSync(new URL('../../public/injector-form.js', import.meta.url), 'utf8');
    const block = /const MESSAGES = \{([\s\S]*?)\};/.exec(script)![1]!;
    const keys = [...block.matchAll(/'([a-z-]+)':/g)].map((m) => m[1]!);
    expect(keys.length).toBeGreaterThan(10);
    expect(keys.filter((k) => !Object.hasOwn(PROBLEM_TYPES, k))).toEqual([]);
  });
});
