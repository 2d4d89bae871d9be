/**
 * Issue 16 in workerd: client-authentication config refused at start (a missing or malformed key,
 * an algorithm that does not fit the key, mTLS with nowhere to present the certificate), keys of
 * each algorithm imported and signing in the Worker's runtime, the assertion's claims under the
 * injectable clock, the token request each method sends, certificate-bound tokens checked at
 * issue, the credential set's fingerprint covering the key and certificate, and each upstream's
 * signer and mTLS path resolved once per isolate (upstream.ts), a key that will not import taking
 * down only its own upstream. (The same methods against a real token server:
 * test/node/client-auth-oidc.test.ts.)
 */
import { createExecutionContext, env, waitOnExecutionContext } from 'cloudflare:test';
import { decodeProtectedHeader, exportJWK, jwtVerify, SignJWT, type JWK } from 'jose';
import { afterEach, describe, expect, it } from 'vitest';
import { setClock } from '../../src/clock';
import { parseConfig } from '../../src/config/load';
import type { UpstreamConfig } from '../../src/config/schema';
import { readCredentials, startIssues } from '../../src/config/secrets';
import worker from '../../src/index';
import { boundTokenProblem } from '../../src/mtls';
import { assertionSigner, CLIENT_ASSERTION_TYPE, type AssertionSigner } from '../../src/token/client-assertion';
import { clientAuthIdentity, fingerprint } from '../../src/token/credential-set';
import { buildTokenRequest } from '../../src/token/grant';
import { wiringFor } from '../../src/upstream';
import { configIssues } from '../helpers';
import { capturedLines } from './log-capture';

type Alg = 'RS256' | 'PS256' | 'ES256' | 'EdDSA';
const PARAMS: Record<Alg | 'RSA1024' | 'P-384', Parameters<typeof crypto.subtle.generateKey>[0]> = {
  RS256: { name: 'RSASSA-PKCS1-v1_5', modulusLength: 2048, publicExponent: new Uint8Array([1, 0, 1]), hash: 'SHA-256' },
  PS256: { name: 'RSA-PSS', modulusLength: 2048, publicExponent: new Uint8Array([1, 0, 1]), hash: 'SHA-256' },
  ES256: { name: 'ECDSA', namedCurve: 'P-256' },
  EdDSA: { name: 'Ed25519' },
  RSA1024: { name: 'RSASSA-PKCS1-v1_5', modulusLength: 1024, publicExponent: new Uint8Array([1, 0, 1]), hash: 'SHA-256' },
  'P-384': { name: 'ECDSA', namedCurve: 'P-384' },
};

function pem(label: string, der: ArrayBuffer): string {
  const b64 = btoa(String.fromCharCode(...new Uint8Array(der)));
  return `-----BEGIN ${label}-----\n${b64.match(/.{1,64}/g)!.join('\n')}\n-----END ${label}-----\n`;
}

/** A fresh key pair: the private key as PKCS#8 PEM and as a JWK, the public key as SPKI PEM and a JWK. */
async function keyPair(kind: keyof typeof PARAMS): Promise<{ pkcs8: string; jwk: JWK; spki: string; publicJwk: JWK; publicKey: CryptoKey }> {
  const pair = (await crypto.subtle.generateKey(PARAMS[kind], true, ['sign', 'verify'])) as CryptoKeyPair;
  return {
    pkcs8: pem('PRIVATE KEY', (await crypto.subtle.exportKey('pkcs8', pair.privateKey)) as ArrayBuffer),
    jwk: await exportJWK(pair.privateKey),
    spki: pem('PUBLIC KEY', (await crypto.subtle.exportKey('spki', pair.publicKey)) as ArrayBuffer),
    publicJwk: await exportJWK(pair.publicKey),
    publicKey: pair.publicKey,
  };
}

const base = { api_origin: 'https://api.example', token_url: 'https://auth.example/token', client_id: 'client-1' };
const pkJwt = (alg: string, kid?: string) => ({ ...base, client_auth: 'private_key_jwt', client_assertion: { keys: [{ from: 'API_KEY', alg, ...(kid === undefined ? {} : { kid }) }] } });
const THUMB = 'x'.repeat(43);

