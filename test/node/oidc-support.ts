/**
 * @module A real token server for the client-authentication tests: panva's oidc-provider (a
 * certified OpenID provider) on 127.0.0.1 with its client credentials grant, JWT access tokens
 * with a short lifetime, every client authentication method the Worker speaks, and a tiny API
 * beside it that verifies the access token it is sent (signature, audience, and for certificate-
 * bound tokens the certificate presented on its own connection). It records each token request:
 * the method the server authenticated the client with, the assertion's claims, its answer.
 * Plus the Worker, built as `wrangler deploy` builds it, under Miniflare on real sockets.
 */
import { spawnSync } from 'node:child_process';
import { generateKeyPairSync, hash, X509Certificate, type KeyObject } from 'node:crypto';
import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { createServer as createHttpServer, type IncomingMessage, type Server, type ServerResponse } from 'node:http';
import { createServer as createHttpsServer } from 'node:https';
import type { AddressInfo } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import type { TLSSocket } from 'node:tls';
import { createLocalJWKSet, decodeJwt, decodeProtectedHeader, exportJWK, jwtVerify, type JWK } from 'jose';
import type { Json } from 'miniflare';
import Provider, { errors, type ClientMetadata } from 'oidc-provider';
import { ROOT } from './egress-support.ts';

/** The resource (audience) of the access tokens: the API beside the token server. */
export const API_RESOURCE = 'https://api.oidc.example/';
/** Access token lifetime, short: a token outlives a test, never a run. */
export const ACCESS_TOKEN_TTL_S = 30;
/** The scopes the API knows. */
export const API_SCOPES = 'codes:read codes:write';

/** One token request as the server saw it. */
export interface TokenRecord {
  clientId: string | undefined;
  /** The method the server authenticated the client with (its registered one), when it did. */
  method: string | undefined;
  status: number;
  error: string | undefined;
  /** The server's error_description (for a failing test's message). */
  description?: string;
  /** The client assertion's header and claims, when one was sent. */
  assertion?: { header: Record<string, unknown>; claims: Record<string, unknown> };
  /** Whether the TLS connection presented a client certificate. */
  certificate: boolean;
  /** The access token's `jti`, when one was issued. */
  tokenJti?: string;
  /** The issued token's scope. */
  scope?: string;
}

/** What the API answers when a token is good: what it verified. */
export interface ApiAnswer {
  client_id: string;
  scope: string;
  /** The client authentication method of the token request that obtained this token. */
  auth_method: string | undefined;
  /** The token is bound to a certificate, and the one presented on this connection matches. */
  certificate_bound: boolean;
}

export interface OidcServer {
  issuer: string;
  /** Plain http (loopback only). */
  httpPort: number;
  /** TLS, asking for (not requiring) a client certificate signed by the test CA. */
  tlsPort: number;
  tokenRequests: TokenRecord[];
  /** Each API call: the client its token was issued to (when it verified) and the API's status. */
  apiCalls: Array<{ clientId: string | undefined; status: number }>;
  close(): Promise<void>;
}

/** An ES256 key pair, the token server's own signing key. */
function serverKey(): JWK {
  const { privateKey } = generateKeyPairSync('ec', { namedCurve: 'P-256' });
  return { ...(privateKey.export({ format: 'jwk' }) as JWK), kid: 'as-1', alg: 'ES256', use: 'sig' };
}

/**
 * Start the server. `clients` are oidc-provider client metadata; `clockOffsetS` per client id
 * makes the server's strict assertion check (no tolerance: `iat` not in its future, `exp` in its
 * future) run on a clock that far from the Worker's, as if the two disagreed by that much.
 */
