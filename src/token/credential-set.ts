/**
 * @module Credential sets: which TokenStore holds an upstream's tokens.
 *
 * One TokenStore per credential set: the upstream's name plus a fingerprint of what makes its
 * tokens what they are (token URL and method, client auth style and grant, client id or username,
 * extra params, API origin, egress: its mode, binding or origin, and `address`; for the assertion
 * and mTLS methods, the signing key and the certificate path too). A deploy that
 * changes none of these finds the same object, its tokens and its budget history; a change of any
 * of them gets a fresh object, so a token issued for one host, client or egress path is never sent
 * to another. The secret is not part of it: rotating a secret
 * keeps the current token until its next refresh.
 */
import { sha256Hex } from '../bytes';
import type { UpstreamConfig } from '../config/schema';
import type { SignerIdentity } from './client-assertion';

/** The Durable Object name of a credential set. */
export function storeName(upstream: string, fp: string): string {
  return `credset:${upstream}:${fp}`;
}

/** The name the first version gave an upstream's per-scope object (its state is adopted once). */
export function legacyStoreName(upstream: string, scope: string): string {
  return JSON.stringify([upstream, scope]);
}

/**
 * SHA-256 (hex, 128 bits kept) of what identifies the credential set; never the secret. `auth`:
 * what identifies the signing key or client certificate (`clientAuthIdentity`), appended only when
 * there is one, so the fingerprints of the shared-secret methods stay what they were.
 */
export async function fingerprint(u: UpstreamConfig, clientId: string | undefined, username: string | undefined, auth?: ClientAuthIdentity): Promise<string> {
  const material: unknown[] = [
    'credential-set/1',
    u.token_url,
    u.token_method,
    u.client_auth,
    u.grant,
    u.send_grant_type,
    clientId ?? null,
    username ?? null,
    Object.entries(u.extra_params).sort(([a], [b]) => (a < b ? -1 : 1)),
    u.api_origin,
    egressIdentity(u.egress),
  ];
  if (auth !== undefined) material.push(auth);
  return sha256Hex(JSON.stringify(material), 16);
}

/** The signing key and certificate path of an upstream, as far as they name its credential set. */
export interface ClientAuthIdentity {
  /** Algorithm, kid, public-key thumbprint of the current key: a new key is a new credential set. */
  key?: SignerIdentity;
  /** Who presents the certificate, its thumbprint, and whether API calls go with it. */
  mtls?: NonNullable<UpstreamConfig['mtls']> & { bound: boolean };
}

/**
 * What identifies an upstream's signing key (`key`: its signer's identity; only the first, current
 * key counts, so adding the previous one for a rotation changes nothing) and client certificate
 * path, or undefined for the shared-secret methods.
 */
export function clientAuthIdentity(u: UpstreamConfig, key: SignerIdentity | undefined): ClientAuthIdentity | undefined {
  if (key === undefined && u.mtls === undefined) return undefined;
  return { ...(key === undefined ? {} : { key }), ...(u.mtls === undefined ? {} : { mtls: { ...u.mtls, bound: u.certificate_bound_tokens } }) };
}

/**
 * Which way the tokens travel: the egress as configured, except that an egress origin is its origin
 * (a trailing "/" is the same egress) and not the name of its secret (rotating that secret, under
 * the same name or another, is not a new path). Direct and binding egresses are kept as they were
 * fingerprinted before the egress origin existed, so a deploy of this version costs them no token.
 */
function egressIdentity(e: UpstreamConfig['egress']): unknown {
  return e.mode === 'origin' ? { mode: e.mode, url: new URL(e.url).origin, ...(e.address === undefined ? {} : { address: e.address }) } : e;
}