/** Start issues of a config with one upstream `a` and these secrets. */
function issuesAtStart(upstream: Record<string, unknown>, secrets: Record<string, unknown>): string[] {
  return startIssues(parseConfig({ UPSTREAMS: { a: upstream } }), secrets).map((i) => i.issue);
}

/** The signer of upstream `a` (its keys imported), which an assertion method always has. */
async function signerOf(u: UpstreamConfig, creds: { clientId: string; clientSecret?: string }, secrets: Record<string, unknown>): Promise<AssertionSigner> {
  const signer = await assertionSigner('a', u, creds, secrets);
  if (signer === undefined) throw new Error(`${u.client_auth} has no signer`);
  return signer;
}

/** What upstream.ts puts in the fingerprint for upstream `a`: its current key's identity and its mTLS path. */
async function identityOf(u: UpstreamConfig, secrets: Record<string, unknown>) {
  return clientAuthIdentity(u, (await assertionSigner('a', u, readCredentials('a', u, secrets), secrets))?.identity);
}

afterEach(() => setClock(undefined));

/** The Worker's env with other vars, secrets and bindings: a fresh object, so a fresh wiring. */
const envWith = (vars: Record<string, unknown>): typeof env => ({ ...env, ...vars });

describe('refused at start', () => {
  it('a missing key, naming the key', () => {
    expect(issuesAtStart(pkJwt('ES256'), {})).toEqual(['UPSTREAMS.a.client_assertion.keys.0.from: Worker secret "API_KEY" is not set']);
  });

  it.each([
    ['not a key at all', () => 'hunter2', 'is neither a PEM private key'],
    ['broken base64', () => '-----BEGIN PRIVATE KEY-----\n!!!!\n-----END PRIVATE KEY-----', 'is neither a PEM private key'],
    ['a PEM that is not PKCS#8 inside', () => `-----BEGIN PRIVATE KEY-----\n${btoa('not der at all')}\n-----END PRIVATE KEY-----`, 'is not a readable PKCS#8 private key'],
    ['a JWK that is not JSON', () => '{"kty": "EC",', 'is not valid JSON'],
  ])('a malformed key: %s', (_what, text, message) => {
    const issues = issuesAtStart(pkJwt('ES256'), { API_KEY: text() });
    expect(issues).toHaveLength(1);
    expect(issues[0]).toContain('UPSTREAMS.a.client_assertion.keys.0.from: Worker secret "API_KEY" ');
    expect(issues[0]).toContain(message);
  });

  it.each([
    ['ES256 with an RSA key', 'ES256', 'RS256', 'pkcs8', 'is an RSA key, but ES256 needs a P-256 key'],
    ['RS256 with a P-256 key', 'RS256', 'ES256', 'pkcs8', 'is a P-256 key, but RS256 needs an RSA key'],
    ['EdDSA with a P-256 JWK', 'EdDSA', 'ES256', 'jwk', 'is a P-256 key, but EdDSA needs a Ed25519 key'],
    ['PS256 with an Ed25519 key', 'PS256', 'EdDSA', 'pkcs8', 'is a Ed25519 key, but PS256 needs an RSA key'],
    ['ES256 with a P-384 key', 'ES256', 'P-384', 'pkcs8', 'on a curve other than P-256'],
    ['RS256 with a 1024-bit key', 'RS256', 'RSA1024', 'pkcs8', 'is a 1024-bit RSA key: RS256 needs at least 2048 bits'],
  ] as const)('an algorithm that does not fit the key: %s', async (_what, alg, kind, format, message) => {
    const k = await keyPair(kind);
    const text = format === 'jwk' ? JSON.stringify(k.jwk) : k.pkcs8;
    const issues = issuesAtStart(pkJwt(alg), { API_KEY: text });
    expect(issues).toHaveLength(1);
    expect(issues[0]).toContain(message);
  });

  it('a public key, a PKCS#1 key, a public JWK, a JWK that says another alg', async () => {
    const k = await keyPair('ES256');
    const rsa = await keyPair('RS256');
    const cases: Array<[string, string]> = [
      [k.spki, 'holds a "PUBLIC KEY", not a private key'],
      [rsa.pkcs8.replace(/PRIVATE KEY/g, 'RSA PRIVATE KEY'), 'convert it to PKCS#8 with: openssl pkcs8 -topk8 -nocrypt'],
      [JSON.stringify(k.publicJwk), 'is a public JWK (no "d")'],
      [JSON.stringify({ ...k.jwk, alg: 'ES384' }), 'says alg ES384, but the config says ES256'],
    ];
    for (const [text, message] of cases) expect(issuesAtStart(pkJwt('ES256'), { API_KEY: text }).join('\n')).toContain(message);
  });

  it('the message never carries key material; the Worker answers 500 and logs the key by name', async () => {
    const k = await keyPair('RS256');
    const before = capturedLines.length;
    const vars = { ...env, UPSTREAMS: { a: pkJwt('ES256') }, ROUTES: { r: { path: '/r', upstream: 'a', target: '/y', allowed_origins: ['https://forms.example.org'] } }, API_KEY: k.pkcs8 };
    const ctx = createExecutionContext();
    const res = await worker.fetch(new Request('https://injector.example/r', { method: 'POST', headers: { Origin: 'https://forms.example.org', 'Content-Type': 'application/json' }, body: '{}' }), vars, ctx);
    await waitOnExecutionContext(ctx);
    const text = await res.text();
    const log = capturedLines.slice(before).join('\n');
    expect(res.status).toBe(500);
    expect(text).not.toContain('API_KEY');
    expect(log).toContain('UPSTREAMS.a.client_assertion.keys.0.from: Worker secret \\"API_KEY\\" is an RSA key, but ES256 needs a P-256 key');
    for (const line of k.pkcs8.split('\n').filter((l) => l.length > 20 && !l.startsWith('-----'))) {
      expect(text + log).not.toContain(line);
    }
  });

  it('client_secret_jwt with a secret too short for HS256', () => {
    const u = { ...base, client_auth: 'client_secret_jwt', client_secret_from: 'S' };
    expect(issuesAtStart(u, { S: 'x'.repeat(31) })).toEqual([
      'UPSTREAMS.a.client_secret_from: Worker secret "S" is too short to sign client_secret_jwt assertions (HS256 needs at least 32 bytes, RFC 7518 §3.2)',
    ]);
    expect(issuesAtStart(u, { S: 'x'.repeat(32) })).toEqual([]);
  });

  it.each([
    [{ ...base, client_auth: 'private_key_jwt' }, 'UPSTREAMS.a.client_assertion: private_key_jwt needs client_assertion'],
    [{ ...pkJwt('ES256'), token_method: 'GET' }, 'UPSTREAMS.a.token_method: GET would put the client assertion in the URL'],
    [{ ...base, client_auth: 'client_secret_basic', client_secret_from: 'S', client_assertion: { audience: 'x' } }, 'client_secret_basic sends no client assertion'],
    [{ ...base, client_auth: 'client_secret_jwt', client_secret_from: 'S', client_assertion: { keys: [{ from: 'K', alg: 'ES256' }] } }, 'keys are for private_key_jwt'],
    [{ ...pkJwt('ES256'), client_assertion: { keys: [{ from: 'K', alg: 'ES256' }, { from: 'K', alg: 'ES256' }] } }, 'the two keys are the same Worker secret'],
    [{ ...pkJwt('ES256'), client_assertion: { keys: [{ from: 'K', alg: 'ES256', kid: '1' }, { from: 'L', alg: 'ES256', kid: '1' }] } }, 'the two keys have the same kid'],
    [{ ...pkJwt('ES256'), client_assertion: { keys: [{ from: 'K', alg: 'HS256' }] } }, 'UPSTREAMS.a.client_assertion.keys.0.alg: must be one of RS256, PS256, ES256, EdDSA'],
  ])('client assertion settings that cannot work: %#', (upstream, message) => {
    expect(configIssues({ UPSTREAMS: { a: upstream } }).join('\n')).toContain(message);
  });

  it('mTLS with neither a binding nor an egress that holds the certificate', () => {
    const mtls = { ...base, client_auth: 'tls_client_auth' };
    expect(configIssues({ UPSTREAMS: { a: mtls } }).join('\n')).toContain('UPSTREAMS.a.mtls: tls_client_auth presents a client certificate: set mtls = { via = "binding"');
    expect(configIssues({ UPSTREAMS: { a: { ...mtls, client_auth: 'self_signed_tls_client_auth' } } }).join('\n')).toContain('self_signed_tls_client_auth presents a client certificate');
    // "via egress" with no egress origin to hold it.
    expect(configIssues({ UPSTREAMS: { a: { ...mtls, mtls: { via: 'egress', certificate: THUMB } } } }).join('\n')).toContain('via = "egress" needs egress = { mode = "origin", ... }');
    // A binding beside an egress: the token request would leave another way than the API calls.
    const origin = { mode: 'origin', url: 'https://egress.example.org', secret_from: 'E' };
    expect(configIssues({ UPSTREAMS: { a: { ...mtls, egress: origin, mtls: { via: 'binding', binding: 'API_CERT', certificate: THUMB } } } }).join('\n')).toContain(
      'the mTLS binding sends requests itself, so they would not leave through the origin egress',
    );
    expect(configIssues({ UPSTREAMS: { a: { ...base, client_secret_from: 'S', certificate_bound_tokens: true } } }).join('\n')).toContain('certificate-bound tokens need the certificate: set mtls');
    expect(configIssues({ UPSTREAMS: { a: { ...mtls, mtls: { via: 'binding', binding: 'API_CERT', certificate: 'abc' } } } }).join('\n')).toContain("must be the certificate's SHA-256 thumbprint");
  });

  it('an mTLS binding that is not there', () => {
    const u = { ...base, client_auth: 'tls_client_auth', mtls: { via: 'binding', binding: 'API_CERT', certificate: THUMB } };
    expect(issuesAtStart(u, {})).toEqual(['UPSTREAMS.a.mtls.binding: no mTLS certificate binding named "API_CERT" (declare it under mtls_certificates in wrangler.toml)']);
    expect(issuesAtStart(u, { API_CERT: { fetch: () => new Response() } })).toEqual([]);
  });
});

