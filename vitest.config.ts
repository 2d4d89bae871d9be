import { cloudflareTest } from '@cloudflare/vitest-plugin';
import { defineConfig } from 'vitest/config';
import { ROUTES, SECRETS, UPSTREAMS } from './test/fixtures/config.ts';
import { standIn } from './test/standin/upstreams.ts';

export default defineConfig({
  plugins: [
    cloudflareTest({
      wrangler: { configPath: './wrangler.toml' },
      miniflare: {
        bindings: { UPSTREAMS, ROUTES, ...SECRETS },
        // Every fetch the Worker and its Durable Objects make lands on the stand-in upstreams.
        outboundService: standIn,
      },
    }),
  ],
  test: {
    include: ['test/**/*.test.ts'],
    testTimeout: 30_000,
  },
});
