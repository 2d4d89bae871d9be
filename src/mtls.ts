/**
 * @module Mutual TLS (RFC 8705): which way an upstream's requests leave when a client certificate
 * must be presented, and which certificate-bound tokens may be sent at all.
 *
 * The certificate is never in the Worker's hands: a Cloudflare mTLS certificate binding
 * (`mtls = { via = "binding" }`) is a Fetcher that presents it, or the egress origin holds it
 * (`via = "egress"`: all of the upstream's traffic goes there anyway). With the binding, the token
 * request goes through it, and the API calls too when the tokens are bound to the certificate
 * (`certificate_bound_tokens`); a token whose `cnf.x5t#S256` says it is bound is refused at issue
 * when the config would send it without that certificate.
 */
import { decodeJwt } from 'jose';
import { ConfigError, type UpstreamConfig } from './config/schema';
import { bindingIn } from './config/secrets';
import type { Egress } from './egress';

/** How an upstream's token requests and API calls leave. */
export interface MtlsPaths {
  token: Egress;
  api: Egress;
}

/**
 * The ways out of an upstream given its `egress`: through the mTLS binding for the token request
 * (and for API calls when its tokens are bound to the certificate), else `egress`. Built once per
 * isolate by upstream.ts; the start checks have made sure the binding is there.
 */
export function mtlsPaths(name: string, u: UpstreamConfig, env: object, egress: Egress): MtlsPaths {
  if (u.mtls?.via !== 'binding') return { token: egress, api: egress };
  const binding = bindingIn(env, u.mtls.binding, 'mtls');
  if (binding === undefined) throw new ConfigError([`UPSTREAMS.${name}.mtls.binding: no mTLS certificate binding named "${u.mtls.binding}"`]);
  const viaBinding: Egress = (request, init) => binding.fetch(request, init);
  return { token: viaBinding, api: u.certificate_bound_tokens ? viaBinding : egress };
}

/**
 * Why a newly issued token may not be used under this config, if it may not: it is a JWT bound to
 * a certificate (`cnf.x5t#S256`, RFC 8705 §3.1) and the config would send it without that
 * certificate. Opaque tokens say nothing; `certificate_bound_tokens` covers them.
 */
export function boundTokenProblem(u: UpstreamConfig, token: string): string | undefined {
  let thumbprint: unknown;
  try {
    const cnf = decodeJwt(token).cnf;
    thumbprint = typeof cnf === 'object' && cnf !== null ? Reflect.get(cnf, 'x5t#S256') : undefined;
  } catch {
    return undefined; // not a JWT: nothing to read
  }
  if (thumbprint === undefined) return undefined;
  if (u.mtls === undefined) return 'the token is bound to a client certificate (cnf.x5t#S256) but mtls is not set: it would be sent without one';
  if (thumbprint !== u.mtls.certificate) return 'the token is bound to another certificate than mtls.certificate (cnf.x5t#S256 differs)';
  if (u.mtls.via === 'binding' && !u.certificate_bound_tokens) {
    return 'the token is bound to the client certificate (cnf.x5t#S256) but certificate_bound_tokens is off: API calls would not present it';
  }
  return undefined;
}