describe('keys and assertions in the Worker runtime', () => {
  const upstreamOf = (alg: Alg, kid?: string): UpstreamConfig => parseConfig({ UPSTREAMS: { a: pkJwt(alg, kid) } }).upstreams.a!;

  it.each(['RS256', 'PS256', 'ES256', 'EdDSA'] as const)('%s: PKCS#8 PEM and JWK import, and the assertion verifies with the public key', async (alg) => {
    const k = await keyPair(alg);
    for (const text of [k.pkcs8, JSON.stringify(k.jwk)]) {
      const u = upstreamOf(alg, 'k-1');
      const signer = await signerOf(u, { clientId: 'client-1' }, { API_KEY: text });
      const jwt = await signer.sign(Date.now(), false);
      expect(decodeProtectedHeader(jwt)).toEqual({ alg, typ: 'JWT', kid: 'k-1' });
      const { payload } = await jwtVerify(jwt, k.publicKey, { algorithms: [alg] });
      expect(payload.iss).toBe('client-1');
    }
  });

  it('the claims, field by field, at a clock 30 s fast and 30 s slow: iat = now − 30 s, exp = now + 60 s', async () => {
    const k = await keyPair('ES256');
    const signer = await signerOf(upstreamOf('ES256'), { clientId: 'client-1' }, { API_KEY: k.pkcs8 });
    const jtis = new Set<string>();
    for (const skew of [30_000, -30_000]) {
      const now = Date.UTC(2026, 11, 3, 12, 0, 0) + skew;
      setClock({ now: () => now });
      const { payload } = await jwtVerify(await signer.sign(now, false), k.publicKey, { currentDate: new Date(now) });
      expect(payload).toEqual({ iss: 'client-1', sub: 'client-1', aud: 'https://auth.example/token', jti: expect.any(String), iat: now / 1000 - 30, exp: now / 1000 + 60 });
      jtis.add(payload.jti!);
    }
    expect(jtis.size).toBe(2);
  });

  it('client_secret_jwt: HS256 with the client secret; audience when configured', async () => {
    const u = parseConfig({ UPSTREAMS: { a: { ...base, client_auth: 'client_secret_jwt', client_secret_from: 'S', client_assertion: { audience: 'https://auth.example' } } } }).upstreams.a!;
    const secret = 'an-hs256-secret-of-at-least-32-bytes!';
    const jwt = await (await signerOf(u, { clientId: 'client-1', clientSecret: secret }, {})).sign(Date.now(), false);
    const { payload, protectedHeader } = await jwtVerify(jwt, new TextEncoder().encode(secret));
    expect(protectedHeader).toEqual({ alg: 'HS256', typ: 'JWT' });
    expect(payload.aud).toBe('https://auth.example');
  });

  it('a key that passes the start check but will not import is named, never shown', async () => {
    const k = await keyPair('ES256');
    const broken = { ...k.jwk, d: 'AAAA' };
    const u = upstreamOf('ES256');
    await expect(assertionSigner('a', u, { clientId: 'client-1' }, { API_KEY: JSON.stringify(broken) })).rejects.toMatchObject({
      name: 'ConfigError',
      issues: ['UPSTREAMS.a.client_assertion.keys.0.from: Worker secret "API_KEY": the key could not be imported for ES256'],
    });
  });

  it('...and the Worker answers 500 invalid-configuration at first use, the key named in the log', async () => {
    const k = await keyPair('ES256');
    const before = capturedLines.length;
    const vars = { ...env, UPSTREAMS: { a: pkJwt('ES256') }, ROUTES: { r: { path: '/r', upstream: 'a', target: '/y', allowed_origins: ['https://forms.example.org'] } }, API_KEY: JSON.stringify({ ...k.jwk, d: 'AAAA' }) };
    const ctx = createExecutionContext();
    const res = await worker.fetch(new Request('https://injector.example/r', { method: 'POST', headers: { Origin: 'https://forms.example.org', 'Content-Type': 'application/json' }, body: '{}' }), vars, ctx);
    await waitOnExecutionContext(ctx);
    expect(res.status).toBe(500);
    expect(((await res.json()) as { reason: string }).reason).toBe('invalid-configuration');
    expect(capturedLines.slice(before).join('\n')).toContain('UPSTREAMS.a.client_assertion.keys.0.from: Worker secret \\"API_KEY\\": the key could not be imported for ES256');
  });

  it('the token request of each method', async () => {
    const post = async (u: Record<string, unknown>, assertion?: string) => {
      const req = buildTokenRequest(parseConfig({ UPSTREAMS: { a: u } }).upstreams.a!, { clientId: 'client-1' }, '', assertion);
      return { auth: req.headers.get('Authorization'), body: Object.fromEntries(new URLSearchParams(await req.text())) };
    };
    expect(await post(pkJwt('ES256'), 'the.assertion.jwt')).toEqual({
      auth: null,
      body: { grant_type: 'client_credentials', client_id: 'client-1', client_assertion_type: CLIENT_ASSERTION_TYPE, client_assertion: 'the.assertion.jwt' },
    });
    expect(await post({ ...base, client_auth: 'tls_client_auth', mtls: { via: 'binding', binding: 'B', certificate: THUMB } })).toEqual({
      auth: null,
      body: { grant_type: 'client_credentials', client_id: 'client-1' },
    });
  });
});

