/**
 * @module Forwarding: call the API with the token injected, and recover from a rejected token once.
 *
 * Only allowlisted request headers go up and only allowlisted response headers come back; the
 * injected token is the only credential the API sees, and it is cut out of anything the API echoes
 * back. A "token rejected" status is reported to the token engine, which hands back a replacement
 * (or the token that already replaced it) for one retry, or says why the token was kept; a second
 * rejection is a 502. Uses the API accepted are reported back (sliding expiry, rejection judgement).
 */
import { clock } from '../clock';
import type { UpstreamConfig } from '../config';
import { EgressRefused, egressFor, type Egress } from '../egress';
import type { Env } from '../env';
import { MIN_REDACTED, problem, redact } from '../problem';
import { getToken, reportRejected, reportUse, type TokenRef, type WaitUntil } from '../token/cache';
import { freshTokenRejectedProblem, rejectedProblem, unavailableProblem } from './token-problems';

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
  key: TokenRef;
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
 * 504 on timeout, 502 when unreachable, refused by the egress or when a fresh token is rejected
 * too, 502/503 when no token can be had.
 */
export async function forward(ctx: ForwardContext, call: ApiCall): Promise<Response> {
  const send = egressFor(ctx.upstream, ctx.env);
  const rejects = (status: number) => ctx.upstream.token_rejected_statuses.includes(status);
  const first = await getToken(ctx.env, ctx.key);
  if (first.kind !== 'token') throw unavailableProblem(first, clock.now());
  let token = first.token;
  let sentAt = clock.now();
  let res = await sendOnce(ctx, send, call, token);
  if (rejects(res.status)) {
    await res.body?.cancel();
    const next = await reportRejected(ctx.env, ctx.key, token);
    if (next.kind === 'unavailable') throw unavailableProblem(next, clock.now());
    if (next.kind === 'kept') throw rejectedProblem(next, res.status, clock.now());
    token = next.token;
    sentAt = clock.now();
    res = await sendOnce(ctx, send, call, token);
    if (rejects(res.status)) {
      await res.body?.cancel();
      // Tell the engine a fresh token was rejected too: it stops replacing tokens on such answers.
      await reportRejected(ctx.env, ctx.key, token);
      throw freshTokenRejectedProblem(res.status);
    }
  }
  await reportUse(ctx.env, ctx.key, token, sentAt, ctx.waitUntil);
  return await passBack(res, token);
}

async function sendOnce(ctx: ForwardContext, send: Egress, call: ApiCall, token: string): Promise<Response> {
  const headers = new Headers(call.headers);
  // A function replacement: a token may contain `$&` or `$'`, which a string replacement expands.
  headers.set(ctx.upstream.inject_header, ctx.upstream.inject_format.replace('{token}', () => token));
  const request = new Request(call.url, {
    method: call.method,
    headers,
    ...(call.body === undefined ? {} : { body: call.body }),
    redirect: 'manual',
    // Also bounds the body as it streams to the browser; the request context ends with it.
    signal: AbortSignal.timeout(ctx.upstream.api_timeout_ms),
  });
  try {
    return await send(request);
  } catch (e) {
    if (e instanceof EgressRefused) throw problem(502, 'Egress refused the request', e.message);
    if (e instanceof Error && e.name === 'TimeoutError') {
      throw problem(504, 'Upstream timed out', `the API did not answer within ${ctx.upstream.api_timeout_ms} ms`);
    }
    throw problem(502, 'Upstream unreachable', 'the API could not be reached');
  }
}

/**
 * The API's answer for the browser: allowlisted headers, `no-store`. An API that echoes the request
 * (a debug endpoint, an error page quoting headers) would hand the injected token to the page, so
 * the token is cut out of the body and any header carrying it is dropped.
 */
async function passBack(res: Response, token: string): Promise<Response> {
  const headers = new Headers({ 'Cache-Control': 'no-store' });
  for (const name of FORWARDED_RESPONSE_HEADERS) {
    const v = res.headers.get(name);
    if (v !== null && !v.includes(token)) headers.set(name, v);
  }
  if (res.body === null || token.length < MIN_REDACTED) return new Response(res.body, { status: res.status, headers });
  // The usual answer, small JSON or text, is searched once natively; anything else is streamed
  // through the redactor (a JS transform, about twice the cost per request for small bodies).
  const length = Number(res.headers.get('Content-Length') ?? Infinity);
  if (length <= MAX_BUFFERED_BYTES && TEXTUAL.test(res.headers.get('Content-Type') ?? '')) {
    return new Response(redact(await res.text(), [token]), { status: res.status, headers });
  }
  return new Response(res.body.pipeThrough(redactor(token)), { status: res.status, headers });
}

/** Answers buffered whole for redaction: text types with a known, small length. */
const MAX_BUFFERED_BYTES = 256 * 1024;
const TEXTUAL = /^\s*(text\/|application\/([\w.+-]*\+)?(json|xml)\b)/i;

const REDACTED = new TextEncoder().encode('[redacted]');

/**
 * A byte stream with every occurrence of `secret` replaced by `[redacted]`, holding back at most
 * `secret.length - 1` bytes between chunks so a token split across chunks is caught too. Tokens
 * are ASCII, whose bytes never occur inside a UTF-8 multi-byte sequence, so byte matching is exact.
 */
export function redactor(secret: string): TransformStream<Uint8Array, Uint8Array> {
  const needle = new TextEncoder().encode(secret);
  const hold = needle.length - 1;
  let carry = new Uint8Array(0);
  const emit = (buf: Uint8Array, final: boolean, out: TransformStreamDefaultController<Uint8Array>) => {
    // Scan only where a whole needle could still start, unless this is the end of the stream.
    const limit = final ? buf.length : buf.length - hold;
    let from = 0;
    for (let i = buf.indexOf(needle[0]!, 0); i !== -1 && i < limit; i = buf.indexOf(needle[0]!, i + 1)) {
      if (i + needle.length > buf.length || !startsWith(buf, needle, i)) continue;
      if (i > from) out.enqueue(buf.slice(from, i));
      out.enqueue(REDACTED.slice());
      from = i + needle.length;
      i = from - 1;
    }
    const keepFrom = final ? buf.length : Math.max(from, limit);
    if (keepFrom > from) out.enqueue(buf.slice(from, keepFrom));
    carry = buf.slice(keepFrom);
  };
  return new TransformStream({
    transform(chunk, out) {
      const buf = new Uint8Array(carry.length + chunk.length);
      buf.set(carry);
      buf.set(chunk, carry.length);
      emit(buf, false, out);
    },
    flush(out) {
      emit(carry, true, out);
    },
  });
}

function startsWith(buf: Uint8Array, needle: Uint8Array, at: number): boolean {
  for (let j = 0; j < needle.length; j++) if (buf[at + j] !== needle[j]) return false;
  return true;
}
