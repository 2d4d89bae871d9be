/**
 * @module Egress: how an upstream's token and API traffic leaves the Worker.
 *
 * One pluggable piece so that IP-bound tokens (seed 002) can later send *all* of an upstream's
 * traffic through one egress origin without the token or gateway code knowing. Today: `direct`
 * (the Worker's own `fetch`) and `binding` (a service binding, e.g. a Worker that owns the egress).
 */
import type { UpstreamConfig } from './config';

/** Sends one request on behalf of an upstream. */
export type Egress = (request: Request) => Promise<Response>;

/** The egress for an upstream (`loadConfig` has checked that a named binding exists). */
export function egressFor(upstream: UpstreamConfig, env: object): Egress {
  const e = upstream.egress;
  switch (e.mode) {
    case 'direct':
      return (request) => fetch(request);
    case 'binding': {
      const binding = (env as Record<string, Fetcher>)[e.binding]!;
      return (request) => binding.fetch(request);
    }
  }
}

/**
 * Run `work` (a request and the reading of its answer) with an abort signal that fires after `ms`;
 * throws an error named `TimeoutError` then. The timer is cleared when `work` settles: a pending
 * `AbortSignal.timeout` would keep a Durable Object busy (and unevictable) for its whole length,
 * and covering the body read too means a slow-dripping answer cannot stall a refresh forever.
 */
export async function withTimeout<T>(ms: number, work: (signal: AbortSignal) => Promise<T>): Promise<T> {
  const controller = new AbortController();
  let expire!: (e: DOMException) => void;
  const expired = new Promise<never>((_, reject) => (expire = reject));
  const timer = setTimeout(() => {
    const e = new DOMException('timed out', 'TimeoutError');
    controller.abort(e);
    expire(e);
  }, ms);
  try {
    return await Promise.race([work(controller.signal), expired]);
  } finally {
    clearTimeout(timer);
  }
}
