/**
 * The shape of src/ as rules a change cannot quietly break: no import circles (type-only imports
 * count: they tie modules together just the same), no untyped cast of `env` (secrets and bindings
 * are read through config/secrets.ts), and every file opening with one comment that says its job.
 */
import { readdirSync, readFileSync } from 'node:fs';
import { dirname, join, relative, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import { describe, expect, it } from 'vitest';

const SRC = resolve(dirname(fileURLToPath(import.meta.url)), '../../src');

function sourceFiles(dir: string): string[] {
  return readdirSync(dir, { withFileTypes: true }).flatMap((e) => (e.isDirectory() ? sourceFiles(join(dir, e.name)) : e.name.endsWith('.ts') ? [join(dir, e.name)] : []));
}

const FILES = sourceFiles(SRC);
const MODULES = FILES.filter((f) => !f.endsWith('.test.ts'));
const name = (f: string) => relative(SRC, f);

/** The src files a module imports or re-exports from (relative specifiers only), type-only ones too. */
export function importsOf(file: string, text: string, exists: (f: string) => boolean): string[] {
  const out: string[] = [];
  // `import … from '…'`, `import type … from '…'`, `export … from '…'`, `import '…'`, across lines.
  for (const m of text.matchAll(/^\s*(?:import|export)\s+(?:type\s+)?(?:[^'";]*?\s+from\s+)?['"](\.{1,2}\/[^'"]+)['"]/gm)) {
    const base = resolve(dirname(file), m[1]!);
    const target = [base, `${base}.ts`, join(base, 'index.ts')].find(exists);
    if (target !== undefined) out.push(target);
  }
  return out;
}

/** Every import circle among `graph`'s nodes, each as the list of its modules (Tarjan's SCCs). */
export function circles(graph: Map<string, string[]>): string[][] {
  let index = 0;
  const at = new Map<string, number>();
  const low = new Map<string, number>();
  const stack: string[] = [];
  const onStack = new Set<string>();
  const found: string[][] = [];
  const visit = (v: string) => {
    at.set(v, index);
    low.set(v, index++);
    stack.push(v);
    onStack.add(v);
    for (const w of graph.get(v) ?? []) {
      if (!at.has(w)) {
        visit(w);
        low.set(v, Math.min(low.get(v)!, low.get(w)!));
      } else if (onStack.has(w)) low.set(v, Math.min(low.get(v)!, at.get(w)!));
    }
    if (low.get(v) === at.get(v)) {
      const scc: string[] = [];
      let w: string;
      do {
        w = stack.pop()!;
        onStack.delete(w);
        scc.push(w);
      } while (w !== v);
      if (scc.length > 1 || (graph.get(v) ?? []).includes(v)) found.push(scc.sort());
    }
  };
  for (const v of graph.keys()) if (!at.has(v)) visit(v);
  return found;
}

describe('the import graph of src/', () => {
  const known = new Set(FILES);
  const graph = new Map(MODULES.map((f) => [f, importsOf(f, readFileSync(f, 'utf8'), (x) => known.has(x))]));

  it('reads every kind of relative import, type-only and re-exports included', () => {
    const files = new Set(['/p/a.ts', '/p/b.ts', '/p/c.ts', '/p/d/index.ts', '/p/e.ts']);
    const text = "import { x } from './b';\nimport type {\n  Y,\n} from './c';\nexport { z } from './d';\nimport './e';\nimport { w } from 'hono';\n";
    expect(importsOf('/p/a.ts', text, (f) => files.has(f))).toEqual(['/p/b.ts', '/p/c.ts', '/p/d/index.ts', '/p/e.ts']);
  });

  it('finds a circle when there is one (the check itself can fail)', () => {
    const g = new Map([
      ['a', ['b']],
      ['b', ['c']],
      ['c', ['a']],
      ['d', ['a']],
    ]);
    expect(circles(g)).toEqual([['a', 'b', 'c']]);
    expect(circles(new Map([['a', ['b']], ['b', []]]))).toEqual([]);
  });

  it('has no import circles', () => {
    expect(graph.size).toBeGreaterThan(30);
    expect(circles(graph).map((c) => c.map(name))).toEqual([]);
  });

  it('keeps the shared types on the floor: env.ts, gateway/context.ts, headers.ts import no runtime code', () => {
    for (const f of ['env.ts', 'gateway/context.ts', 'headers.ts']) {
      const text = readFileSync(join(SRC, f), 'utf8');
      expect(text.match(/^import (?!type )/gm) ?? [], f).toEqual([]);
    }
  });
});

describe('src/ files', () => {
  it('cast no env to an untyped record: named secrets and bindings are read through config/secrets.ts', () => {
    const casts = FILES.flatMap((f) =>
      readFileSync(f, 'utf8')
        .split('\n')
        .flatMap((line, i) => (/\b(?:c\.|this\.)?env\)?\s+as\s/.test(line) ? [`${name(f)}:${i + 1}: ${line.trim()}`] : [])),
    );
    expect(casts).toEqual([]);
  });

  it('open with one comment that says the file’s job (`@module` for modules)', () => {
    const missing = FILES.filter((f) => {
      const text = readFileSync(f, 'utf8');
      if (!text.startsWith('/**')) return true;
      const first = text.slice(0, text.indexOf('*/'));
      const words = first.replace(/[/*@]|module/g, ' ').trim().split(/\s+/).length;
      return words < 5 || (!f.endsWith('.test.ts') && !/^\/\*\*\s*(\*\s*)?@module /.test(text));
    });
    expect(missing.map(name)).toEqual([]);
  });
});
