/**
 * Issue 16 end to end: the Worker, built as deployed and run in workerd on real sockets, gets its
 * tokens from a real OpenID provider (panva's oidc-provider, test/node/oidc-support.ts) with each
 * client authentication method, and calls an API that verifies the token it is sent. Each test
 * asserts the method the server authenticated the client with and what the API saw, as the
 * browser gets it back through the Worker.
 *
 * Mutual TLS two ways: a Fetcher binding that presents the client certificate (workerd's own TLS
 * client: what a Cloudflare mTLS certificate binding is), and the reference nginx egress holding
 * the certificate (`proxy_ssl_certificate`). Loopback only; every process is stopped by its id.
 */
import { execFileSync } from 'node:child_process';
import { createPublicKey, randomBytes, X509Certificate } from 'node:crypto';
import { existsSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { createServer, request as httpRequest, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import type { ClientMetadata } from 'oidc-provider';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { freePort, makeCa, NGINX, replaceOnce, ROOT, startNginx, type Nginx } from './egress-support.ts';
import { buildWorker, certificateThumbprint, keyPair, runWorker, startOidcServer, type ApiAnswer, type OidcServer, type WorkerRun } from './oidc-support.ts';

const PAGE = 'https://forms.example.org';
const AUTH_HOST = 'auth.oidc.example';
const API_HOST = 'api.oidc.example';
const CLIENT_DN = 'CN=eti-worker-client';

// A secret with the characters RFC 6749 §2.3.1 makes clients form-urlencode in Basic credentials.
const BASIC_SECRET = `p@ss:w/rd+%&=~*'()${randomBytes(8).toString('hex')}`;
const keys = {
  ES256: keyPair('ES256'),
  PS256: keyPair('PS256'),
  EdDSA: keyPair('EdDSA'),
  RS256: keyPair('RS256'),
  replay: keyPair('ES256'),
  skew: keyPair('ES256'),
  rotateNew: keyPair('ES256'),
  rotateOld: keyPair('ES256'),
};
const secrets: Record<string, string> = {
  BASIC_SECRET,
  POST_SECRET: randomBytes(24).toString('base64url'),
  JWT_SECRET: randomBytes(32).toString('base64url'),
  KEY_ES256: keys.ES256.privatePem,
  KEY_PS256: keys.PS256.privatePem,
  KEY_EDDSA: keys.EdDSA.privatePem,
  // A JWK this time, naming its own kid.
  KEY_RS256: JSON.stringify({ ...keys.RS256.privateJwk, kid: 'rs-jwk-1' }),
  KEY_REPLAY: keys.replay.privatePem,
  KEY_SKEW: keys.skew.privatePem,
  KEY_NEW: keys.rotateNew.privatePem,
  KEY_OLD: keys.rotateOld.privatePem,
  EGRESS_SECRET: randomBytes(32).toString('hex'),
};

// The server signs with ES256 only, so even a client that never gets an ID token must say so.
const grantOnly: Partial<ClientMetadata> = { grant_types: ['client_credentials'], response_types: [], redirect_uris: [], id_token_signed_response_alg: 'ES256' };
const pkJwt = (id: string, publicJwks: object[], alg: NonNullable<ClientMetadata['token_endpoint_auth_signing_alg']>): ClientMetadata => ({ ...grantOnly, client_id: id, token_endpoint_auth_method: 'private_key_jwt', token_endpoint_auth_signing_alg: alg, jwks: { keys: publicJwks } });

let dir: string;
let server: OidcServer;
let worker: WorkerRun;
let build: ReturnType<typeof buildWorker>;
let nginx: Nginx | undefined;
let replayProxy: Server;
let replayPort: number;
let clientThumbprint: string;
const replayed: Array<{ status: number }> = [];

/** POST through the Worker; the API's answer as the browser gets it. */
async function call(path: string): Promise<{ status: number; body: ApiAnswer & { reason?: string; detail?: string } }> {
  const { status, text } = await worker.post(path, PAGE);
  return { status, body: JSON.parse(text) as ApiAnswer & { reason?: string; detail?: string } };
}

const requestsOf = (clientId: string) => server.tokenRequests.filter((r) => r.clientId === clientId);

/**
 * The replay stand-in: in front of the token endpoint, it sends the first token request it sees
 * to the server once more before passing it on, as an attacker who captured the assertion would
 * (the server sees that `jti` first); later requests pass straight through.
 */
async function startReplayProxy(target: number): Promise<void> {
  const forward = (method: string, path: string, headers: Record<string, string>, body: Buffer) =>
    new Promise<{ status: number; headers: Record<string, string>; body: Buffer }>((done, fail) => {
      const req = httpRequest({ host: '127.0.0.1', port: target, method, path, headers }, (res) => {
        const chunks: Buffer[] = [];
        res.on('data', (c: Buffer) => chunks.push(c));
        res.on('end', () => done({ status: res.statusCode ?? 0, headers: { 'content-type': String(res.headers['content-type'] ?? '') }, body: Buffer.concat(chunks) }));
      });
      req.on('error', fail);
      req.end(body);
    });
  let first = true;
  replayProxy = createServer((req, res) => {
    const chunks: Buffer[] = [];
    req.on('data', (c: Buffer) => chunks.push(c));
    req.on('end', () => {
      void (async () => {
        const headers = { 'content-type': String(req.headers['content-type'] ?? ''), accept: String(req.headers.accept ?? '') };
        const body = Buffer.concat(chunks);
        if (first) {
          first = false;
          replayed.push({ status: (await forward(req.method ?? 'POST', req.url ?? '/', headers, body)).status });
        }
        const answer = await forward(req.method ?? 'POST', req.url ?? '/', headers, body);
        res.writeHead(answer.status, answer.headers).end(answer.body);
      })();
    });
  });
  await new Promise<void>((done) => replayProxy.listen(0, '127.0.0.1', done));
  replayPort = (replayProxy.address() as AddressInfo).port;
}

/** The reference egress, presenting the client certificate (its optional mTLS lines filled in). */
async function startEgress(serverCert: { certPath: string; keyPath: string }, client: { certPath: string; keyPath: string }, caPath: string): Promise<{ port: number; nginx: Nginx }> {
  const port = await freePort();
  const ref = join(ROOT, 'deploy/egress/nginx');
  let conf = readFileSync(join(ref, 'egress.conf'), 'utf8');
  conf = replaceOnce(conf, 'listen 443 ssl;', `listen 127.0.0.1:${port} ssl;`);
  conf = replaceOnce(conf, '    listen [::]:443 ssl;\n', '');
  conf = replaceOnce(conf, '/etc/letsencrypt/live/egress.example.org/fullchain.pem', serverCert.certPath);
  conf = replaceOnce(conf, '/etc/letsencrypt/live/egress.example.org/privkey.pem', serverCert.keyPath);
  conf = replaceOnce(conf, '/var/log/nginx/egress.access.log', join(dir, 'egress.access.log'));
  conf = replaceOnce(conf, '/var/log/nginx/egress.error.log', join(dir, 'egress.error.log'));
  for (const file of ['keys.map', 'hosts.map', 'upstreams.conf']) conf = replaceOnce(conf, `/etc/nginx/egress/${file}`, join(dir, file));
  conf = replaceOnce(conf, '/etc/ssl/certs/ca-certificates.crt', caPath);
  conf = replaceOnce(conf, '# proxy_ssl_certificate     /etc/nginx/egress/client.pem;', `proxy_ssl_certificate ${client.certPath};`);
  conf = replaceOnce(conf, '# proxy_ssl_certificate_key /etc/nginx/egress/client.key;', `proxy_ssl_certificate_key ${client.keyPath};`);
  writeFileSync(join(dir, 'egress.conf'), conf);
  writeFileSync(join(dir, 'keys.map'), `${secrets.EGRESS_SECRET} current;\n`);
  writeFileSync(join(dir, 'hosts.map'), `${AUTH_HOST} ${AUTH_HOST};\n${API_HOST} ${API_HOST};\n`);
  writeFileSync(join(dir, 'upstreams.conf'), [AUTH_HOST, API_HOST].map((h) => `upstream ${h} {\n    server 127.0.0.1:${server.tlsPort};\n    keepalive 4;\n}\n`).join(''));
  return { port, nginx: await startNginx(dir, port, join(dir, 'egress.conf')) };
}

beforeAll(async () => {
  if (!existsSync(NGINX)) throw new Error(`${NGINX} is missing: run scripts/ensure-nginx.sh (npm test runs it first)`);
  dir = mkdtempSync(join(tmpdir(), 'eti-client-auth-'));
  build = buildWorker();
  const authority = makeCa(dir);
  const ca = readFileSync(authority.caPath, 'utf8');
  const serverCert = authority.issue('oidc', ['IP:127.0.0.1', `DNS:${AUTH_HOST}`, `DNS:${API_HOST}`]);
  const egressCert = authority.issue('egress', ['IP:127.0.0.1']);
  const clientCert = authority.issue('eti-worker-client', [], 'clientAuth');
  clientThumbprint = certificateThumbprint(clientCert.cert);
  // A self-signed client certificate, registered with the server as a key with its x5c.
  const selfKey = join(dir, 'self-signed.key');
  const selfCert = join(dir, 'self-signed.pem');
  execFileSync('openssl', ['req', '-x509', '-newkey', 'ec', '-pkeyopt', 'ec_paramgen_curve:prime256v1', '-nodes', '-keyout', selfKey, '-out', selfCert, '-days', '2',
    '-subj', '/CN=eti-self-signed', '-addext', 'extendedKeyUsage=clientAuth'], { stdio: 'pipe' });
  const selfSigned = { cert: readFileSync(selfCert, 'utf8'), key: readFileSync(selfKey, 'utf8') };
  const selfJwk = { ...createPublicKey(selfSigned.cert).export({ format: 'jwk' }), x5c: [new X509Certificate(selfSigned.cert).raw.toString('base64')] };

  const mtlsClient = (id: string): ClientMetadata => ({ ...grantOnly, client_id: id, token_endpoint_auth_method: 'tls_client_auth', tls_client_auth_subject_dn: CLIENT_DN, tls_client_certificate_bound_access_tokens: true });
  server = await startOidcServer({
    tls: { cert: serverCert.cert, key: serverCert.key, ca },
    clients: [
      { ...grantOnly, client_id: 'basic-client', client_secret: BASIC_SECRET, token_endpoint_auth_method: 'client_secret_basic' },
      { ...grantOnly, client_id: 'post-client', client_secret: secrets.POST_SECRET, token_endpoint_auth_method: 'client_secret_post' },
      { ...grantOnly, client_id: 'secret-jwt-client', client_secret: secrets.JWT_SECRET, token_endpoint_auth_method: 'client_secret_jwt', token_endpoint_auth_signing_alg: 'HS256' },
      pkJwt('pkjwt-es256', [{ ...keys.ES256.publicJwk, kid: 'es-1' }], 'ES256'),
      pkJwt('pkjwt-ps256', [keys.PS256.publicJwk], 'PS256'),
      pkJwt('pkjwt-eddsa', [keys.EdDSA.publicJwk], 'EdDSA'),
      pkJwt('pkjwt-rs256', [{ ...keys.RS256.publicJwk, kid: 'rs-jwk-1' }], 'RS256'),
      pkJwt('replay-client', [keys.replay.publicJwk], 'ES256'),
      pkJwt('skew-fast', [keys.skew.publicJwk], 'ES256'),
      pkJwt('skew-slow', [keys.skew.publicJwk], 'ES256'),
      // Rotation: the server has only the old key yet / has both.
      pkJwt('rotate-pending', [{ ...keys.rotateOld.publicJwk, kid: 'old' }], 'ES256'),
      pkJwt('rotate-done', [{ ...keys.rotateOld.publicJwk, kid: 'old' }, { ...keys.rotateNew.publicJwk, kid: 'new' }], 'ES256'),
      mtlsClient('mtls-client'),
      mtlsClient('mtls-egress-client'),
      { ...grantOnly, client_id: 'self-signed-client', token_endpoint_auth_method: 'self_signed_tls_client_auth', jwks: { keys: [selfJwk] } },
    ],
    // The Worker's clock 30 s ahead of the server's (the server's is 30 s behind), and 30 s behind.
    clockOffsetS: { 'skew-fast': -30, 'skew-slow': 30 },
  });
  await startReplayProxy(server.httpPort);
  const egress = await startEgress(egressCert, clientCert, authority.caPath);
  nginx = egress.nginx;

  const plain = { api_origin: server.issuer, token_url: `${server.issuer}/token`, scope: 'codes:read codes:write' };
  const pk = (client: string, from: string, alg: string, kid?: string) => ({
    ...plain,
    client_id: client,
    client_auth: 'private_key_jwt',
    client_assertion: { keys: [{ from, alg, ...(kid === undefined ? {} : { kid }) }] },
  });
  const overTls = { api_origin: `https://127.0.0.1:${server.tlsPort}`, token_url: `https://127.0.0.1:${server.tlsPort}/token` };
  const UPSTREAMS: Record<string, Record<string, unknown>> = {
    basic: { ...plain, client_id: 'basic-client', client_auth: 'client_secret_basic', client_secret_from: 'BASIC_SECRET' },
    post: { ...plain, client_id: 'post-client', client_auth: 'client_secret_post', client_secret_from: 'POST_SECRET' },
    secret_jwt: { ...plain, client_id: 'secret-jwt-client', client_auth: 'client_secret_jwt', client_secret_from: 'JWT_SECRET' },
    pk_es256: pk('pkjwt-es256', 'KEY_ES256', 'ES256', 'es-1'),
    pk_ps256: pk('pkjwt-ps256', 'KEY_PS256', 'PS256'),
    pk_eddsa: pk('pkjwt-eddsa', 'KEY_EDDSA', 'EdDSA'),
    pk_rs256: pk('pkjwt-rs256', 'KEY_RS256', 'RS256'),
    // Through the replaying proxy: `aud` must then name the server (its issuer), not the proxy.
    replay: { ...pk('replay-client', 'KEY_REPLAY', 'ES256'), token_url: `http://127.0.0.1:${replayPort}/token`, client_assertion: { keys: [{ from: 'KEY_REPLAY', alg: 'ES256' }], audience: server.issuer } },
    skew_fast: pk('skew-fast', 'KEY_SKEW', 'ES256'),
    skew_slow: pk('skew-slow', 'KEY_SKEW', 'ES256'),
    rotate_pending: { ...pk('rotate-pending', 'KEY_NEW', 'ES256'), client_assertion: { keys: [{ from: 'KEY_NEW', alg: 'ES256', kid: 'new' }, { from: 'KEY_OLD', alg: 'ES256', kid: 'old' }] } },
    rotate_done: { ...pk('rotate-done', 'KEY_NEW', 'ES256'), client_assertion: { keys: [{ from: 'KEY_NEW', alg: 'ES256', kid: 'new' }, { from: 'KEY_OLD', alg: 'ES256', kid: 'old' }] } },
    mtls: { ...overTls, client_id: 'mtls-client', client_auth: 'tls_client_auth', mtls: { via: 'binding', binding: 'API_CERT', certificate: clientThumbprint }, certificate_bound_tokens: true },
    // The same client, but the config would send its certificate-bound tokens without the certificate.
    mtls_unbound: { ...overTls, client_id: 'mtls-client', client_auth: 'tls_client_auth', mtls: { via: 'binding', binding: 'API_CERT', certificate: clientThumbprint } },
    self_signed: { ...overTls, client_id: 'self-signed-client', client_auth: 'self_signed_tls_client_auth', mtls: { via: 'binding', binding: 'SELF_CERT', certificate: certificateThumbprint(selfSigned.cert) } },
    mtls_egress: {
      api_origin: `https://${API_HOST}`,
      token_url: `https://${AUTH_HOST}/token`,
      client_id: 'mtls-egress-client',
      client_auth: 'tls_client_auth',
      egress: { mode: 'origin', url: `https://127.0.0.1:${egress.port}`, secret_from: 'EGRESS_SECRET' },
      mtls: { via: 'egress', certificate: clientThumbprint },
    },
  };
  const route = (upstream: string, extra: Record<string, unknown> = {}) => ({ path: `/api/${upstream}`, methods: ['POST'], upstream, target: '/api/codes', allowed_origins: [PAGE], ...extra });
  const ROUTES: Record<string, Record<string, unknown>> = Object.fromEntries(Object.keys(UPSTREAMS).map((u) => [u, route(u)]));
  ROUTES.basic_read = route('basic', { path: '/api/basic-read', scope: 'codes:read' });
  worker = await runWorker({ bundle: build.bundle, caPath: authority.caPath, bindings: { UPSTREAMS, ROUTES, ...secrets } as never, mtlsBindings: { API_CERT: { cert: clientCert.cert, key: clientCert.key }, SELF_CERT: selfSigned } });
}, 120_000);

afterAll(async () => {
  await worker?.dispose();
  await nginx?.stop();
  await server?.close();
  await new Promise((done) => (replayProxy ? replayProxy.close(done) : done(undefined)));
  build?.remove();
  if (dir !== undefined) rmSync(dir, { recursive: true, force: true });
});

describe('shared secrets', () => {
  it('client_secret_basic: a secret with reserved characters, form-urlencoded as the server requires', async () => {
    const { status, body } = await call('/api/basic');
    expect(status, JSON.stringify(body)).toBe(200);
    expect(body).toEqual({ client_id: 'basic-client', scope: 'codes:read codes:write', auth_method: 'client_secret_basic', certificate_bound: false });
    expect(requestsOf('basic-client').map((r) => [r.method, r.status])).toEqual([['client_secret_basic', 200]]);
  });

  it('scopes: a route asking for fewer scopes gets a token for just those', async () => {
    const { status, body } = await call('/api/basic-read');
    expect(status, JSON.stringify(body)).toBe(200);
    expect(body.scope).toBe('codes:read');
    expect(requestsOf('basic-client').map((r) => r.scope)).toEqual(['codes:read codes:write', 'codes:read']);
  });

  it('client_secret_post', async () => {
    const { status, body } = await call('/api/post');
    expect(status, JSON.stringify(body)).toBe(200);
    expect(body).toMatchObject({ client_id: 'post-client', auth_method: 'client_secret_post' });
    expect(requestsOf('post-client').map((r) => [r.method, r.status])).toEqual([['client_secret_post', 200]]);
  });
});

describe('client assertions', () => {
  it.each([
    ['ES256, PKCS#8 PEM, with a configured kid', 'pk_es256', 'pkjwt-es256', 'ES256', 'es-1'],
    ['PS256, PKCS#8 PEM, no kid', 'pk_ps256', 'pkjwt-ps256', 'PS256', undefined],
    ['EdDSA (Ed25519), PKCS#8 PEM', 'pk_eddsa', 'pkjwt-eddsa', 'EdDSA', undefined],
    ['RS256, a JWK naming its own kid', 'pk_rs256', 'pkjwt-rs256', 'RS256', 'rs-jwk-1'],
  ])('private_key_jwt: %s', async (_what, upstream, clientId, alg, kid) => {
    const { status, body } = await call(`/api/${upstream}`);
    expect(status, JSON.stringify(body)).toBe(200);
    expect(body).toMatchObject({ client_id: clientId, auth_method: 'private_key_jwt' });
    const [r, ...more] = requestsOf(clientId);
    expect(more).toEqual([]);
    expect(r!.method).toBe('private_key_jwt');
    expect(r!.assertion!.header).toEqual({ alg, typ: 'JWT', ...(kid === undefined ? {} : { kid }) });
  });

  it('private_key_jwt: the claims, field by field (aud the token endpoint, iat 30 s back, exp 60 s ahead, fresh jti)', async () => {
    const before = Math.floor(Date.now() / 1000);
    await call('/api/skew_slow'); // any fresh one will do; this client has not been used yet
    const after = Math.floor(Date.now() / 1000);
    const { claims } = requestsOf('skew-slow')[0]!.assertion!;
    expect(Object.keys(claims).sort()).toEqual(['aud', 'exp', 'iat', 'iss', 'jti', 'sub']);
    expect(claims.iss).toBe('skew-slow');
    expect(claims.sub).toBe('skew-slow');
    expect(claims.aud).toBe(`${server.issuer}/token`);
    expect(claims.jti).toMatch(/^[0-9a-f]{8}-[0-9a-f]{4}-4[0-9a-f]{3}-[89ab][0-9a-f]{3}-[0-9a-f]{12}$/);
    expect(claims.iat).toBeGreaterThanOrEqual(before - 30);
    expect(claims.iat).toBeLessThanOrEqual(after - 30);
    expect(claims.exp).toBe((claims.iat as number) + 90);
  });

  it('client_secret_jwt: HS256 with the client secret', async () => {
    const { status, body } = await call('/api/secret_jwt');
    expect(status, JSON.stringify(body)).toBe(200);
    expect(body).toMatchObject({ client_id: 'secret-jwt-client', auth_method: 'client_secret_jwt' });
    const [r] = requestsOf('secret-jwt-client');
    expect(r!.method).toBe('client_secret_jwt');
    expect(r!.assertion!.header).toEqual({ alg: 'HS256', typ: 'JWT' });
    expect(r!.assertion!.claims).toMatchObject({ iss: 'secret-jwt-client', sub: 'secret-jwt-client', aud: `${server.issuer}/token` });
  });

  it('a Worker clock 30 s fast or 30 s slow still gets tokens from a server with no tolerance (iat 30 s back, exp 60 s ahead)', async () => {
    for (const [upstream, clientId] of [['skew_fast', 'skew-fast'], ['skew_slow', 'skew-slow']] as const) {
      const { status, body } = await call(`/api/${upstream}`);
      expect(status, `${upstream}: ${JSON.stringify(body)}`).toBe(200);
      expect(requestsOf(clientId).map((r) => r.status)).toEqual([200]);
    }
  });

  it('a replayed assertion is refused (its jti was used), and the engine recovers at once with a fresh one', async () => {
    const { status, body } = await call('/api/replay');
    expect(status, JSON.stringify(body)).toBe(200);
    expect(body).toMatchObject({ client_id: 'replay-client', auth_method: 'private_key_jwt' });
    // The server saw: the replay (first, accepted), the Worker's own copy (refused: jti used), a fresh one.
    const seen = requestsOf('replay-client');
    expect(seen.map((r) => [r.status, r.error])).toEqual([[200, undefined], [401, 'invalid_client'], [200, undefined]]);
    expect(seen[1]!.assertion!.claims.jti).toBe(seen[0]!.assertion!.claims.jti);
    expect(seen[2]!.assertion!.claims.jti).not.toBe(seen[1]!.assertion!.claims.jti);
    expect(replayed).toEqual([{ status: 200 }]);
    // Two token requests from the Worker, no more: the fresh one is its only retry.
    expect(seen.length - replayed.length).toBe(2);
  });

  it('rotation: the new key is used; while the server has only the old one, the old one gets the token', async () => {
    const done = await call('/api/rotate_done');
    expect(done.status, JSON.stringify(done.body)).toBe(200);
    expect(requestsOf('rotate-done').map((r) => [r.assertion!.header.kid, r.status])).toEqual([['new', 200]]);

    const pending = await call('/api/rotate_pending');
    expect(pending.status, JSON.stringify(pending.body)).toBe(200);
    expect(pending.body.client_id).toBe('rotate-pending');
    expect(requestsOf('rotate-pending').map((r) => [r.assertion!.header.kid, r.status])).toEqual([['new', 401], ['old', 200]]);
  });
});

describe('mutual TLS', () => {
  it('tls_client_auth through a binding that presents the certificate; the certificate-bound token goes to the API the same way', async () => {
    const { status, body } = await call('/api/mtls');
    expect(status, JSON.stringify(body)).toBe(200);
    expect(body).toEqual({ client_id: 'mtls-client', scope: '', auth_method: 'tls_client_auth', certificate_bound: true });
    expect(requestsOf('mtls-client').map((r) => [r.method, r.certificate])).toEqual([['tls_client_auth', true]]);
  });

  it('a certificate-bound token that the config would send without its certificate is refused at issue, never sent', async () => {
    const before = requestsOf('mtls-client').length;
    const apiBefore = server.apiCalls.length;
    const { status, body } = await call('/api/mtls_unbound');
    expect(status).toBe(502);
    expect(body.reason).toBe('token-endpoint-misconfigured');
    expect(body.detail).toContain('certificate_bound_tokens is off');
    // The server did issue it; the API never saw it.
    expect(requestsOf('mtls-client').slice(before).map((r) => r.status)).toEqual([200]);
    expect(server.apiCalls.slice(apiBefore)).toEqual([]);
  });

  it('self_signed_tls_client_auth: the registered self-signed certificate, through its binding', async () => {
    const { status, body } = await call('/api/self_signed');
    expect(status, JSON.stringify(body)).toBe(200);
    expect(body).toEqual({ client_id: 'self-signed-client', scope: '', auth_method: 'self_signed_tls_client_auth', certificate_bound: false });
    expect(requestsOf('self-signed-client').map((r) => [r.method, r.certificate])).toEqual([['self_signed_tls_client_auth', true]]);
  });

  it('tls_client_auth through the nginx egress, which holds the certificate (proxy_ssl_certificate)', async () => {
    const { status, body } = await call('/api/mtls_egress');
    expect(status, JSON.stringify(body)).toBe(200);
    expect(body).toEqual({ client_id: 'mtls-egress-client', scope: '', auth_method: 'tls_client_auth', certificate_bound: true });
    expect(requestsOf('mtls-egress-client').map((r) => [r.method, r.certificate])).toEqual([['tls_client_auth', true]]);
  });
});
