/**
 * `npm test`'s pretest: make sure the browser tests have a Chromium (scripts/chromium.ts says
 * where one is looked for). When none is found: apt on Debian-like systems as root (or with sudo),
 * else Playwright's own download where it can be installed; if that fails too, one clear message
 * saying how to get one, and exit 1.
 */
import { spawnSync } from 'node:child_process';
import { existsSync } from 'node:fs';
import { chromium } from 'playwright-core';
import { debianLike, findChromium, HOW_TO_GET, installPlan, osRelease, thisMachine } from './chromium.ts';

const run = (cmd: string, args: string[]) => spawnSync(cmd, args, { stdio: 'inherit', env: { ...process.env, DEBIAN_FRONTEND: 'noninteractive' } }).status === 0;
const found = () => findChromium(thisMachine(chromium.executablePath()));

let result = found();
if ('missing' in result) {
  console.log(result.missing);
  const plan = installPlan({
    platform: process.platform,
    debianLike: debianLike(osRelease(), existsSync('/etc/debian_version')),
    root: process.getuid?.() === 0,
    sudo: spawnSync('sh', ['-c', 'command -v sudo'], { stdio: 'ignore' }).status === 0,
    named: (process.env.CHROMIUM_PATH ?? '') !== '',
  });
  if (plan.kind === 'apt') {
    console.log("Installing Debian's chromium for the browser tests (apt)...");
    const as = plan.sudo ? ['sudo'] : [];
    const cmd = (args: string[]) => (as.length > 0 ? run('sudo', args) : run(args[0]!, args.slice(1)));
    if (cmd(['apt-get', 'update', '-qq'])) cmd(['apt-get', 'install', '-y', '-qq', 'chromium']);
  } else if (plan.kind === 'playwright') {
    console.log("Installing Playwright's Chromium for the browser tests...");
    run(process.execPath, ['node_modules/playwright-core/cli.js', 'install', 'chromium']);
  }
  result = found();
}
if ('missing' in result) {
  console.error(`${result.missing}\n\n${HOW_TO_GET}`);
  process.exit(1);
}
console.log(`Chromium for the browser tests: ${result.path}`);
