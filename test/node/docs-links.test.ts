/**
 * The docs hold together: every relative link in README.md, SECURITY.md and docs/*.md reaches a
 * file of the repository, and every #anchor a heading of its page (GitHub's slugs); each page of
 * docs/ and SECURITY.md opens with a table of contents of its sections and is linked from the
 * README; the README stays short and opens with the two set-up commands.
 */
import { existsSync, readdirSync, readFileSync } from 'node:fs';
import { dirname, join, relative, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import { describe, expect, it } from 'vitest';

const ROOT = fileURLToPath(new URL('../..', import.meta.url));

const pages = ['README.md', 'SECURITY.md', ...readdirSync(join(ROOT, 'docs')).filter((f) => f.endsWith('.md')).map((f) => `docs/${f}`)];
const text = new Map(pages.map((p) => [p, readFileSync(join(ROOT, p), 'utf8')]));

/** The page without its fenced code blocks (a `#` or `](` in a code sample is not markdown). */
const prose = (md: string) => md.replace(/^ *```[\s\S]*?^ *```/gm, '');

/** GitHub's heading anchor (github-slugger): lower case, punctuation dropped, spaces to hyphens. */
const slug = (heading: string) => heading.toLowerCase().replace(/[^\p{L}\p{M}\p{N}\p{Pc} -]/gu, '').replace(/ /g, '-');

/** Every anchor a page has, a repeated heading getting -1, -2 … as on GitHub. */
function anchors(md: string): Set<string> {
  const seen = new Map<string, number>();
  const out = new Set<string>();
  for (const m of prose(md).matchAll(/^#{1,6} +(.+?) *$/gm)) {
    const base = slug(m[1]!);
    const n = seen.get(base) ?? 0;
    seen.set(base, n + 1);
    out.add(n === 0 ? base : `${base}-${n}`);
  }
  return out;
}

/** Each relative link of a page: where it is written, the file it names (repo-relative), the anchor. */
function links(page: string): { target: string; file: string; anchor: string | undefined }[] {
  return [...prose(text.get(page)!).matchAll(/\]\(([^)\s]+)\)/g)]
    .map((m) => m[1]!)
    .filter((t) => !/^[a-z][a-z+.-]*:/i.test(t))
    .map((target) => {
      const [path, anchor] = target.split('#', 2) as [string, string | undefined];
      const file = path === '' ? page : relative(ROOT, resolve(ROOT, dirname(page), path));
      return { target, file, anchor };
    });
}

describe('docs links', () => {
  it.each(pages)('%s: every relative link reaches a file of the repository, every anchor a heading', (page) => {
    const broken = links(page).flatMap(({ target, file, anchor }) => {
      if (file.startsWith('..') || !existsSync(join(ROOT, file))) return [`${target}: no file ${file}`];
      if (anchor === undefined) return [];
      if (!file.endsWith('.md')) return [`${target}: an anchor into a file that is not markdown`];
      const page = text.get(file) ?? readFileSync(join(ROOT, file), 'utf8');
      return anchors(page).has(anchor) ? [] : [`${target}: no heading #${anchor} in ${file}`];
    });
    expect(broken).toEqual([]);
  });

  it.each(pages.filter((p) => p !== 'README.md'))('%s opens with a table of contents of its sections', (page) => {
    const md = prose(text.get(page)!);
    const [head, ...sections] = md.split(/^## /m);
    const listed = [...head!.matchAll(/^ *- \[.*\]\(#([^)]+)\)$/gm)].map((m) => m[1]!);
    const headings = sections.map((s) => slug(s.split('\n')[0]!.trim()));
    expect(headings.length).toBeGreaterThan(1);
    expect(headings.filter((h) => !listed.includes(h))).toEqual([]);
  });

  it('the README links every page of docs/ and SECURITY.md', () => {
    const linked = new Set(links('README.md').map((l) => l.file));
    expect(pages.filter((p) => p !== 'README.md' && !linked.has(p))).toEqual([]);
  });

  it('the README is under 250 lines and opens with the two set-up commands: the demo, and the tests', () => {
    const readme = text.get('README.md')!;
    expect(readme.split('\n').length).toBeLessThan(250);
    const first = /```sh\n([\s\S]*?)```/.exec(readme)![1]!.split('\n').map((l) => l.replace(/ +#.*/, ''));
    expect(first.filter((l) => l !== '')).toEqual(['npm install && npm start', 'npm test']);
  });

  it('the slugs are GitHub’s', () => {
    expect(slug('`UPSTREAMS.<name>`: a credential set')).toBe('upstreamsname-a-credential-set');
    expect(slug('`/status`: what the TokenStores hold')).toBe('status-what-the-tokenstores-hold');
    expect(slug('Top-level vars: `DEMO_PAGES` and `STATUS`')).toBe('top-level-vars-demo_pages-and-status');
    expect(slug('Operating it: logs, /healthz — and more')).toBe('operating-it-logs-healthz--and-more');
    expect([...anchors('# A\n## B\n## B\n```\n## C\n```\n')]).toEqual(['a', 'b', 'b-1']);
  });
});
