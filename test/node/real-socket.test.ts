/**
 * Over real sockets (no Miniflare outboundService, which never encodes): an API (and a token
 * endpoint) answering gzip is decoded once. workerd honours `encodeResponseBody: 'manual'` only on
 * `fetch()`'s init, not on the Request; set on the Request, the answer was decoded by the runtime
 * and again by answer.ts (or grant.ts), a 502 (a 503) for every compressed answer.
 */
import { createServer, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import { gzipSync } from 'node:zlib';
import { afterAll, beforeAll, expect, it } from 'vitest';
import { prepareDeploys, type Deploys } from './deploys.ts';

const PAGE = 'https://forms.example.org';
let deploys: Deploys;
let server: Server;
let port: number;
const seen: string[] = [];

beforeAll(async () => {
  deploys = prepareDeploys('eti-socket-');
  server = createServer((req, res) => {
    seen.push(`${req.method} ${req.url} accept-encoding=${req.headers['accept-encoding'] ?? ''}`);
    req.resume();
    if (req.url === '/oauth2/token') {
      // gzip too: the token answer is fetched undecoded and decoded by the Worker (grant.ts), once.
      res.writeHead(200, { 'Content-Type': 'application/json', 'Content-Encoding': 'gzip' }).end(gzipSync(JSON.stringify({ access_token: 'tok_real_socket_0123456789', expires_in: 3600 })));
      return;
    }
    res.writeHead(200, { 'Content-Type': 'application/json', 'Content-Encoding': 'gzip' }).end(gzipSync(JSON.stringify({ codes: ['2254'], seen: req.headers.authorization === 'Bearer tok_real_socket_0123456789' })));
  });
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
  port = (server.address() as AddressInfo).port;
}, 120_000);

afterAll(async () => {
  deploys?.dispose();
  await new Promise((r) => server?.close(r));
});

it('a gzip answer from the API (and from the token endpoint) arrives decoded, once', async () => {
  const vars = {
    UPSTREAMS: { coder: { api_origin: `http://127.0.0.1:${port}`, token_url: `http://127.0.0.1:${port}/oauth2/token`, client_id: 'c', client_secret_from: 'CODER_SECRET' } },
    ROUTES: { code: { path: '/code', methods: ['POST'], upstream: 'coder', target: '/v1/code', allowed_origins: [PAGE] } },
    CODER_SECRET: 'not-a-real-secret',
  };
  const { status, text } = await deploys.deployAndAnswer(vars, undefined, PAGE);
  expect(status, text).toBe(200);
  expect(JSON.parse(text)).toEqual({ codes: ['2254'], seen: true });
  expect(seen.some((s) => s.startsWith('POST /v1/code') && s.includes('gzip'))).toBe(true);
  expect(seen).toContain('POST /oauth2/token accept-encoding=gzip, deflate');
});
