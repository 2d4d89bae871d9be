/**
 * @module Worker entry: wiring only. The Hono app, the request log line, and the TokenStore export.
 *
 * Where things happen: config.ts (keys), token/grant.ts (how a token is requested),
 * token/store.ts (when: single-flight, budget, cool-down, invalidation), token/cache.ts (isolate
 * reuse), gateway/ (routes, bodies, CORS, the API request and its answer), egress.ts,
 * admin/ (/healthz, /status), log.ts (what a log line may hold).
 */
import { Hono, type MiddlewareHandler } from 'hono';
import { secureHeaders } from 'hono/secure-headers';
import { registerAdmin } from './admin/routes';
import { ConfigError, loadConfig, type Config } from './config';
import { resultPage } from './demo/result-page';
import { demoSettings } from './demo/settings';
import { registerRoutes, routeErrorAnswer, type GatewayEnv } from './gateway/routes';
import { clientRequestId, logEvent, logRequest, requestLine, routeNameOf, type RequestNotes } from './log';
import { problem, problemResponse, ProblemError } from './problem';
import type { Env } from './env';

export { TokenStore } from './token/store';

/**
 * The invalid-config answer: anonymous callers learn only that the Worker is misconfigured; the
 * keys (names and messages, never values) go to the log under the same request id.
 */
function invalidConfig(e: ConfigError, notes: RequestNotes): Response {
  logEvent('invalid_configuration', { request_id: notes.requestId, issues: e.issues }, 'error');
  notes.reason = 'invalid-configuration';
  return problemResponse(
    problem('invalid-configuration', 'the Worker is misconfigured; its operator can find which setting in the log, under this request id').problem,
    notes.requestId,
  );
}

/** Each request's notes, found by the app from the request it is given (the same object). */
const notesOf = new WeakMap<Request, RequestNotes>();

/**
 * Every request gets the Worker's own id (a UUID), in `X-Request-Id` and in problem answers; a
 * client-sent `X-Request-Id` is never adopted (it could collide or be forged), only logged beside
 * it in the request line. Steps write what the line needs into the notes (`c.get('log')`).
 */
const requestContext: MiddlewareHandler<GatewayEnv> = async (c, next) => {
  const notes = notesOf.get(c.req.raw) ?? { requestId: crypto.randomUUID() };
  c.set('requestId', notes.requestId);
  c.set('log', notes);
  c.header('X-Request-Id', notes.requestId);
  await next();
};

/** One Hono app per validated config (configs are parsed once per isolate). */
const apps = new WeakMap<Config, Hono<GatewayEnv>>();

function appFor(config: Config) {
  let entry = apps.get(config);
  if (entry === undefined) {
    const app = new Hono<GatewayEnv>();
    app.use(requestContext);
    // First: /healthz and /status end the chain with security headers of their own.
    registerAdmin(app, config);
    app.use(secureHeaders({ crossOriginResourcePolicy: 'cross-origin' }));
    if (config.demoPages) {
      app.get('/result', resultPage);
      app.get('/demo-settings.json', demoSettings(config));
    }
    registerRoutes(app, config);
    app.notFound(() => {
      throw problem('not-found', 'no route is configured for this path');
    });
    app.onError((err, c) => {
      const id = c.get('requestId');
      const notes = c.get('log');
      if (err instanceof ProblemError) {
        if (notes !== undefined) notes.reason = err.problem.reason;
        return routeErrorAnswer(c, err) ?? problemResponse(err.problem, id);
      }
      if (err instanceof ConfigError && notes !== undefined) return invalidConfig(err, notes);
      // An unexpected error: log its name only (messages may quote input), answer a generic 500.
      logEvent('unhandled_error', { request_id: id, error: err.name }, 'error');
      if (notes !== undefined) notes.reason = 'internal-error';
      return problemResponse(problem('internal-error', 'the Worker failed; quote the request id when reporting this').problem, id);
    });
    entry = app;
    apps.set(config, entry);
  }
  return entry;
}

export default {
  async fetch(request: Request, env: Env, ctx: ExecutionContext): Promise<Response> {
    // Wall time to the answer's headers: in workerd it moves only across I/O, which is what a
    // request here spends its time on (CPU time is in the platform's own invocation metrics).
    const started = Date.now();
    const notes: RequestNotes = { requestId: crypto.randomUUID() };
    const theirs = clientRequestId(request.headers.get('X-Request-Id'));
    if (theirs !== undefined) notes.clientRequestId = theirs;
    let res: Response;
    let routeName: string | null = null;
    try {
      const app = appFor(loadConfig(env));
      notesOf.set(request, notes);
      res = await app.fetch(request, env, ctx);
      routeName = routeNameOf(notes, request);
    } catch (e) {
      if (!(e instanceof ConfigError)) {
        // Not even onError could answer: still one request line, then the platform's own 500.
        notes.reason = 'internal-error';
        logRequest(requestLine(notes, request.method, 500, Date.now() - started, routeName), 'error');
        throw e;
      }
      res = invalidConfig(e, notes);
    }
    logRequest(requestLine(notes, request.method, res.status, Date.now() - started, routeName));
    return res;
  },
} satisfies ExportedHandler<Env>;
