/**
 * @module The API request: everything a route sends up, built from the request in hand.
 *
 * Path: the route's target with checked params, on the upstream's API origin. Query: only the
 * parameters the route names (`query`), each checked; anything else is refused, never dropped.
 * Headers: content negotiation and conditionals (`If-None-Match` …) from an allowlist, the body's
 * Content-Type, and the encodings the Worker can decode. Body: body.ts. The token is added by
 * `sendApiCall` at the last moment, so a built call can be sent twice (a retry) with another token.
 */
import { compilePattern, type RouteConfig, type UpstreamConfig } from '../config/schema';
import { ACCEPT_ENCODING } from '../decode';
import { EgressRefused, type Egress } from '../egress';
import { FORWARDED_REQUEST_HEADERS } from '../headers';
import { problem } from '../problem';
import { fieldProblem, readBody } from './body';


/** What to send to the API; the body is bytes so it can be sent twice. */
export interface ApiCall {
  method: string;
  /** Absolute URL on the upstream's API origin, already checked against the route. */
  url: URL;
  headers: Headers;
  body?: Uint8Array;
}

/** Each upstream's API origin parsed once: its origin and its base path without trailing slashes. */
const apiBases = new WeakMap<UpstreamConfig, { origin: string; path: string }>();

/** Join the API origin's path and a route target (with its query), never leaving the origin. */
export function apiUrl(u: UpstreamConfig, path: string, search = ''): URL {
  let base = apiBases.get(u);
  if (base === undefined) {
    const parsed = new URL(u.api_origin);
    apiBases.set(u, (base = { origin: parsed.origin, path: parsed.pathname.replace(/\/+$/, '') }));
  }
  const url = new URL(base.origin);
  url.pathname = base.path + path;
  url.search = search;
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

/** Checks a request's query against a route's `query` and returns the query to forward ('' for none). */
export type QueryPolicy = (search: string) => string;

const CONTROL = /[\x00-\x1f\x7f]/;

/**
 * The query policy of a route, decided once: patterns compiled here, the request path only calls
 * the result. Throws `ProblemError` 400 (with `errors` naming each parameter, as a form's fields).
 */
export function queryPolicy(route: RouteConfig): QueryPolicy {
  const specs = new Map(Object.entries(route.query).map(([name, spec]) => [name, { ...spec, regex: spec.pattern === undefined ? undefined : compilePattern(spec.pattern) }]));
  const names = specs.size === 0 ? 'none' : [...specs.keys()].join(', ');
  const takes = specs.size === 0 ? 'this route takes no query parameters' : `this route takes ${names}`;
  const required = [...specs].filter(([, s]) => s.required).map(([n]) => n);
  return (search) => {
    if ((search === '' || search === '?') && required.length === 0) return '';
    const errors = new Map<string, string>();
    const counts = new Map<string, number>();
    const out: string[] = [];
    for (const [name, value] of new URLSearchParams(search)) {
      const spec = specs.get(name);
      const n = (counts.get(name) ?? 0) + 1;
      counts.set(name, n);
      if (spec === undefined) errors.set(name, `is not a query parameter of this route (${names})`);
      else if (n > 1 && !spec.list) errors.set(name, 'is given more than once');
      else if (value.length > spec.max_length) errors.set(name, `is longer than ${spec.max_length} characters`);
      else if (CONTROL.test(value)) errors.set(name, 'contains a control character');
      else if (spec.regex !== undefined && !spec.regex.test(value)) errors.set(name, 'does not have the expected form');
      else out.push(`${encodeURIComponent(name)}=${encodeURIComponent(value)}`);
    }
    for (const name of required) if (!counts.has(name)) errors.set(name, 'is required');
    if (errors.size > 0) throw fieldProblem(errors, 'query-not-allowed', takes);
    return out.length === 0 ? '' : `?${out.join('&')}`;
  };
}

/** What `buildApiCall` needs besides the request. */
export interface CallInputs {
  route: RouteConfig;
  upstream: UpstreamConfig;
  query: QueryPolicy;
  /** The route's target with its params filled in (already checked and encoded). */
  target: string;
  /** A plain HTML form: the API is asked for JSON whatever the browser accepts. */
  html: boolean;
}

/** The API call for a request, or that its honeypot was filled (nothing to call); see body.ts. */
export type PreparedCall = { trapped: true } | { trapped: false; call: ApiCall; turnstileField?: string };

/** The API call for `request`. Throws `ProblemError` for a query or body the route does not take. */
export async function buildApiCall(request: Request, inputs: CallInputs): Promise<PreparedCall> {
  const q = request.url.indexOf('?');
  const search = inputs.query(q === -1 ? '' : request.url.slice(q).split('#')[0]!);
  const { body, trapped, turnstileField } = await readBody(request, inputs.route);
  if (trapped) return { trapped };
  const headers = forwardedRequestHeaders(request.headers);
  headers.set('Accept-Encoding', ACCEPT_ENCODING);
  if (body !== undefined) headers.set('Content-Type', body.contentType);
  if (inputs.html) headers.set('Accept', 'application/json');
  const call = { method: request.method, url: apiUrl(inputs.upstream, inputs.target, search), headers, ...(body === undefined ? {} : { body: body.bytes }) };
  return { trapped, call, ...(turnstileField === undefined ? {} : { turnstileField }) };
}

/**
 * Send `call` with `token` injected. The timeout covers the answer's body as well (it streams to the
 * browser under the same signal). The runtime is told not to decode the answer (answer.ts does,
 * the same way everywhere). Throws `ProblemError`: 504 on timeout, 502 when unreachable.
 */
/** How every API call is fetched. */
const API_FETCH: RequestInit = { encodeResponseBody: 'manual' };

export async function sendApiCall(upstream: UpstreamConfig, send: Egress, call: ApiCall, token: string): Promise<Response> {
  const headers = new Headers(call.headers);
  // A function replacement: a token may contain `$&` or `$'`, which a string replacement expands.
  headers.set(upstream.inject_header, upstream.inject_format.replace('{token}', () => token));
  const request = new Request(call.url, {
    method: call.method,
    headers,
    ...(call.body === undefined ? {} : { body: call.body }),
    redirect: 'manual',
    signal: AbortSignal.timeout(upstream.api_timeout_ms),
  });
  try {
    // On fetch()'s init, where workerd honours it (on the Request it is ignored): the answer comes
    // still encoded, and answer.ts decodes it within its bounds. Else gzip is decoded twice (a 502).
    return await send(request, API_FETCH);
  } catch (e) {
    if (e instanceof EgressRefused) throw problem('egress-refused', e.message);
    if (e instanceof Error && e.name === 'TimeoutError') {
      throw problem('upstream-timeout', `the API did not answer within ${upstream.api_timeout_ms} ms`);
    }
    throw problem('upstream-unreachable', 'the API could not be reached');
  }
}
