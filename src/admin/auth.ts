/**
 * @module Who may read /status: the holder of the admin bearer token, or a person Cloudflare Access
 * let through (its JWT verified here against the team's certs: signature, issuer, audience, expiry).
 *
 * Decided once per config: the admin token's digest and the team's key set are made at the first
 * request and reused, so a request to /status costs one digest, or one JWT verification (the certs
 * are fetched once and cached per isolate by jose). Neither a token nor a JWT is ever logged.
 */
import { createRemoteJWKSet, jwtVerify, type JWTVerifyGetKey } from 'jose';
import type { Config } from '../config/schema';
import { readAdminToken } from '../config/secrets';

/**
 * How a request proved it may read /status (`admin` token or `access` JWT), or why it did not: a
 * short code for the operator's log (`no-credentials`, `admin-token-mismatch`, or jose's error
 * code for the JWT such as `ERR_JWT_EXPIRED`, `ERR_JWT_CLAIM_VALIDATION_FAILED:aud`), never the
 * credential itself.
 */
export type StatusAuthResult = { caller: 'admin' | 'access' } | { refused: string };

export type StatusAuth = (request: Request) => Promise<StatusAuthResult>;

/** The header Cloudflare Access adds to each request it lets through to the Worker. */
export const ACCESS_JWT_HEADER = 'Cf-Access-Jwt-Assertion';

/** Cloudflare Access signs with RS256; nothing else (and never `none`) is accepted. */
const ACCESS_ALGORITHMS = ['RS256'];

/** One key set per team domain per isolate, so the certs are cached across requests and configs. */
const keySets = new Map<string, JWTVerifyGetKey>();

function keySetOf(teamDomain: string): JWTVerifyGetKey {
  let keys = keySets.get(teamDomain);
  if (keys === undefined) {
    keys = createRemoteJWKSet(new URL('/cdn-cgi/access/certs', teamDomain));
    keySets.set(teamDomain, keys);
  }
  return keys;
}

const sha256 = (s: string) => crypto.subtle.digest('SHA-256', new TextEncoder().encode(s));

/**
 * The guard of /status for `config`, or undefined when /status is off. `env` holds the admin token
 * (checked at start by `loadConfig`).
 */
export function statusAuth(config: Config, env: object): StatusAuth | undefined {
  const s = config.status;
  if (s === undefined) return undefined;
  // Digests of equal length, compared in constant time: neither the token's length nor where a
  // guess goes wrong shows in the time an answer takes.
  const adminDigest = s.admin_token_from === undefined ? undefined : sha256(readAdminToken(config, env));
  const access = s.access;
  const keys = access === undefined ? undefined : keySetOf(access.team_domain);
  return async (request) => {
    let refused = 'no-credentials';
    const authorization = request.headers.get('Authorization');
    if (adminDigest !== undefined && authorization !== null) {
      const given = /^Bearer +(\S+)\s*$/i.exec(authorization)?.[1];
      if (given !== undefined && crypto.subtle.timingSafeEqual(await sha256(given), await adminDigest)) return { caller: 'admin' };
      refused = 'admin-token-mismatch';
    }
    const jwt = request.headers.get(ACCESS_JWT_HEADER);
    if (access !== undefined && keys !== undefined && jwt !== null) {
      try {
        await jwtVerify(jwt, keys, { issuer: access.team_domain, audience: access.aud, algorithms: ACCESS_ALGORITHMS, requiredClaims: ['exp', 'iat'] });
        return { caller: 'access' };
      } catch (e) {
        // Expired or never expiring (no exp), wrong audience or issuer, a key not in the team's set, a malformed JWT, or the
        // certs could not be fetched: all the same to the caller (a 401), told apart in the log.
        refused = joseCode(e);
      }
    }
    return { refused };
  };
}

/** jose's error code and, for a failed claim, the claim's name; a plain word for anything else. */
function joseCode(e: unknown): string {
  const { code, claim } = (typeof e === 'object' && e !== null ? e : {}) as { code?: unknown; claim?: unknown };
  if (typeof code !== 'string' || !/^ERR_[A-Z_]{1,60}$/.test(code)) return 'access-jwt-unverifiable';
  return typeof claim === 'string' && /^[a-z]{1,20}$/.test(claim) ? `${code}:${claim}` : code;
}
