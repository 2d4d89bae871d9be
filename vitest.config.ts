import { cloudflareTest } from '@cloudflare/vitest-plugin';
import { defineConfig } from 'vitest/config';
import { TEST_RATE_LIMITS } from './test/fixtures/abuse.ts';
import { ROUTES, SECRETS, STATUS, UPSTREAMS } from './test/fixtures/config.ts';
import { standIn, standInBinding } from './test/standin/upstreams.ts';

export default defineConfig({
  test: {
    projects: [
      {
        // The Worker itself, inside workerd: the end-to-end suites, and unit tests beside their modules.
        plugins: [
          cloudflareTest({
            wrangler: { configPath: './wrangler.toml' },
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
        test: { name: 'worker', include: ['test/worker/**/*.test.ts', 'src/**/*.test.ts'], exclude: ['src/token/**'], setupFiles: ['test/worker/setup.ts'], testTimeout: 30_000 },
      },
      {
        // Node-side pieces: the demo coding service, the start script, browser tests, and the unit
        // tests beside the token policy and engine (pure, no workerd). Only src/token: unit tests
        // elsewhere in src (the gateway's) may need workerd.
        test: { name: 'node', environment: 'node', include: ['test/node/**/*.test.ts', 'src/token/**/*.test.ts'], testTimeout: 60_000 },
      },
    ],
  },
});
