/**
 * @module Forwarding: call the API with the token injected, and recover from a rejected token once.
 *
 * Only allowlisted request headers go up and only allowlisted response headers come back; the
 * injected token is the only credential the API sees. A "token rejected" status invalidates the
 * token by compare-and-swap and retries once with the replacement; a second rejection is a 502.
 */
import type { UpstreamConfig } from '../config';
import { egressFor } from '../egress';
import { problem } from '../problem';
import { getToken, invalidate, type WaitUntil } from '../token/cache';
import type { Env, TokenKey } from '../token/store';

/** Request headers a browser may pass to the API. Authorization, Cookie, X-Forwarded-* never do. */
export const FORWARDED_REQUEST_HEADERS = ['accept', 'accept-language', 'content-language'] as const;

/** Response headers the API may pass back to the browser (no Set-Cookie, no auth challenges). */
export const FORWARDED_RESPONSE_HEADERS = ['content-type', 'content-language', 'retry-after', 'etag', 'last-modified'] as const;

/** What to send to the API; the body is buffered so it can be sent twice. */
export interface ApiCall {
  method: string;
  /** Absolute URL on the upstream's API origin, already checked against the route. */
  url: URL;
  headers: Headers;
  body?: string | Uint8Array;
}

/** Everything the forwarder needs from the request in hand. */
export interface ForwardContext {
  env: Env;
  key: TokenKey;
  upstream: UpstreamConfig;
  waitUntil?: WaitUntil;
}

/** Join the API origin's path and a route target, never leaving the origin. */
export function apiUrl(u: UpstreamConfig, path: string): URL {
  const base = new URL(u.api_origin);
  const url = new URL(base.origin);
  url.pathname = base.pathname.replace(/\/+$/, '') + path;
  return url;
}

/** Copy the allowlisted request headers. */
export function forwardedRequestHeaders(incoming: Headers): Headers {
  const out = new Headers();
  for (const name of FORWARDED_REQUEST_HEADERS) {
    const v = incoming.get(name);
    if (v !== null) out.set(name, v);
  }
  return out;
}

/**
 * Call the API. Returns the API's answer (allowlisted headers, `no-store`). Throws a `ProblemError`:
 * 504 on timeout, 502 when unreachable or when a fresh token is rejected too, 502/503 when no token
 * can be had.
 */
export async function forward(ctx: ForwardContext, call: ApiCall): Promise<Response> {
  const send = egressFor(ctx.key.upstream, ctx.upstream, ctx.env);
  let token = await getToken(ctx.env, ctx.key, ctx.waitUntil);
  let res = await sendOnce(ctx, send, call, token);
  if (ctx.upstream.token_rejected_statuses.includes(res.status)) {
    await res.body?.cancel();
    token = await invalidate(ctx.env, ctx.key, token, ctx.waitUntil);
    res = await sendOnce(ctx, send, call, token);
    if (ctx.upstream.token_rejected_statuses.includes(res.status)) {
      await res.body?.cancel();
      throw problem(502, 'Upstream rejected a fresh token', `the API answered ${res.status} to a token it had just been given; not retrying again`);
    }
  }
  return passBack(res);
}

async function sendOnce(ctx: ForwardContext, send: (r: Request) => Promise<Response>, call: ApiCall, token: string): Promise<Response> {
  const headers = new Headers(call.headers);
  headers.set(ctx.upstream.inject_header, ctx.upstream.inject_format.replace('{token}', token));
  const request = new Request(call.url, {
    method: call.method,
    headers,
    ...(call.body === undefined ? {} : { body: call.body }),
    signal: AbortSignal.timeout(ctx.upstream.api_timeout_ms),
    redirect: 'manual',
  });
  try {
    return await send(request);
  } catch (e) {
    if (e instanceof Error && (e.name === 'TimeoutError' || e.name === 'AbortError')) {
      throw problem(504, 'Upstream timed out', `the API did not answer within ${ctx.upstream.api_timeout_ms} ms`);
    }
    throw problem(502, 'Upstream unreachable', 'the API could not be reached');
  }
}

function passBack(res: Response): Response {
  const headers = new Headers({ 'Cache-Control': 'no-store' });
  for (const name of FORWARDED_RESPONSE_HEADERS) {
    const v = res.headers.get(name);
    if (v !== null) headers.set(name, v);
  }
  return new Response(res.body, { status: res.status, headers });
}