export async function startOidcServer(opts: {
  clients: ClientMetadata[];
  tls: { cert: string; key: string; ca: string };
  clockOffsetS?: Record<string, number>;
}): Promise<OidcServer> {
  const tokenRequests: TokenRecord[] = [];
  const apiCalls: OidcServer['apiCalls'] = [];
  const methodOfToken = new Map<string, string | undefined>();
  const httpServer = createHttpServer();
  await new Promise<void>((done) => httpServer.listen(0, '127.0.0.1', done));
  const httpPort = (httpServer.address() as AddressInfo).port;
  const issuer = `http://127.0.0.1:${httpPort}`;
  const signingKey = serverKey();

  const provider = new Provider(issuer, {
    clients: opts.clients,
    clientAuthMethods: ['client_secret_basic', 'client_secret_post', 'client_secret_jwt', 'private_key_jwt', 'tls_client_auth', 'self_signed_tls_client_auth', 'none'],
    jwks: { keys: [signingKey] },
    // No tolerance: the Worker's assertions must be right on their own.
    clockTolerance: 0,
    async assertJwtClientAuthClaimsAndHeader(_ctx, claims, _header, client) {
      // Strict, as some servers are: never issued in the server's future, unexpired, on its clock.
      const now = Date.now() / 1000 + (opts.clockOffsetS?.[client.clientId] ?? 0);
      if (typeof claims.iat !== 'number' || claims.iat > now) throw new errors.InvalidClientAuth('iat is in the future');
      if (typeof claims.exp !== 'number' || claims.exp <= now) throw new errors.InvalidClientAuth('the assertion has expired');
      if (claims.nbf !== undefined && (claims.nbf as number) > now) throw new errors.InvalidClientAuth('the assertion is not yet valid');
    },
    features: {
      devInteractions: { enabled: false },
      clientCredentials: { enabled: true },
      resourceIndicators: {
        enabled: true,
        defaultResource: () => API_RESOURCE,
        useGrantedResource: () => true,
        getResourceServerInfo: () => ({ scope: API_SCOPES, accessTokenFormat: 'jwt', accessTokenTTL: ACCESS_TOKEN_TTL_S, jwt: { sign: { alg: 'ES256' } } }),
      },
      mTLS: {
        enabled: true,
        tlsClientAuth: true,
        selfSignedTlsClientAuth: true,
        certificateBoundAccessTokens: true,
        getCertificate: (ctx) => (ctx.socket as TLSSocket).getPeerX509Certificate?.(),
        certificateAuthorized: (ctx) => (ctx.socket as TLSSocket).authorized === true,
        certificateSubjectMatches: (ctx, property, expected) =>
          property === 'tls_client_auth_subject_dn' && (ctx.socket as TLSSocket).getPeerX509Certificate?.()?.subject === expected,
      },
    },
  });

  // Record every token request: what was sent, and the method the server authenticated with.
  provider.use(async (ctx, next) => {
    await next();
    if (ctx.path !== '/token' || ctx.method !== 'POST') return;
    const params = ctx.oidc?.params as Record<string, string | undefined> | undefined;
    const body = ctx.body as Record<string, unknown> | undefined;
    const record: TokenRecord = {
      clientId: ctx.oidc?.client?.clientId,
      method: ctx.status === 200 ? ctx.oidc?.client?.clientAuthMethod : undefined,
      status: ctx.status,
      error: typeof body?.error === 'string' ? body.error : undefined,
      certificate: (ctx.socket as TLSSocket).getPeerX509Certificate?.() !== undefined,
      ...(typeof body?.error_description === 'string' ? { description: body.error_description } : {}),
    };
    const assertion = params?.client_assertion;
    if (assertion !== undefined) {
      try {
        record.assertion = { header: decodeProtectedHeader(assertion) as Record<string, unknown>, claims: decodeJwt(assertion) as Record<string, unknown> };
      } catch {
        // not a JWT: recorded without it
      }
    }
    if (ctx.status === 200 && typeof body?.access_token === 'string') {
      const jti = decodeJwt(body.access_token).jti;
      record.tokenJti = jti;
      if (typeof body.scope === 'string') record.scope = body.scope;
      if (jti !== undefined) methodOfToken.set(jti, record.method);
    }
    tokenRequests.push(record);
  });

  const publicKeys = createLocalJWKSet({ keys: [{ kty: signingKey.kty!, crv: signingKey.crv!, x: signingKey.x!, y: signingKey.y!, kid: signingKey.kid!, alg: 'ES256' }] });
  const oidc = provider.callback();

  /** The API: verifies the token it is sent, and answers with what it verified. */
  const api = async (req: IncomingMessage, res: ServerResponse) => {
    req.resume();
    let clientId: string | undefined;
    const answer = (status: number, body: unknown) => {
      apiCalls.push({ clientId, status });
      res.writeHead(status, { 'Content-Type': 'application/json' }).end(JSON.stringify(body));
    };
    const token = /^Bearer (\S+)$/.exec(req.headers.authorization ?? '')?.[1];
    if (token === undefined) return answer(401, { error: 'invalid_token', error_description: 'no token' });
    try {
      const { payload } = await jwtVerify(token, publicKeys, { issuer, audience: API_RESOURCE });
      clientId = String(payload.client_id);
      const bound = (payload.cnf as Record<string, string> | undefined)?.['x5t#S256'];
      if (bound !== undefined) {
        const cert = (req.socket as TLSSocket).getPeerX509Certificate?.();
        if (cert === undefined || hash('sha256', cert.raw, 'base64url') !== bound) {
          return answer(401, { error: 'invalid_token', error_description: 'certificate-bound token without its certificate' });
        }
      }
      const body: ApiAnswer = { client_id: String(payload.client_id), scope: String(payload.scope ?? ''), auth_method: methodOfToken.get(payload.jti ?? ''), certificate_bound: bound !== undefined };
      return answer(200, body);
    } catch {
      return answer(401, { error: 'invalid_token' });
    }
  };
  const handle = (req: IncomingMessage, res: ServerResponse) => (req.url?.startsWith('/api/') ? void api(req, res) : oidc(req, res));
  httpServer.on('request', handle);
  const tlsServer = createHttpsServer({ cert: opts.tls.cert, key: opts.tls.key, ca: opts.tls.ca, requestCert: true, rejectUnauthorized: false }, handle);
  await new Promise<void>((done) => tlsServer.listen(0, '127.0.0.1', done));
  const tlsPort = (tlsServer.address() as AddressInfo).port;

  const closeServer = (s: Server) =>
    new Promise<void>((done) => {
      s.closeAllConnections();
      s.close(() => done());
    });
  return { issuer, httpPort, tlsPort, tokenRequests, apiCalls, close: async () => void (await Promise.all([closeServer(httpServer), closeServer(tlsServer)])) };
}

