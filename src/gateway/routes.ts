/**
 * @module Gateway routes: turn the configured routes into a Hono app, once per config.
 *
 * A request follows this file top to bottom: origin guard and CORS (origin.ts) → raw path check →
 * method → per-client rate limit (rate-limit.ts) → params checked → body size limit → the API call
 * built: query allowlist, headers, body (request.ts, body.ts) → honeypot (filled: answered as
 * accepted, nothing sent) → Turnstile verified (turnstile.ts) → sent with the token injected
 * (forward.ts) → the API's answer made safe (answer.ts), or for a plain HTML form a 303 (html.ts).
 * Cheap refusals come first: nothing a refused request does costs a token or an upstream call.
 * Nothing outside the configured routes can be reached: targets are fixed templates whose params
 * are checked segments, joined onto the upstream's API origin.
 */
import { Hono, type Context } from 'hono';
import { bodyLimit } from 'hono/body-limit';
import { ConfigError, type Config, type RouteConfig } from '../config/schema';
import { secretIn } from '../config/secrets';
import type { Env } from '../env';
import { fieldPicker, logEvent, type FieldPicker } from '../log';
import { problem, type ProblemError } from '../problem';
import type { Upstream, Wiring } from '../upstream';
import { ANSWER_HEADERS, type AnswerOptions } from './answer';
import type { GatewayEnv } from './context';
import { forward } from './forward';
import { htmlAccepted, htmlAnswer, htmlProblem, wantsHtml } from './html';
import { locationRewriter, SAFE_PARAM } from './locations';
import { originGuard } from './origin';
import { rateLimit } from './rate-limit';
import { buildApiCall, queryPolicy, type QueryPolicy } from './request';
import { turnstileCheck, type TurnstileCheck } from './turnstile';
import { paceOf, submitRecord } from '../pacing/client';

/** Raw paths that try to smuggle separators or dot segments past the router. */
const UNSAFE_RAW_PATH = /%2f|%2e|%5c|%00|\\|[\x00-\x1f\x7f]/i;

/** Everything about a route that does not depend on the request, decided at registration. */
interface RouteSetup {
  /** The route's key in ROUTES (logs, rate-limit keys). */
  name: string;
  route: RouteConfig;
  upstream: Upstream;
  /** The normalised scope set its token is for. */
  scope: string;
  query: QueryPolicy;
  turnstile: { check: TurnstileCheck; secret: string } | undefined;
  answer: Omit<AnswerOptions, 'rewriteLocation'>;
  rewrite: ReturnType<typeof locationRewriter>;
  /** Reads the route's `log_fields` for the request line; undefined when it logs none. */
  fields: FieldPicker | undefined;
  /** Waits for the upstream's pace before each call (a paced upstream), else undefined. */
  pace: ((attempt: number) => Promise<void>) | undefined;
}

/**
 * Paths in the order they must be registered: where two paths match one request (a specific
 * segment and a param in its place), the specific one first, so it answers for itself.
 * (config/load.ts refuses such pairs unless their methods and origins agree.)
 */
function bySpecificity(a: string, b: string): number {
  const sa = a.split('/');
  const sb = b.split('/');
  for (let i = 0; i < Math.min(sa.length, sb.length); i++) {
    const pa = sa[i]!.startsWith(':');
    const pb = sb[i]!.startsWith(':');
    if (pa !== pb) return pa ? 1 : -1;
  }
  return 0;
}

/**
 * Register every configured route on `app`. A broken route (config/load.ts) whose path can be read
 * answers there with the anonymous invalid-configuration 500, its keys named in the log.
 */
export function registerRoutes(app: Hono<GatewayEnv>, wiring: Wiring, env: Env): void {
  const { config } = wiring;
  const byPath = new Map<string, Array<[string, RouteConfig]>>();
  for (const [name, route] of Object.entries(config.routes)) byPath.set(route.path, [...(byPath.get(route.path) ?? []), [name, route]]);
  const rewriters = new Map(Object.keys(config.upstreams).map((u) => [u, locationRewriter(config, u)]));

  for (const path of [...byPath.keys()].sort(bySpecificity)) {
    const named = byPath.get(path)!;
    const routes = named.map(([, route]) => route);
    // Origin first: every later refusal to an allowed page carries CORS headers it can read.
    app.use(path, notePath(named), originGuard(routes), rawPathGuard);
    for (const [name, route] of named) {
      const limit = bodyLimit({
        maxSize: route.max_body_bytes,
        onError: () => {
          throw problem('body-too-large', `this route takes at most ${route.max_body_bytes} bytes`);
        },
      });
      const upstream = wiring.upstreams.get(route.upstream)!;
      const check = turnstileCheck(route);
      const setup: RouteSetup = {
        name,
        route,
        upstream,
        scope: upstream.scopeOf(route.scope),
        query: queryPolicy(route),
        // The secret is checked at start (config/secrets.ts): a route without it is broken, not here.
        turnstile: check === undefined ? undefined : { check, secret: secretIn(env, route.turnstile!.secret_from)! },
        answer: { maxAnswerBytes: route.max_answer_bytes, activeContent: route.active_content },
        rewrite: rewriters.get(route.upstream)!,
        fields: fieldPicker(route),
        pace: paceOf(upstream),
      };
      // The rate limit before the body limit: that one reads a body sent without Content-Length.
      const perClient = route.rate_limit === undefined ? unlimited : rateLimit(name, route.rate_limit, env);
      app.on(route.methods, path, selectRoute(name, route), perClient, limit, (c) => handle(c, setup));
    }
    // Hono answers HEAD with a route's GET handler, so a GET route takes HEAD too.
    const methods = routes.flatMap((r) => r.methods);
    const allow = [...new Set([...methods, ...(methods.includes('GET') ? ['HEAD'] : []), 'OPTIONS'])].join(', ');
    app.all(path, () => {
      throw problem('method-not-allowed', `this route accepts ${allow}`, { headers: { Allow: allow } });
    });
  }
  registerBrokenRoutes(app, config);
}