describe('certificate-bound tokens', () => {
  const jwtWith = async (claims: Record<string, unknown>) => new SignJWT(claims).setProtectedHeader({ alg: 'HS256' }).sign(new TextEncoder().encode('k'.repeat(32)));
  const u = (over: Record<string, unknown>) => parseConfig({ UPSTREAMS: { a: { ...base, client_auth: 'tls_client_auth', ...over } } }).upstreams.a!;
  const viaBinding = { mtls: { via: 'binding', binding: 'B', certificate: THUMB } };

  it('a token bound to the configured certificate is used when it travels with the certificate', async () => {
    const token = await jwtWith({ cnf: { 'x5t#S256': THUMB } });
    expect(boundTokenProblem(u({ ...viaBinding, certificate_bound_tokens: true }), token)).toBeUndefined();
    const egress = { egress: { mode: 'origin', url: 'https://egress.example.org', secret_from: 'E' }, mtls: { via: 'egress', certificate: THUMB } };
    expect(boundTokenProblem(u({ ...egress, api_origin: 'https://api.example', token_url: 'https://auth.example/token' }), token)).toBeUndefined();
  });

  it('refused when the config would send it elsewhere, or it is bound to another certificate', async () => {
    const token = await jwtWith({ cnf: { 'x5t#S256': THUMB } });
    expect(boundTokenProblem(u(viaBinding), token)).toContain('certificate_bound_tokens is off');
    expect(boundTokenProblem(u({ mtls: { ...viaBinding.mtls, certificate: 'y'.repeat(43) }, certificate_bound_tokens: true }), token)).toContain('bound to another certificate');
    const secretClient = parseConfig({ UPSTREAMS: { a: { ...base, client_secret_from: 'S' } } }).upstreams.a!;
    expect(boundTokenProblem(secretClient, token)).toContain('mtls is not set');
  });

  it('unbound JWTs and opaque tokens pass', async () => {
    expect(boundTokenProblem(u(viaBinding), await jwtWith({ sub: 'x' }))).toBeUndefined();
    expect(boundTokenProblem(u(viaBinding), 'an-opaque-token-0123456789')).toBeUndefined();
  });
});

