/**
 * Where `npm test` finds a Chromium, and what it does when there is none (scripts/chromium.ts),
 * over machines written inline: which paths exist, which platform, root or not.
 */
import { spawnSync } from 'node:child_process';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { debianLike, findChromium, HOW_TO_GET, installPlan, type Machine } from '../../scripts/chromium.ts';
import { ROOT } from './browser-support.ts';

const machine = (platform: string, paths: string[], env: Record<string, string> = {}, playwrightPath?: string): Machine => ({
  env,
  platform,
  home: '/home/u',
  exists: (p) => paths.includes(p),
  ...(playwrightPath === undefined ? {} : { playwrightPath }),
});

describe('findChromium', () => {
  it('CHROMIUM_PATH wins, and is the only candidate when set', () => {
    expect(findChromium(machine('linux', ['/usr/bin/chromium', '/x/chrome'], { CHROMIUM_PATH: '/x/chrome' }))).toEqual({ path: '/x/chrome' });
    expect(findChromium(machine('linux', ['/usr/bin/chromium'], { CHROMIUM_PATH: '/x/chrome' }))).toEqual({ missing: 'CHROMIUM_PATH is /x/chrome, which does not exist.' });
  });

  it('the Debian/Ubuntu package, then Chrome, in the usual Linux places', () => {
    expect(findChromium(machine('linux', ['/usr/bin/chromium-browser', '/usr/bin/google-chrome']))).toEqual({ path: '/usr/bin/chromium-browser' });
    expect(findChromium(machine('linux', ['/opt/google/chrome/chrome']))).toEqual({ path: '/opt/google/chrome/chrome' });
  });

  it('Chrome or Chromium in /Applications (or ~/Applications) on macOS', () => {
    expect(findChromium(machine('darwin', ['/Applications/Google Chrome.app/Contents/MacOS/Google Chrome']))).toEqual({
      path: '/Applications/Google Chrome.app/Contents/MacOS/Google Chrome',
    });
    expect(findChromium(machine('darwin', ['/home/u/Applications/Chromium.app/Contents/MacOS/Chromium']))).toEqual({ path: '/home/u/Applications/Chromium.app/Contents/MacOS/Chromium' });
  });

  it("Playwright's own Chromium when nothing else is there", () => {
    expect(findChromium(machine('darwin', ['/pw/chrome'], {}, '/pw/chrome'))).toEqual({ path: '/pw/chrome' });
    expect('missing' in findChromium(machine('darwin', [], {}, '/pw/chrome'))).toBe(true);
  });
});

describe('installPlan', () => {
  const base = { platform: 'linux', debianLike: true, root: true, sudo: false, named: false };
  it('apt only on Debian-like Linux, as root or with sudo', () => {
    expect(installPlan(base)).toEqual({ kind: 'apt', sudo: false });
    expect(installPlan({ ...base, root: false, sudo: true })).toEqual({ kind: 'apt', sudo: true });
    expect(installPlan({ ...base, root: false, sudo: false })).toEqual({ kind: 'playwright' });
    expect(installPlan({ ...base, debianLike: false })).toEqual({ kind: 'playwright' });
    expect(installPlan({ ...base, platform: 'darwin', debianLike: false })).toEqual({ kind: 'playwright' });
  });

  it('never installs over a browser the person named, nor on platforms Playwright does not serve', () => {
    expect(installPlan({ ...base, named: true })).toEqual({ kind: 'give-up' });
    expect(installPlan({ ...base, platform: 'freebsd' })).toEqual({ kind: 'give-up' });
  });

  it('Debian-like: /etc/debian_version, or ID / ID_LIKE in os-release', () => {
    expect(debianLike(undefined, true)).toBe(true);
    expect(debianLike('ID=ubuntu\nVERSION_ID="24.04"', false)).toBe(true);
    expect(debianLike('ID=linuxmint\nID_LIKE="ubuntu debian"', false)).toBe(true);
    expect(debianLike('ID=fedora\nID_LIKE="rhel centos"', false)).toBe(false);
    expect(debianLike(undefined, false)).toBe(false);
  });
});

describe('ensure-chromium (the pretest)', () => {
  it('with none to be had, says in one message how to get one, and fails', () => {
    const r = spawnSync(join(ROOT, 'node_modules/.bin/node'), ['scripts/ensure-chromium.ts'], {
      cwd: ROOT,
      env: { ...process.env, CHROMIUM_PATH: '/nonexistent/chrome' },
      encoding: 'utf8',
    });
    expect(r.status).toBe(1);
    expect(r.stderr).toContain('CHROMIUM_PATH is /nonexistent/chrome, which does not exist.');
    expect(r.stderr).toContain(HOW_TO_GET);
  });
});
