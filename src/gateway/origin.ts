/**
 * @module Origin policy: which web pages may call a route, and the CORS answer they get.
 *
 * Exact origins only, unless a route sets `allow_any_origin`. A request whose `Origin` is not
 * allowed is refused with 403 before anything else happens, so it never reaches the upstream.
 * A request without `Origin` is accepted only as a same-origin browser request to a route that
 * allows the Worker's own origin (browsers omit `Origin` on same-origin GETs), or as a GET form
 * navigation whose `Referer` is an allowed page.
 */
import { cors } from 'hono/cors';
import type { MiddlewareHandler } from 'hono';
import { TURNSTILE_HEADER, type RouteConfig } from '../config/schema';
import { problem } from '../problem';
import { FORWARDED_REQUEST_HEADERS } from '../headers';

/** Request headers a page may send (the preflight's Access-Control-Allow-Headers): what is forwarded, and the body's type. */
export const ALLOWED_REQUEST_HEADERS = ['Content-Type', ...FORWARDED_REQUEST_HEADERS];
/** Response headers a page's script may read. */
export const EXPOSED_RESPONSE_HEADERS = ['X-Request-Id', 'Retry-After', 'ETag', 'Location', 'Content-Location', 'Content-Disposition'];

/** Whether a page at `origin` (`null`: no Origin header) may call; `selfOrigin` is the Worker's. */
export type OriginPolicy = (origin: string | null, selfOrigin: string) => boolean;

/** Decide once per set of routes which origins pass; the request path only calls the result. */
export function originPolicy(routes: RouteConfig[]): OriginPolicy {
  const any = routes.some((r) => r.allow_any_origin);
  const allowed = new Set(routes.flatMap((r) => r.allowed_origins));
  return (origin, selfOrigin) => {
    if (origin === null) return allowed.has(selfOrigin) || any;
    if (origin === 'null') return any;
    return any || allowed.has(origin);
  };
}

/**
 * The origin of the page a request comes from: its `Origin`; or, for a plain GET form submitted
 * without JavaScript (a top-level navigation, which browsers send without `Origin`), the origin of
 * its `Referer`. A client outside a browser can forge either, as it can send no Origin at all.
 */
export function pageOrigin(request: Request): string | null {
  const origin = request.headers.get('Origin');
  if (origin !== null) return origin;
  const navigation = (request.method === 'GET' || request.method === 'HEAD') && request.headers.get('Sec-Fetch-Mode') === 'navigate';
  const referer = request.headers.get('Referer');
  if (!navigation || referer === null) return null;
  try {
    const from = new URL(referer).origin;
    return from === 'null' ? null : from;
  } catch {
    return null;
  }
}

/**
 * Middleware for one public path: refuse disallowed origins with 403, then answer CORS (preflight
 * 204 with exact headers and `Vary: Origin`) through Hono's cors middleware.
 *
 * Several routes may share a path with different methods; each keeps its own origins. A request is
 * judged by the routes that take its method (a preflight by `Access-Control-Request-Method`); a
 * method no route takes is judged by all of them, so the caller learns about the 405.
 */
export function originGuard(routes: RouteConfig[]): MiddlewareHandler {
  const methods = [...new Set(routes.flatMap((r) => r.methods))];
  const anyRoute = originPolicy(routes);
  const byMethod = new Map<string, OriginPolicy>(methods.map((m) => [m, originPolicy(routes.filter((r) => r.methods.includes(m)))]));
  const allowsFor = (method: string) => byMethod.get(method === 'HEAD' ? 'GET' : method) ?? anyRoute;
  const corsHeaders = cors({
    origin: (origin) => (origin !== '' && anyRoute(origin, '') ? origin : null),
    // A preflight learns only the methods its origin may use.
    allowMethods: (origin) => methods.filter((m) => allowsFor(m)(origin, '')),
    // A Turnstile route also takes the widget's token as a header (fetch clients).
    allowHeaders: routes.some((r) => r.turnstile !== undefined) ? [...ALLOWED_REQUEST_HEADERS, TURNSTILE_HEADER] : ALLOWED_REQUEST_HEADERS,
    exposeHeaders: EXPOSED_RESPONSE_HEADERS,
    maxAge: 600,
  });
  return async (c, next) => {
    const origin = pageOrigin(c.req.raw);
    const selfOrigin = new URL(c.req.url).origin;
    const method = c.req.method === 'OPTIONS' ? (c.req.header('Access-Control-Request-Method') ?? 'OPTIONS') : c.req.method;
    const allows = allowsFor(method);
    const sameOriginFetch = origin === null && c.req.header('Sec-Fetch-Site') === 'same-origin';
    if (origin === null ? !(sameOriginFetch && allows(null, selfOrigin)) : !allows(origin, selfOrigin)) {
      throw problem(
        'origin-not-allowed',
        origin === null ? 'this route only takes requests from allowed web pages (no Origin header was sent)' : `origin ${origin.slice(0, 100)} may not call this route`,
      );
    }
    return corsHeaders(c, next);
  };
}