/** A fresh key pair of the kind an algorithm needs: the private key as PKCS#8 PEM, the public as a JWK. */
export function keyPair(alg: 'RS256' | 'PS256' | 'ES256' | 'EdDSA'): { privatePem: string; privateJwk: JWK; publicJwk: JWK; privateKey: KeyObject } {
  const { privateKey, publicKey } =
    alg === 'ES256'
      ? generateKeyPairSync('ec', { namedCurve: 'P-256' })
      : alg === 'EdDSA'
        ? generateKeyPairSync('ed25519')
        : generateKeyPairSync('rsa', { modulusLength: 2048 });
  return {
    privatePem: privateKey.export({ format: 'pem', type: 'pkcs8' }) as string,
    privateJwk: privateKey.export({ format: 'jwk' }) as JWK,
    publicJwk: publicKey.export({ format: 'jwk' }) as JWK,
    privateKey,
  };
}

/** RFC 8705 §3.1 `x5t#S256` of a PEM certificate. */
export function certificateThumbprint(pem: string): string {
  return hash('sha256', new X509Certificate(pem).raw, 'base64url');
}

export { exportJWK };

// ---------------------------------------------------------------------------------------------
// The Worker under Miniflare, on real sockets
// ---------------------------------------------------------------------------------------------

export interface WorkerRun {
  /** POST `path` from `origin` with `{}`: the answer's status and text. */
  post(path: string, origin: string): Promise<{ status: number; text: string }>;
  dispose(): Promise<void>;
}

/** Build the Worker once as `wrangler deploy` would (a few seconds): call from `beforeAll`. */
export function buildWorker(): { bundle: string; remove(): void } {
  const dir = mkdtempSync(join(tmpdir(), 'eti-oidc-'));
  const bundle = join(dir, 'bundle');
  const r = spawnSync(process.execPath, [join(ROOT, 'node_modules/wrangler/bin/wrangler.js'), 'deploy', '--dry-run', '--outdir', bundle], {
    cwd: ROOT,
    env: { ...process.env, WRANGLER_SEND_METRICS: 'false', CI: '1' },
    encoding: 'utf8',
  });
  if (r.status !== 0) throw new Error(`wrangler build failed: ${r.stdout}${r.stderr}`);
  return { bundle, remove: () => rmSync(dir, { recursive: true, force: true }) };
}

/**
 * Run the built Worker with `bindings` (vars and secrets). Its own fetch trusts the CA at `caPath`
 * besides the public roots (Miniflare reads NODE_EXTRA_CA_CERTS when it loads, so it is loaded
 * here, after that is set: call this before anything else in the file imports miniflare);
 * `mtlsBindings` are Fetchers that present a client certificate (workerd's network
 * service with a TLS keypair: what a Cloudflare mTLS certificate binding is, a Fetcher that
 * presents the certificate, which Miniflare itself only offers as a remote binding).
 */
export async function runWorker(opts: {
  bundle: string;
  bindings: Record<string, Json>;
  caPath: string;
  mtlsBindings?: Record<string, { cert: string; key: string }>;
}): Promise<WorkerRun> {
  process.env.NODE_EXTRA_CA_CERTS = opts.caPath;
  const { Miniflare, convertV4MiniflareOptions } = await import('miniflare');
  const ca = readFileSync(opts.caPath, 'utf8');
  const compatibilityDate = /^compatibility_date\s*=\s*"([^"]+)"/m.exec(readFileSync(join(ROOT, 'wrangler.toml'), 'utf8'))![1]!;
  const network = (keypair?: { cert: string; key: string }) => ({
    network: {
      allow: ['public', 'private'],
      tlsOptions: { trustBrowserCas: true, trustedCertificates: [ca], ...(keypair === undefined ? {} : { keypair: { privateKey: keypair.key, certificateChain: keypair.cert } }) },
    },
  });
  const mf = new Miniflare(
    convertV4MiniflareOptions({
      compatibilityDate,
      scriptPath: join(opts.bundle, 'index.js'),
      modules: true,
      modulesRoot: opts.bundle,
      durableObjects: { TOKEN_STORE: { className: 'TokenStore', useSQLite: true } },
      bindings: opts.bindings,
      serviceBindings: Object.fromEntries(Object.entries(opts.mtlsBindings ?? {}).map(([name, pair]) => [name, network(pair)])),
    }),
  );
  await mf.ready;
  return {
    post: async (path, origin) => {
      const res = await mf.dispatchFetch(`https://injector.example${path}`, { method: 'POST', headers: { Origin: origin, 'Content-Type': 'application/json' }, body: '{}' });
      return { status: res.status, text: await res.text() };
    },
    dispose: () => mf.dispose(),
  };
}
