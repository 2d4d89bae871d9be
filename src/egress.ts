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

/**
 * Send `request` through `egress`, aborting after `ms`. Throws an error named `TimeoutError` on
 * timeout. The timer is cleared as soon as an answer arrives: a pending `AbortSignal.timeout` would
 * keep a Durable Object busy (and unevictable) for its whole length.
 */
export async function sendWithin(egress: Egress, request: Request, ms: number): Promise<Response> {
  const controller = new AbortController();
  const timer = setTimeout(() => controller.abort(new DOMException('upstream timed out', 'TimeoutError')), ms);
  try {
    return await egress(new Request(request, { signal: controller.signal }));
  } catch (e) {
    if (controller.signal.aborted) throw new DOMException('upstream timed out', 'TimeoutError');
    throw e;
  } finally {
    clearTimeout(timer);
  }
}
