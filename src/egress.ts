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
import { ConfigError, type UpstreamConfig } from './config/schema';
import { bindingIn, secretIn } from './config/secrets';
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

/**
 * The egress of an upstream (built once per isolate by upstream.ts; the config's start checks have
 * made sure the binding or secret it names is there).
 */
export function buildEgress(upstream: UpstreamConfig, env: object): Egress {
  const e = upstream.egress;
  switch (e.mode) {
    case 'direct':
      return (request, init) => fetch(request, init);
    case 'binding': {
      const binding = bindingIn(env, e.binding, 'fetcher');
      if (binding === undefined) throw new ConfigError([`UPSTREAMS egress.binding: no service binding named "${e.binding}"`]);
      return (request, init) => binding.fetch(request, init);
    }
    case 'origin':
      return viaOrigin(new URL(e.url).origin, egressSecretOf(e.secret_from, env));
  }
}

/**
 * The secrets an upstream's egress puts on its requests (the egress origin's shared secret): to be
 * cut out of any answer too, in case an egress or an API echoes request headers back.
 */
export function egressSecrets(upstream: UpstreamConfig, env: object): string[] {
  const e = upstream.egress;
  return e.mode === 'origin' ? [egressSecretOf(e.secret_from, env)] : [];
}

function egressSecretOf(from: string, env: object): string {
  const value = secretIn(env, from);
  if (value === undefined) throw new ConfigError([`UPSTREAMS egress.secret_from: Worker secret "${from}" is not set`]);
  return value;
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
