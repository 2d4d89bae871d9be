/**
 * @module Where the browser tests find a Chromium, and what to do when there is none.
 *
 * One list for every caller (`npm test`'s pretest and test/node/browser-support.ts): the browser
 * named by `CHROMIUM_PATH`, else a Chrome or Chromium in the usual places on Linux and macOS, else
 * Playwright's own download. Pure functions over an injected view of the machine, so each decision
 * is tested without changing the machine (test/node/chromium.test.ts).
 */
import { existsSync, readFileSync } from 'node:fs';
import { homedir } from 'node:os';

/** What the finder may look at. */
export interface Machine {
  env: Record<string, string | undefined>;
  platform: string;
  exists: (path: string) => boolean;
  /** Where Playwright keeps its own Chromium (may not exist). */
  playwrightPath?: string;
  home: string;
}

/** Where Chrome or Chromium usually lives, by platform. */
export function usualPlaces(platform: string, home: string): string[] {
  if (platform === 'darwin') {
    return [
      '/Applications/Google Chrome.app/Contents/MacOS/Google Chrome',
      '/Applications/Chromium.app/Contents/MacOS/Chromium',
      `${home}/Applications/Google Chrome.app/Contents/MacOS/Google Chrome`,
      `${home}/Applications/Chromium.app/Contents/MacOS/Chromium`,
    ];
  }
  return [
    '/usr/bin/chromium',
    '/usr/bin/chromium-browser',
    '/usr/bin/google-chrome-stable',
    '/usr/bin/google-chrome',
    '/snap/bin/chromium',
    '/opt/google/chrome/chrome',
    '/usr/lib/chromium/chromium',
  ];
}

/** The Chromium to use, or why there is none. `CHROMIUM_PATH`, when set, is the only candidate. */
export function findChromium(m: Machine): { path: string } | { missing: string } {
  const named = m.env.CHROMIUM_PATH;
  if (named !== undefined && named !== '') {
    return m.exists(named) ? { path: named } : { missing: `CHROMIUM_PATH is ${named}, which does not exist.` };
  }
  const candidates = [...usualPlaces(m.platform, m.home), ...(m.playwrightPath === undefined ? [] : [m.playwrightPath])];
  const found = candidates.find((p) => m.exists(p));
  return found === undefined ? { missing: `No Chrome or Chromium found (looked in ${candidates.join(', ')}).` } : { path: found };
}

/** How to get one, for a person: one message, every way. */
export const HOW_TO_GET = [
  'The browser tests need Chrome or Chromium. Any one of these will do:',
  '  - Debian/Ubuntu: sudo apt-get install chromium   (npm test does this itself when run as root or with sudo)',
  '  - macOS: install Google Chrome or Chromium in /Applications',
  '  - anywhere Playwright can download: npx playwright-core install chromium',
  '  - or point CHROMIUM_PATH at a Chrome/Chromium binary: CHROMIUM_PATH=/path/to/chrome npm test',
].join('\n');

/** Whether the machine is Debian-like (apt is the way to install). */
export function debianLike(osRelease: string | undefined, debianVersionExists: boolean): boolean {
  if (debianVersionExists) return true;
  const ids = /^(?:ID|ID_LIKE)=(.*)$/gm;
  for (const m of (osRelease ?? '').matchAll(ids)) if (/\b(debian|ubuntu)\b/.test(m[1]!.replace(/"/g, ''))) return true;
  return false;
}

/** What `npm test` should do about a missing Chromium. */
export type InstallPlan = { kind: 'apt'; sudo: boolean } | { kind: 'playwright' } | { kind: 'give-up' };

export function installPlan(o: { platform: string; debianLike: boolean; root: boolean; sudo: boolean; named: boolean }): InstallPlan {
  if (o.named) return { kind: 'give-up' }; // the person chose a browser: do not install another
  if (o.platform === 'linux' && o.debianLike && (o.root || o.sudo)) return { kind: 'apt', sudo: !o.root };
  if (o.platform === 'linux' || o.platform === 'darwin' || o.platform === 'win32') return { kind: 'playwright' };
  return { kind: 'give-up' };
}

/** This machine, as the finder sees it. */
export function thisMachine(playwrightPath?: string): Machine {
  return { env: process.env, platform: process.platform, exists: existsSync, home: homedir(), ...(playwrightPath === undefined ? {} : { playwrightPath }) };
}

/** /etc/os-release, if there is one. */
export function osRelease(): string | undefined {
  try {
    return readFileSync('/etc/os-release', 'utf8');
  } catch {
    return undefined;
  }
}
