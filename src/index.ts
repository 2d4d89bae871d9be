/**
 * @module Worker entry: wiring only. The Hono app per wiring, the one request line per request,
 * and the TokenStore export.
 *
 * Where things happen: config/ (keys, loading, secrets), upstream.ts (each upstream resolved once),
 * token/grant.ts (how a token is requested), token/store.ts (when: single-flight, budget, cool-down,
 * invalidation), token/cache.ts (isolate reuse), gateway/ (routes, bodies, CORS, the API request and
 * its answer), egress.ts, admin/ (/healthz, /status), log.ts (what a log line may hold).
 */
import { Hono, type Context, type MiddlewareHandler } from 'hono';
import { secureHeaders } from 'hono/secure-headers';
import { registerAdmin } from './admin/routes';
import { ConfigError } from './config/schema';
import { resultPage } from './demo/result-page';
import { demoSettings } from './demo/settings';
import type { Env } from './env';
import type { GatewayEnv } from './gateway/context';
import { registerRoutes, routeErrorAnswer } from './gateway/routes';
import { clientRequestId, logEvent, logRequest, requestLine, routeNameOf, type RequestFacts } from './log';
import { problem, problemResponse, ProblemError } from './problem';
import { wiringFor, type Wiring } from './upstream';

export { Pacer } from './pacing/pacer';
export { TokenStore } from './token/store';

/**
 * The invalid-config answer: anonymous callers learn only that the Worker (or this part of it) is
 * misconfigured; the keys (names and messages, never values) go to the log under the same request id.
 */
function invalidConfig(e: ConfigError, requestId: string): Response {
  logEvent('invalid_configuration', { request_id: requestId, issues: e.issues }, 'error');
  return problemResponse(
    problem('invalid-configuration', 'the Worker is misconfigured; its operator can find which setting in the log, under this request id').problem,
    requestId,
  );
}

/** What the app knows of a request when it answers, for its line. */
function factsOf(c: Context<GatewayEnv>, requestId: string, theirs: string | undefined): RequestFacts {
  const trace = c.get('trace');
  const facts: RequestFacts = { requestId };
  if (theirs !== undefined) facts.clientRequestId = theirs;
  const routeName = c.get('routeName');
  if (routeName !== undefined) facts.routeName = routeName;
  const pathRoutes = c.get('pathRoutes');
  if (pathRoutes !== undefined) facts.pathRoutes = pathRoutes;
  const outcome = c.get('outcome');
  if (outcome !== undefined) facts.outcome = outcome;
  const reason = c.get('reason');
  if (reason !== undefined) facts.reason = reason;
  if (trace !== undefined) {
    if (trace.status !== undefined) facts.upstreamStatus = trace.status;
    facts.upstreamCalls = trace.calls;
    if (trace.token !== undefined) facts.token = trace.token;
  }
  const fields = c.get('fields');
  if (fields !== undefined) facts.fields = fields;
  return facts;
}

/**
 * Every request gets the Worker's own id (a UUID), in `X-Request-Id` and in problem answers; a
 * client-sent `X-Request-Id` is never adopted (it could collide or be forged), only logged beside
 * it. When the answer is ready, its one request line is written here from what the steps set.
 */
const requestLog: MiddlewareHandler<GatewayEnv> = async (c, next) => {
  const started = Date.now();
  const requestId = crypto.randomUUID();
  const theirs = clientRequestId(c.req.header('X-Request-Id') ?? null);
  c.set('requestId', requestId);
  c.header('X-Request-Id', requestId);
  await next();
  // Wall time to the answer's headers: in workerd it moves only across I/O, which is what a
  // request here spends its time on (CPU time is in the platform's own invocation metrics).
  const facts = factsOf(c, requestId, theirs);
  logRequest(requestLine(facts, c.req.method, c.res.status, Date.now() - started, routeNameOf(facts, c.req.raw)), c.get('reason') === 'internal-error' ? 'error' : 'log');
};

/** One Hono app per wiring (built once per isolate). */
const apps = new WeakMap<Wiring, Hono<GatewayEnv>>();

function appFor(wiring: Wiring, env: Env): Hono<GatewayEnv> {
  let app = apps.get(wiring);
  if (app === undefined) {
    app = new Hono<GatewayEnv>();
    app.use(requestLog);
    // First: /healthz and /status end the chain with security headers of their own.
    registerAdmin(app, wiring);
    app.use(secureHeaders({ crossOriginResourcePolicy: 'cross-origin' }));
    if (wiring.config.demoPages) {
      app.get('/result', resultPage);
      app.get('/demo-settings.json', demoSettings(wiring.config));
    }
    registerRoutes(app, wiring, env);
    app.notFound(() => {
      throw problem('not-found', 'no route is configured for this path');
    });
    app.onError((err, c) => {
      const id = c.get('requestId');
      if (err instanceof ProblemError) {
        c.set('reason', err.problem.reason);
        return routeErrorAnswer(c, err) ?? problemResponse(err.problem, id);
      }
      if (err instanceof ConfigError) {
        // A broken part of the config (a route, its upstream, STATUS): this request's answer only.
        c.set('reason', 'invalid-configuration');
        return invalidConfig(err, id);
      }
      // An unexpected error: log its name only (messages may quote input), answer a generic 500.
      logEvent('unhandled_error', { request_id: id, error: err.name }, 'error');
      c.set('reason', 'internal-error');
      return problemResponse(problem('internal-error', 'the Worker failed; quote the request id when reporting this').problem, id);
    });
    apps.set(wiring, app);
  }
  return app;
}

export default {
  async fetch(request: Request, env: Env, ctx: ExecutionContext): Promise<Response> {
    let wiring: Wiring;
    try {
      wiring = await wiringFor(env);
    } catch (e) {
      if (!(e instanceof ConfigError)) throw e;
      // The config as a whole is unusable: no app, so the line is written here.
      const started = Date.now();
      const facts: RequestFacts = { requestId: crypto.randomUUID(), reason: 'invalid-configuration' };
      const theirs = clientRequestId(request.headers.get('X-Request-Id'));
      if (theirs !== undefined) facts.clientRequestId = theirs;
      const res = invalidConfig(e, facts.requestId);
      logRequest(requestLine(facts, request.method, res.status, Date.now() - started, null));
      return res;
    }
    return appFor(wiring, env).fetch(request, env, ctx);
  },
} satisfies ExportedHandler<Env>;
