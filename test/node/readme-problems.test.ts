/**
 * The problem-type tables in docs/problems.md list every problem type the Worker has, with its
 * status and title, and injector-form.js has messages only for real ones.
 */
import { readFileSync } from 'node:fs';
import { describe, expect, it } from 'vitest';
import { PROBLEM_TYPES } from '../../src/problem.ts';

const problems = readFileSync(new URL('../../docs/problems.md', import.meta.url), 'utf8');
const rows = new Map([...problems.matchAll(/^\| `([a-z-]+)` \| (\d{3}) \| ([^|]+?) \|/gm)].map((m) => [m[1]!, { status: Number(m[2]), title: m[3]! }]));

describe('problem types', () => {
  it('every one is in the tables of docs/problems.md with its status and title, and nothing else is', () => {
    expect(Object.fromEntries(rows)).toEqual(Object.fromEntries(Object.entries(PROBLEM_TYPES).map(([slug, t]) => [slug, { status: t.status, title: t.title }])));
  });

  it('injector-form.js words only reasons the Worker can give', () => {
    const script = readFileSync(new URL('../../public/injector-form.js', import.meta.url), 'utf8');
    const block = /const MESSAGES = \{([\s\S]*?)\};/.exec(script)![1]!;
    const keys = [...block.matchAll(/'([a-z-]+)':/g)].map((m) => m[1]!);
    expect(keys.length).toBeGreaterThan(10);
    expect(keys.filter((k) => !Object.hasOwn(PROBLEM_TYPES, k))).toEqual([]);
  });
});
