/**
 * @module Client assertions: the signed JWT a client authenticates with at the token endpoint
 * (RFC 7523 §2.2 as profiled by OpenID Connect Core §9: `private_key_jwt`, `client_secret_jwt`).
 *
 * One fresh assertion per token request: `iss` = `sub` = the client id, `aud` the token endpoint
 * (or `client_assertion.audience`), a random `jti`, `iat` and `exp`. Clock skew: `iat` is set
 * `ASSERTION_BACKDATE_S` in the past and `exp` `ASSERTION_LIFETIME_S` ahead, so a server whose clock
 * is up to 30 s behind ours does not see an assertion "issued in the future", and one up to 60 s
 * ahead still sees it unexpired, with no tolerance of its own. Signed with jose; keys are imported
 * once per isolate (upstream.ts builds the signer) and never leave this module.
 */
import { SignJWT } from 'jose';
import { ASSERTION_METHODS, ConfigError, type UpstreamConfig } from '../config/schema';
import { readAssertionKeys, type Credentials } from '../config/secrets';
import { importSigningKey, type SigningKey } from './client-keys';

/** RFC 7523 §2.2: the `client_assertion_type` of a JWT client assertion. */
export const CLIENT_ASSERTION_TYPE = 'urn:ietf:params:oauth:client-assertion-type:jwt-bearer';
/** `exp` is this far after now. */
export const ASSERTION_LIFETIME_S = 60;
/** `iat` is this far before now: the server's clock may be behind ours by this much. */
export const ASSERTION_BACKDATE_S = 30;

/** The claims of one client assertion (seconds since the epoch). */
export interface AssertionClaims {
  iss: string;
  sub: string;
  aud: string;
  jti: string;
  iat: number;
  exp: number;
}

/** The claims of an assertion made at `nowMs` (the injectable clock's time). */
export function assertionClaims(clientId: string, audience: string, nowMs: number, jti: string = crypto.randomUUID()): AssertionClaims {
  const now = Math.floor(nowMs / 1000);
  return { iss: clientId, sub: clientId, aud: audience, jti, iat: now - ASSERTION_BACKDATE_S, exp: now + ASSERTION_LIFETIME_S };
}

/** What identifies a signing key in the credential set's fingerprint (never key material). */
export interface SignerIdentity {
  alg: string;
  kid?: string;
  /** RFC 7638 thumbprint of the public key. */
  jkt: string;
}

/** What signs an upstream's assertions: its keys in order (the first is current), or the client secret (HS256). */
export interface AssertionSigner {
  /**
   * A fresh assertion, signed with the current key; after the endpoint refused the previous one,
   * with the next configured key (the previous key while a rotation is under way), else the same.
   */
  sign(nowMs: number, afterRefusal: boolean): Promise<string>;
  /** What identifies the current key (undefined for the client secret, which is never fingerprinted). */
  identity: SignerIdentity | undefined;
}

/**
 * The signer of an upstream that authenticates with an assertion (undefined for other methods),
 * its keys imported. Throws `ConfigError` naming the config key when a key that passed the start
 * check still cannot be imported (never showing the key).
 */
export async function assertionSigner(name: string, u: UpstreamConfig, creds: Credentials, env: object): Promise<AssertionSigner | undefined> {
  if (!ASSERTION_METHODS.includes(u.client_auth)) return undefined;
  const clientId = creds.clientId ?? '';
  const audience = u.client_assertion?.audience ?? u.token_url;
  if (u.client_auth === 'client_secret_jwt') {
    const secret = new TextEncoder().encode(creds.clientSecret ?? '');
    return {
      identity: undefined,
      sign: (nowMs) => new SignJWT({ ...assertionClaims(clientId, audience, nowMs) }).setProtectedHeader({ alg: 'HS256', typ: 'JWT' }).sign(secret),
    };
  }
  const keys: SigningKey[] = [];
  const issues: string[] = [];
  for (const [i, k] of readAssertionKeys(name, u, env).entries()) {
    try {
      keys.push(await importSigningKey(k.key, k.alg, k.kid));
    } catch (e) {
      // Named by its config key, never by content.
      issues.push(`UPSTREAMS.${name}.client_assertion.keys.${i}.from: Worker secret "${k.from}": ${e instanceof Error ? e.message : 'the key could not be imported'}`);
    }
  }
  if (issues.length > 0) throw new ConfigError(issues);
  const current = keys[0]!;
  return {
    identity: { alg: current.alg, ...(current.kid === undefined ? {} : { kid: current.kid }), jkt: current.thumbprint },
    sign: (nowMs, afterRefusal) => {
      const k = afterRefusal ? (keys[1] ?? current) : current;
      return new SignJWT({ ...assertionClaims(clientId, audience, nowMs) })
        .setProtectedHeader({ alg: k.alg, typ: 'JWT', ...(k.kid === undefined ? {} : { kid: k.kid }) })
        .sign(k.key);
    },
  };
}