/** A broken route answers on its path with the anonymous 500 (index.ts); the log names its keys. */
function registerBrokenRoutes(app: Hono<GatewayEnv>, config: Config): void {
  for (const [name, broken] of Object.entries(config.broken.routes)) {
    if (broken.path === undefined) continue;
    app.on(broken.methods ?? ['POST'], broken.path, (c) => {
      c.set('routeName', name);
      throw new ConfigError([...broken.issues]);
    });
  }
}

const rawPathGuard = async (c: Context<GatewayEnv>, next: () => Promise<void>) => {
  const raw = c.req.url.slice(c.req.url.indexOf('/', c.req.url.indexOf('//') + 2)).split('?')[0] ?? '';
  if (UNSAFE_RAW_PATH.test(raw)) throw problem('path-not-allowed', 'encoded separators, dot segments, backslashes and control characters are refused');
  await next();
};

const unlimited = async (_c: Context<GatewayEnv>, next: () => Promise<void>) => {
  await next();
};

const selectRoute = (name: string, route: RouteConfig) => async (c: Context<GatewayEnv>, next: () => Promise<void>) => {
  c.set('route', route);
  c.set('routeName', name);
  await next();
};

/**
 * The routes of the path the router matched, for the request line of a request refused before a
 * route took it (origin, 405, preflight). The most specific path is registered first, as the
 * router tries them, so the first to run names the path.
 */
const notePath = (named: Array<[string, RouteConfig]>) => async (c: Context<GatewayEnv>, next: () => Promise<void>) => {
  if (c.get('pathRoutes') === undefined) c.set('pathRoutes', named);
  await next();
};

async function handle(c: Context<GatewayEnv>, setup: RouteSetup): Promise<Response> {
  const { route, upstream } = setup;
  const params = c.req.param() as Record<string, string>;
  for (const [name, value] of Object.entries(params)) {
    if (!SAFE_PARAM.test(value)) throw problem('not-found', `"${name}" must be a plain path segment (letters, digits, . _ ~ -)`);
  }
  const target = route.target.replace(/\{([^}]+)\}/g, (_, name: string) => encodeURIComponent(params[name] ?? ''));
  // A browser form asks for HTML; the API is asked for what it speaks, and the page gets a 303.
  const html = wantsHtml(c.req.raw, route);
  const prepared = await buildApiCall(c.req.raw, { route, upstream: upstream.settings, query: setup.query, target, html });
  if (prepared.trapped) {
    // Counted by the request line (outcome `honeypot`), never the field's value; the answer is the
    // one a success would get.
    c.set('outcome', 'honeypot');
    return html ? htmlAccepted(route, c.get('requestId')) : honeypotAnswer();
  }
  if (setup.turnstile !== undefined) {
    // A refusal is the request line's outcome (its problem slug); siteverify's error codes get a line of their own.
    const log = (event: string, fields: Record<string, unknown>) => logEvent(event, { request_id: c.get('requestId'), route: setup.name, ...fields });
    await setup.turnstile.check({ headers: c.req.raw.headers, field: prepared.turnstileField, secret: setup.turnstile.secret, log });
  }
  const { call } = prepared;
  if (setup.fields !== undefined) {
    c.set('fields', setup.fields({ params, query: call.url.searchParams, ...(call.body === undefined ? {} : { body: call.body }), contentType: call.headers.get('Content-Type') }));
  }
  const waitUntil = (p: Promise<unknown>) => c.executionCtx.waitUntil(p);
  if (route.coalesce !== undefined) {
    // The record waits for the upstream's next slot with others and leaves in one batch call.
    const { response, trace } = await submitRecord({ upstream, routeName: setup.name, route, scope: setup.scope, target, call, signal: c.req.raw.signal, waitUntil });
    c.set('trace', trace);
    return html ? htmlAnswer(route, response, c.get('requestId')) : response;
  }
  const forwarded = await forward(
    {
      upstream,
      scope: setup.scope,
      waitUntil,
      answer: { ...setup.answer, rewriteLocation: (url) => setup.rewrite(url, new URL(c.req.url).origin) },
      ...(setup.pace === undefined ? {} : { pace: setup.pace }),
    },
    call,
  );
  c.set('trace', forwarded.trace);
  if (!forwarded.ok) throw forwarded.problem;
  return html ? htmlAnswer(route, forwarded.response, c.get('requestId')) : forwarded.response;
}

/**
 * What a `fetch` client gets when it filled the honeypot: 200 with `{}` and the headers of a
 * passed-back answer. It says nothing about the trap; a real answer would carry the API's body.
 */
function honeypotAnswer(): Response {
  return new Response('{}', {
    status: 200,
    headers: { 'Content-Type': 'application/json', ...ANSWER_HEADERS },
  });
}

/** The answer to an error inside a route: problem+json, or a 303 for a plain HTML form. */
export function routeErrorAnswer(c: Context<GatewayEnv>, err: ProblemError): Response | undefined {
  const route = c.get('route');
  if (route !== undefined && wantsHtml(c.req.raw, route)) return htmlProblem(route, err.problem, c.get('requestId'));
  return undefined;
}
