import { cloudflareTest } from '@cloudflare/vitest-plugin';
import { defineConfig } from 'vitest/config';
import { ROUTES, SECRETS, UPSTREAMS } from './test/fixtures/config.ts';
import { standIn } from './test/standin/upstreams.ts';

export default defineConfig({
  test: {
    projects: [
      {
        // The Worker itself, inside workerd: the end-to-end suites, and unit tests beside their modules.
        plugins: [
          cloudflareTest({
            wrangler: { configPath: './wrangler.toml' },
            miniflare: {
              bindings: { UPSTREAMS, ROUTES, ...SECRETS },
              // Every fetch the Worker and its Durable Objects make lands on the stand-in upstreams.
              outboundService: standIn,
              // An egress binding (egress = { mode = "binding" }): the same stand-ins, marked so
              // tests can tell the traffic went through the binding.
              serviceBindings: {
                EGRESS_TEST: async (request: Request) => {
                  const headers = new Headers(request.headers);
                  headers.set('X-Standin-Via', 'binding');
                  const body = request.method === 'GET' || request.method === 'HEAD' ? undefined : await request.arrayBuffer();
                  return standIn(new Request(request.url, { method: request.method, headers, body }));
                },
              },
            },
          }),
        ],
        test: { name: 'worker', include: ['test/worker/**/*.test.ts', 'src/**/*.test.ts'], setupFiles: ['test/worker/setup.ts'], testTimeout: 30_000 },
      },
      {
        // Node-side pieces: the demo coding service, the start script, browser tests.
        test: { name: 'node', environment: 'node', include: ['test/node/**/*.test.ts'], testTimeout: 60_000 },
      },
    ],
  },
});
