/**
 * @module Structured logs: one JSON line per request, and the names of every other event.
 *
 * Workers Logs indexes the fields of a JSON line, so every line is one `JSON.stringify`d object
 * with an `event`. What may appear in a line is decided here and nowhere else: ids, names from
 * the config, statuses, durations, problem slugs — never a token, a secret, an `Authorization`
 * value or a submitted value, except the fields a route names in `log_fields` (the operator's
 * explicit choice, bounded in size). docs/operations.md, "Logs", is the table of these events.
 */
import { pathParams, type RouteConfig } from './config/schema';
import type { TokenSource } from './token/outcome';

/** Events the TokenStore logs, per credential set and scope set (docs/operations.md, "Logs"). */
export type TokenEvent =
  | 'token_fetched'
  | 'token_refreshed'
  | 'token_request_failed'
  | 'token_cooldown_started'
  | 'token_cooldown_blocked'
  | 'token_budget_blocked'
  | 'token_rejected_by_api'
  | 'token_invalidated'
  | 'token_legacy_adopted'
  | 'token_refresh_crashed';

/** Write one structured line. `error` goes to `console.error` (Workers Logs level "error"). */
export function logEvent(event: string, fields: Record<string, unknown>, level: 'log' | 'error' = 'log'): void {
  console[level](JSON.stringify({ event, ...fields }));
}

/** Write a request's line (`error` when the Worker itself failed). */
export function logRequest(line: RequestLine, level: 'log' | 'error' = 'log'): void {
  console[level](JSON.stringify(line));
}

/**
 * What is known of one request when its line is written: gathered by the one place that logs (the
 * request-line middleware, index.ts) from what the steps returned.
 */
export interface RequestFacts {
  requestId: string;
  /** The client's own `X-Request-Id`, as far as it is safe to log. */
  clientRequestId?: string;
  /** The route that took the request (its name in ROUTES). */
  routeName?: string;
  /** The routes of the path the router matched, when no route took the request (refused before). */
  pathRoutes?: ReadonlyArray<readonly [string, RouteConfig]>;
  /** How a step ended the request its own way (`honeypot`, `health`, `status-admin`, `page`). */
  outcome?: string;
  /** The problem slug the request was refused or failed with. */
  reason?: string;
  /** The API's status, of the last call when a rejected token was retried. */
  upstreamStatus?: number;
  /** API calls made: 2 when a rejected token was replaced and the call sent again. */
  upstreamCalls?: number;
  token?: TokenSource;
  /** The values of the route's `log_fields`. */
  fields?: Record<string, unknown>;
}

/** The fields of a request line, in the order they are written (docs/operations.md, "Logs"). */
export interface RequestLine {
  event: 'request';
  request_id: string;
  client_request_id?: string;
  /** The route's name in ROUTES; null when no route matched (404, /healthz, /status). */
  route: string | null;
  method: string;
  status: number;
  upstream_status?: number;
  upstream_calls?: number;
  /** Until the answer's headers (a streamed body may go on after). */
  duration_ms: number;
  /** `forwarded`, `preflight`, a problem slug, or what a step set (`honeypot`, `health`, `status`, `page`). */
  outcome: string;
  token?: TokenSource;
  fields?: Record<string, unknown>;
}

/** A client's own `X-Request-Id`, as far as it is safe to log (printable ASCII, bounded). */
export function clientRequestId(value: string | null): string | undefined {
  if (value === null) return undefined;
  return /^[\x21-\x7e]{1,128}$/.test(value) ? value : '(unprintable or too long)';
}

/** An HTTP method as it may be logged: a token of at most 16 characters, else a placeholder. */
function loggedMethod(method: string): string {
  return /^[A-Z]{1,16}$/.test(method) ? method : '(other)';
}

/** What happened to a request, for its line: see `RequestLine.outcome`. */
function outcomeOf(facts: RequestFacts, method: string, status: number): string {
  if (facts.outcome !== undefined) return facts.outcome;
  if (facts.reason !== undefined) return facts.reason;
  if (facts.upstreamStatus !== undefined) return 'forwarded';
  if (method === 'OPTIONS' && status === 204) return 'preflight';
  return 'answered';
}

