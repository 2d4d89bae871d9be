/**
 * @module Egress: how an upstream's token and API traffic leaves the Worker.
 *
 * One pluggable piece so that IP-bound tokens (seed 002) can later send *all* of an upstream's
 * traffic through one egress origin without the token or gateway code knowing. Today: `direct`
 * (the Worker's own `fetch`) and `binding` (a service binding, e.g. a Worker that owns the egress).
 */
import { ConfigError, type UpstreamConfig } from './config';

/** Sends one request on behalf of an upstream. */
export type Egress = (request: Request) => Promise<Response>;

/** The egress for an upstream. Throws `ConfigError` if a binding it names is not bound. */
export function egressFor(name: string, upstream: UpstreamConfig, env: object): Egress {
  const e = upstream.egress;
  switch (e.mode) {
    case 'direct':
      return (request) => fetch(request);
    case 'binding': {
      const binding = (env as Record<string, unknown>)[e.binding];
      if (typeof binding !== 'object' || binding === null || typeof (binding as Fetcher).fetch !== 'function') {
        throw new ConfigError([`UPSTREAMS.${name}.egress.binding: no binding named "${e.binding}"`]);
      }
      return (request) => (binding as Fetcher).fetch(request);
    }
  }
}