describe('the credential set covers the key and the certificate', () => {
  const fpOf = async (upstream: Record<string, unknown>, secrets: Record<string, unknown>) => {
    const u = parseConfig({ UPSTREAMS: { a: upstream } }).upstreams.a!;
    return fingerprint(u, 'client-1', undefined, await identityOf(u, secrets));
  };

  it('a new key, a new kid or a new certificate is a new credential set; adding the previous key for a rotation is not', async () => {
    const k1 = await keyPair('ES256');
    const k2 = await keyPair('ES256');
    const same = await fpOf(pkJwt('ES256', 'one'), { API_KEY: k1.pkcs8 });
    expect(await fpOf(pkJwt('ES256', 'one'), { API_KEY: JSON.stringify(k1.jwk) }), 'the same key as a JWK').toBe(same);
    expect(await fpOf(pkJwt('ES256', 'one'), { API_KEY: k2.pkcs8 }), 'another key').not.toBe(same);
    expect(await fpOf(pkJwt('ES256', 'two'), { API_KEY: k1.pkcs8 }), 'another kid').not.toBe(same);
    const rotating = { ...pkJwt('ES256'), client_assertion: { keys: [{ from: 'API_KEY', alg: 'ES256', kid: 'one' }, { from: 'OLD_KEY', alg: 'ES256', kid: 'zero' }] } };
    expect(await fpOf(rotating, { API_KEY: k1.pkcs8, OLD_KEY: k2.pkcs8 }), 'the previous key beside it').toBe(same);

    const mtls = (certificate: string) => ({ ...base, client_auth: 'tls_client_auth', mtls: { via: 'binding', binding: 'B', certificate } });
    expect(await fpOf(mtls(THUMB), {})).toBe(await fpOf(mtls(THUMB), {}));
    expect(await fpOf(mtls('y'.repeat(43)), {})).not.toBe(await fpOf(mtls(THUMB), {}));
  });

  it('the shared-secret methods keep the fingerprints they had', async () => {
    // Computed by the previous version (commit df51a51), as egress-config.test.ts pins them.
    const before = { api_origin: 'https://api.example', token_url: 'https://auth.example/token', client_id: 'c1', client_secret_from: 'S' };
    const u = parseConfig({ UPSTREAMS: { a: before } }).upstreams.a!;
    expect(await identityOf(u, { S: 'secret' })).toBeUndefined();
    expect(await fingerprint(u, 'c1', undefined, await identityOf(u, { S: 'secret' }))).toBe('13400215450c573a69641d83b51a23e3');
    // As upstream.ts resolves it, once per isolate.
    const wiring = await wiringFor(envWith({ UPSTREAMS: { a: before }, ROUTES: {}, S: 'secret' }));
    expect(wiring.upstreams.get('a')!.fingerprint).toBe('13400215450c573a69641d83b51a23e3');
  });
});

