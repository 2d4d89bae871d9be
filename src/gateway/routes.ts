/**
 * @module Gateway routes: turn the configured routes into a Hono app, once per config.
 *
 * A request follows this file top to bottom: origin guard and CORS (origin.ts) → raw path check →
 * method → params checked → body size limit → submission read and mapped (body.ts) → API call with
 * the token injected (forward.ts) → the API's answer, or for a plain HTML form a 303 (html.ts).
 * The client's query string is never forwarded.
 * Nothing outside the configured routes can be reached: targets are fixed templates whose params
 * are checked segments, joined onto the upstream's API origin.
 */
import { Hono, type Context } from 'hono';
import { bodyLimit } from 'hono/body-limit';
import type { Config, RouteConfig } from '../config';
import { problem, ProblemError } from '../problem';
import type { Env } from '../env';
import { scopeKey } from '../config';
import { readSubmission } from './body';
import { apiUrl, forward, forwardedRequestHeaders } from './forward';
import { htmlAnswer, htmlProblem, wantsHtml } from './html';
import { originGuard } from './origin';

export interface GatewayVariables {
  requestId: string;
  /** The route that matched, once known (the HTML flow needs it for errors too). */
  route?: RouteConfig;
}

export type GatewayEnv = { Bindings: Env; Variables: GatewayVariables };

/** A param may be one plain path segment: no `/`, `\`, `.`, `..` (anywhere), `%` or control character. */
const SAFE_PARAM = /^(?!\.$)(?!.*\.\.)[A-Za-z0-9_.~-]{1,200}$/;
/** Raw paths that try to smuggle separators or dot segments past the router. */
const UNSAFE_RAW_PATH = /%2f|%2e|%5c|%00|\\|[\x00-\x1f\x7f]/i;

const METHODS_WITH_BODY = new Set(['POST', 'PUT', 'PATCH']);

/** Register every configured route on `app`. */
export function registerRoutes(app: Hono<GatewayEnv>, config: Config): void {
  const byPath = new Map<string, RouteConfig[]>();
  for (const route of Object.values(config.routes)) byPath.set(route.path, [...(byPath.get(route.path) ?? []), route]);

  for (const [path, routes] of byPath) {
    // Origin first: every later refusal to an allowed page carries CORS headers it can read.
    app.use(path, originGuard(routes), rawPathGuard);
    for (const route of routes) {
      const limit = bodyLimit({
        maxSize: route.max_body_bytes,
        onError: () => {
          throw problem(413, 'Body too large', `this route takes at most ${route.max_body_bytes} bytes`);
        },
      });
      app.on(route.methods, path, selectRoute(route), limit, (c) => handle(c, config, route));
    }
    // Hono answers HEAD with a route's GET handler, so a GET route takes HEAD too.
    const methods = routes.flatMap((r) => r.methods);
    const allow = [...new Set([...methods, ...(methods.includes('GET') ? ['HEAD'] : []), 'OPTIONS'])].join(', ');
    app.all(path, () => {
      throw problem(405, 'Method not allowed', `this route accepts ${allow}`, { headers: { Allow: allow } });
    });
  }
}

const rawPathGuard = async (c: Context<GatewayEnv>, next: () => Promise<void>) => {
  const raw = c.req.url.slice(c.req.url.indexOf('/', c.req.url.indexOf('//') + 2)).split('?')[0] ?? '';
  if (UNSAFE_RAW_PATH.test(raw)) throw problem(400, 'Path not allowed', 'encoded separators, dot segments, backslashes and control characters are refused');
  await next();
};

const selectRoute = (route: RouteConfig) => async (c: Context<GatewayEnv>, next: () => Promise<void>) => {
  c.set('route', route);
  await next();
};

async function handle(c: Context<GatewayEnv>, config: Config, route: RouteConfig): Promise<Response> {
  const upstream = config.upstreams[route.upstream]!;
  const params = c.req.param() as Record<string, string>;
  for (const [name, value] of Object.entries(params)) {
    if (!SAFE_PARAM.test(value)) throw problem(404, 'Not found', `"${name}" must be a plain path segment (letters, digits, . _ ~ -)`);
  }
  const target = route.target.replace(/\{([^}]+)\}/g, (_, name: string) => encodeURIComponent(params[name] ?? ''));

  const hasBody = METHODS_WITH_BODY.has(c.req.method);
  const body = hasBody ? (await readSubmission(c.req.raw, route)).json : undefined;
  const headers = forwardedRequestHeaders(c.req.raw.headers);
  if (body !== undefined) headers.set('Content-Type', 'application/json');
  const html = wantsHtml(c.req.raw, route);
  // A browser form asks for HTML; the API is asked for what it speaks, and the page gets a 303.
  if (html) headers.set('Accept', 'application/json');

  const res = await forward(
    {
      env: c.env,
      key: { upstream: route.upstream, scope: scopeKey(route.scope ?? upstream.scope) },
      upstream,
      waitUntil: (p) => c.executionCtx.waitUntil(p),
    },
    { method: c.req.method, url: apiUrl(upstream, target), headers, ...(body === undefined ? {} : { body }) },
  );
  return html ? htmlAnswer(route, res, c.get('requestId')) : res;
}

/** The answer to an error inside a route: problem+json, or a 303 for a plain HTML form. */
export function routeErrorAnswer(c: Context<GatewayEnv>, err: ProblemError): Response | undefined {
  const route = c.get('route');
  if (route !== undefined && wantsHtml(c.req.raw, route)) return htmlProblem(route, err.problem, c.get('requestId'));
  return undefined;
}
