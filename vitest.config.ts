import { cloudflareTest } from '@cloudflare/vitest-plugin';
import { defineConfig } from 'vitest/config';
import { TEST_RATE_LIMITS } from './test/fixtures/abuse.ts';
import { ROUTES, SECRETS, STATUS, UPSTREAMS } from './test/fixtures/config.ts';
import { standIn, standInBinding } from './test/standin/upstreams.ts';

export default defineConfig({
  test: {
    // What `npm test` prints: one line per test file with its count, the failures, the summary.
    // Console output (the Worker's log lines, which setup.ts also checks) only for failing tests.
    silent: 'passed-only',
    // The default reporter also lists every test slower than this: only the exceptionally slow.
    slowTestThreshold: 30_000,
    // A fresh workerd (its own Durable Objects, rate-limit counts, module state) per test file,
    // which the files rely on: test/worker/token-helpers.ts resets the injected clock in an
    // afterEach it registers when first imported. Vitest's hint to drop it for speed is not for us.
    isolate: true,
    projects: [
      {
        // The Worker itself, inside workerd: the end-to-end suites, and unit tests beside their modules.
        plugins: [
          cloudflareTest({
            wrangler: { configPath: './wrangler.toml' },
            // workerd's own detail on exceptions the tests provoke on purpose (a simulated Durable
            // Object overload, an answer cut off at its limit): noise when green; a failing test
            // still shows its error. `verbose: true` brings it back when debugging.
            verbose: false,
            miniflare: {
              bindings: { UPSTREAMS, ROUTES, STATUS, ...SECRETS },
              // Every fetch the Worker and its Durable Objects make lands on the stand-in upstreams.
              outboundService: standIn,
              // An egress binding (egress = { mode = "binding" }): counts what reaches it, then the
              // same stand-ins, marked so tests can tell the traffic went through the binding.
              serviceBindings: { EGRESS_TEST: standInBinding },
              // Rate Limiting bindings with small limits, beside wrangler.toml's FORM_LIMIT: the same
              // Miniflare simulation of the binding (wrangler.toml's [[ratelimits]] are simulated too).
              ratelimits: TEST_RATE_LIMITS,
            },
          }),
        ],
        // First (groupOrder): the browser tests run `npm start`, which creates .dev.vars; wrangler
        // would load it into this Worker's env (and say so once per test file).
        test: { name: 'worker', sequence: { groupOrder: 1 }, include: ['test/worker/**/*.test.ts', 'src/**/*.test.ts'], exclude: ['src/token/**'], setupFiles: ['test/worker/setup.ts'], testTimeout: 30_000 },
      },
      {
        // Node-side pieces: the demo coding service, the start script, browser tests, and the unit
        // tests beside the token policy and engine (pure, no workerd). Only src/token: unit tests
        // elsewhere in src (the gateway's) may need workerd.
        test: { name: 'node', sequence: { groupOrder: 2 }, environment: 'node', include: ['test/node/**/*.test.ts', 'src/token/**/*.test.ts'], testTimeout: 60_000 },
      },
    ],
  },
});