describe('each upstream resolved once (upstream.ts): its signer, its mTLS path, a key that will not import', () => {
  /** A Fetcher standing in for the mTLS certificate binding: records what it is sent. */
  function certBinding() {
    const seen: string[] = [];
    return { seen, binding: { fetch: async (req: Request) => (seen.push(`${req.method} ${req.url}`), new Response('{}', { headers: { 'Content-Type': 'application/json' } })) } };
  }
  const mtls = { ...base, client_auth: 'tls_client_auth', mtls: { via: 'binding', binding: 'API_CERT', certificate: THUMB } };

  it('the token request goes through the mTLS binding; API calls only when the tokens are bound to its certificate', async () => {
    for (const bound of [false, true]) {
      const cert = certBinding();
      const wiring = await wiringFor(envWith({ UPSTREAMS: { a: { ...mtls, certificate_bound_tokens: bound } }, ROUTES: {}, API_CERT: cert.binding }));
      const u = wiring.upstreams.get('a')!;
      await u.sendToken(new Request('https://auth.example/token', { method: 'POST' }));
      expect(cert.seen, `bound = ${bound}: the token request`).toEqual(['POST https://auth.example/token']);
      if (bound) {
        await u.send(new Request('https://api.example/y'));
        expect(cert.seen, 'bound: the API call too').toEqual(['POST https://auth.example/token', 'GET https://api.example/y']);
      } else {
        // Unbound: the API call leaves through the upstream's own egress (direct), not the binding.
        expect(u.send).not.toBe(u.sendToken);
      }
    }
  });

  it('a key WebCrypto will not import takes down its own upstream and routes; the others work', async () => {
    const k = await keyPair('ES256');
    const good = { ...base, client_id: 'c1', client_secret_from: 'S' };
    const route = (upstream: string, path: string) => ({ path, upstream, target: '/y', allowed_origins: ['https://forms.example.org'] });
    const wiring = await wiringFor(
      envWith({
        UPSTREAMS: { a: pkJwt('ES256'), b: good },
        ROUTES: { ra: route('a', '/ra'), rb: route('b', '/rb') },
        API_KEY: JSON.stringify({ ...k.jwk, d: 'AAAA' }),
        S: 'secret',
      }),
    );
    const issue = 'UPSTREAMS.a.client_assertion.keys.0.from: Worker secret "API_KEY": the key could not be imported for ES256';
    expect([...wiring.upstreams.keys()]).toEqual(['b']);
    expect(wiring.config.broken.upstreams).toEqual({ a: [issue] });
    expect(wiring.config.broken.routes).toEqual({ ra: { path: '/ra', methods: ['POST'], issues: [issue] } });
    expect(Object.keys(wiring.config.routes)).toEqual(['rb']);
  });

  it('private_key_jwt: the signer is built once, with the key imported, and the fingerprint names the key', async () => {
    const k = await keyPair('ES256');
    const vars = envWith({ UPSTREAMS: { a: pkJwt('ES256', 'k-1') }, ROUTES: {}, API_KEY: k.pkcs8 });
    const u = (await wiringFor(vars)).upstreams.get('a')!;
    expect(u.signer?.identity).toMatchObject({ alg: 'ES256', kid: 'k-1' });
    expect((await wiringFor(vars)).upstreams.get('a')!.signer).toBe(u.signer);
    const { payload } = await jwtVerify(await u.signer!.sign(Date.now(), false), k.publicKey);
    expect(payload.iss).toBe('client-1');
    expect(u.fingerprint).toBe(await fingerprint(u.settings, 'client-1', undefined, clientAuthIdentity(u.settings, u.signer!.identity)));
    expect(u.fingerprint).not.toBe(await fingerprint(u.settings, 'client-1', undefined));
  });
});