/** The request line of one request; `routeName` names a route that did not take the request itself. */
export function requestLine(facts: RequestFacts, method: string, status: number, durationMs: number, routeName: string | null): RequestLine {
  return {
    event: 'request',
    request_id: facts.requestId,
    ...(facts.clientRequestId === undefined ? {} : { client_request_id: facts.clientRequestId }),
    route: routeName,
    method: loggedMethod(method),
    status,
    ...(facts.upstreamStatus === undefined ? {} : { upstream_status: facts.upstreamStatus }),
    ...(facts.upstreamCalls === undefined || facts.upstreamCalls < 2 ? {} : { upstream_calls: facts.upstreamCalls }),
    duration_ms: durationMs,
    outcome: outcomeOf(facts, method, status),
    ...(facts.token === undefined ? {} : { token: facts.token }),
    ...(facts.fields === undefined ? {} : { fields: facts.fields }),
  };
}

// ---------------------------------------------------------------------------------------------
// Which route a request was for
// ---------------------------------------------------------------------------------------------

/**
 * The name of the route a request was for, as the router saw it. The route that took the request
 * names itself; a request refused before a route took it (a disallowed origin, a preflight, a 405)
 * is put down to the routes of the path the router matched: the one that takes its method (a
 * preflight's: `Access-Control-Request-Method`), else all of them, comma-separated.
 */
export function routeNameOf(facts: RequestFacts, request: Request): string | null {
  if (facts.routeName !== undefined) return facts.routeName;
  const onPath = facts.pathRoutes;
  if (onPath === undefined) return null;
  const method = request.method === 'OPTIONS' ? (request.headers.get('Access-Control-Request-Method') ?? 'OPTIONS') : request.method === 'HEAD' ? 'GET' : request.method;
  const taking = onPath.filter(([, r]) => r.methods.some((m) => m === method));
  return (taking.length > 0 ? taking : onPath).map(([name]) => name).join(',');
}

// ---------------------------------------------------------------------------------------------
// A route's `log_fields`
// ---------------------------------------------------------------------------------------------

/** Longest string value logged for a field, and most items of a list. */
const MAX_LOGGED_CHARS = 200;
const MAX_LOGGED_ITEMS = 20;

/** What a route's fields are read from, once the API call is built. */
export interface FieldSources {
  params: Record<string, string>;
  /** The query forwarded to the API (only the parameters the route names). */
  query: URLSearchParams;
  /** The JSON body sent to the API, when there is one (mapped or as sent). */
  body?: Uint8Array;
  contentType?: string | null;
}

/** Reads the values of a route's `log_fields`; undefined for a route that logs none. Decided once per route. */
export type FieldPicker = (from: FieldSources) => Record<string, unknown>;

export function fieldPicker(route: RouteConfig): FieldPicker | undefined {
  if (route.log_fields.length === 0) return undefined;
  const params = new Set(pathParams(route.path));
  // Where each body field lands in the JSON sent: its mapped path, or its own name at the top.
  const bodyPath = (name: string): string[] => {
    const spec = route.form?.fields[name];
    if (spec === undefined) return [name];
    return (typeof spec === 'string' ? spec : spec.path).split('.');
  };
  const sources = route.log_fields.map((name) => ({
    name,
    from: params.has(name) ? ('param' as const) : Object.hasOwn(route.query, name) ? ('query' as const) : ('body' as const),
    path: bodyPath(name),
  }));
  const readsBody = sources.some((p) => p.from === 'body');
  return (from) => {
    const out: Record<string, unknown> = {};
    let body: unknown;
    if (readsBody && from.body !== undefined && /json/i.test(from.contentType ?? '')) {
      try {
        body = JSON.parse(new TextDecoder().decode(from.body));
      } catch {
        body = undefined;
      }
    }
    for (const p of sources) {
      const value =
        p.from === 'param' ? from.params[p.name] : p.from === 'query' ? listOrOne(from.query.getAll(p.name)) : p.path.reduce<unknown>((node, key) => (isRecord(node) && Object.hasOwn(node, key) ? node[key] : undefined), body);
      if (value !== undefined) out[p.name] = bounded(value);
    }
    return out;
  };
}

function isRecord(v: unknown): v is Record<string, unknown> {
  return typeof v === 'object' && v !== null && !Array.isArray(v);
}

function listOrOne(values: string[]): string | string[] | undefined {
  return values.length === 0 ? undefined : values.length === 1 ? values[0] : values;
}

/** A value as logged: scalars as they are (strings cut short), lists cut short, objects by their kind only. */
function bounded(v: unknown): unknown {
  if (typeof v === 'string') return v.length > MAX_LOGGED_CHARS ? `${v.slice(0, MAX_LOGGED_CHARS)}…` : v;
  if (typeof v === 'number' || typeof v === 'boolean' || v === null) return v;
  if (Array.isArray(v)) return v.slice(0, MAX_LOGGED_ITEMS).map((x) => (Array.isArray(x) || isRecord(x) ? '(object)' : bounded(x)));
  return '(object)';
}
