/**
 * @module Egress: how an upstream's token and API traffic leaves the Worker.
 *
 * Every request made for an upstream, token request or API call, is sent by the one `Egress` its
 * config names, so nothing of that upstream can leave another way (IP-bound tokens, seed 002):
 * - `direct`: the Worker's own `fetch` (many Cloudflare addresses);
 * - `binding`: a Fetcher binding (a service binding to a Worker, a Workers VPC Service or Network);
 * - `origin`: an egress origin, a reverse proxy on a fixed-IP host (deploy/egress/ has one on
 *   nginx). The request goes to the egress with the same path and query, the real host in
 *   `X-Egress-Host` and the shared secret in `X-Egress-Secret`; the egress checks both against
 *   fixed lists and forwards with TLS verification. Its own refusals carry `X-Egress-Refused`.
 */
import type { UpstreamConfig } from './config';
import { EGRESS_HOST_HEADER, EGRESS_REFUSED_HEADER, EGRESS_SECRET_HEADER } from './headers';

/**
 * Sends one request on behalf of an upstream. Throws `EgressRefused` when the egress refuses it.
 * `init` goes to `fetch()` itself: workerd honours `encodeResponseBody: 'manual'` there (API
 * answers are decoded by answer.ts, bounded), not on the Request.
 */
export type Egress = (request: Request, init?: RequestInit) => Promise<Response>;

/**
 * The egress origin refused to forward a request. The message is for people and names no secret:
 * only what was refused and which config to check.
 */
export class EgressRefused extends Error {
  constructor(
    /** `key`, `host`, or `other` for a marker this Worker does not know. */
    readonly why: 'key' | 'host' | 'other',
    host: string,
  ) {
    super(
      why === 'key'
        ? `the egress refused to forward to ${host}: it did not accept the egress secret (check the upstream's egress.secret_from and the keys the egress accepts)`
        : why === 'host'
          ? `the egress refused to forward to ${host}: that host is not on its list (add it to the egress's hosts)`
          : `the egress refused to forward to ${host}`,
    );
    this.name = 'EgressRefused';
  }
}

const egresses = new WeakMap<UpstreamConfig, Egress>();

/**
 * The egress for an upstream, built once per config (`loadConfig` has checked that the binding or
 * secret it names exists).
 */
export function egressFor(upstream: UpstreamConfig, env: object): Egress {
  let egress = egresses.get(upstream);
  if (egress === undefined) {
    egress = build(upstream, env);
    egresses.set(upstream, egress);
  }
  return egress;
}

/**
 * The secrets an upstream's egress puts on its requests (the egress origin's shared secret): to be
 * cut out of any answer too, in case an egress or an API echoes request headers back.
 */
export function egressSecrets(upstream: UpstreamConfig, env: object): string[] {
  const e = upstream.egress;
  return e.mode === 'origin' ? [secretOf(e.secret_from, env)] : NO_SECRETS;
}
const NO_SECRETS: string[] = [];

/** A Worker secret the config names (`loadConfig` has checked it is set and strong enough). */
function secretOf(from: string, env: object): string {
  return (env as Record<string, string>)[from]!;
}

function build(upstream: UpstreamConfig, env: object): Egress {
  const e = upstream.egress;
  switch (e.mode) {
    case 'direct':
      return (request, init) => fetch(request, init);
    case 'binding': {
      // Structural (not `Fetcher`): config.ts imports this module, and it also loads in Node.
      const binding = (env as Record<string, { fetch(request: Request, init?: RequestInit): Promise<Response> }>)[e.binding]!;
      return (request, init) => binding.fetch(request, init);
    }
    case 'origin':
      return viaOrigin(new URL(e.url).origin, secretOf(e.secret_from, env));
  }
}

/** Send each request to the egress origin `origin`, naming its real host, with the shared secret. */
function viaOrigin(origin: string, secret: string): Egress {
  return async (request, init) => {
    const target = new URL(request.url);
    const headers = new Headers(request.headers);
    // set(), not append(): whatever else put these names on the request never reaches the egress.
    headers.set(EGRESS_HOST_HEADER, target.host);
    headers.set(EGRESS_SECRET_HEADER, secret);
    // Bodies here are small and already in memory (a token form, a checked API body): buffering
    // keeps a Content-Length, which some token endpoints insist on.
    const body = request.body === null ? undefined : await request.arrayBuffer();
    const res = await fetch(
      new Request(`${origin}${target.pathname}${target.search}`, { method: request.method, headers, body, redirect: 'manual', signal: request.signal }),
      init,
    );
    const refused = res.headers.get(EGRESS_REFUSED_HEADER);
    if (refused === null) return res;
    await res.body?.cancel();
    throw new EgressRefused(refused === 'key' || refused === 'host' ? refused : 'other', target.host);
  };
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
