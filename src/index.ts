/**
 * @module Worker entry: wiring only. The Hono app and the TokenStore Durable Object export.
 *
 * Where things happen: config.ts (keys), token/grant.ts (how a token is requested),
 * token/store.ts (when: single-flight, budget, cool-down, invalidation), token/cache.ts (isolate
 * reuse), gateway/ (routes, bodies, CORS, the API request and its answer), egress.ts.
 */
import { Hono, type MiddlewareHandler } from 'hono';
import { secureHeaders } from 'hono/secure-headers';
import { ConfigError, loadConfig, type Config } from './config';
import { resultPage } from './demo/result-page';
import { demoSettings } from './demo/settings';
import { registerRoutes, routeErrorAnswer, type GatewayEnv } from './gateway/routes';
import { problem, problemResponse, ProblemError } from './problem';
import type { Env } from './env';

export { TokenStore } from './token/store';

/**
 * The invalid-config answer: anonymous callers learn only that the Worker is misconfigured; the
 * keys (names and messages, never values) go to the log under the same request id.
 */
function invalidConfig(e: ConfigError, requestId: string): Response {
  console.error(JSON.stringify({ event: 'invalid_configuration', request_id: requestId, issues: e.issues }));
  return problemResponse(
    problem('invalid-configuration', 'the Worker is misconfigured; its operator can find which setting in the log, under this request id').problem,
    requestId,
  );
}

/** A client's own `X-Request-Id`, as far as it is safe to log (printable ASCII, bounded). */
function clientRequestId(value: string | null): string | undefined {
  if (value === null) return undefined;
  return /^[\x21-\x7e]{1,128}$/.test(value) ? value : '(unprintable or too long)';
}

/**
 * Every request gets the Worker's own id (a UUID), in `X-Request-Id` and in problem answers; a
 * client-sent `X-Request-Id` is never adopted (it could collide or be forged), only logged beside it.
 */
const requestIds: MiddlewareHandler<GatewayEnv> = async (c, next) => {
  const id = crypto.randomUUID();
  c.set('requestId', id);
  c.header('X-Request-Id', id);
  const theirs = clientRequestId(c.req.header('X-Request-Id') ?? null);
  if (theirs !== undefined) console.log(JSON.stringify({ event: 'client_request_id', request_id: id, client_request_id: theirs }));
  await next();
};

/** One Hono app per validated config (configs are parsed once per isolate). */
const apps = new WeakMap<Config, Hono<GatewayEnv>>();

function appFor(config: Config): Hono<GatewayEnv> {
  let app = apps.get(config);
  if (app === undefined) {
    app = new Hono<GatewayEnv>();
    app.use(requestIds, secureHeaders({ crossOriginResourcePolicy: 'cross-origin' }));
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
      if (err instanceof ProblemError) return routeErrorAnswer(c, err) ?? problemResponse(err.problem, id);
      if (err instanceof ConfigError) return invalidConfig(err, id);
      // An unexpected error: log its name only (messages may quote input), answer a generic 500.
      console.error(JSON.stringify({ event: 'unhandled_error', request_id: id, error: err.name }));
      return problemResponse(problem('internal-error', 'the Worker failed; quote the request id when reporting this').problem, id);
    });
    apps.set(config, app);
  }
  return app;
}

export default {
  fetch(request: Request, env: Env, ctx: ExecutionContext): Response | Promise<Response> {
    let config: Config;
    try {
      config = loadConfig(env);
    } catch (e) {
      if (!(e instanceof ConfigError)) throw e;
      return invalidConfig(e, crypto.randomUUID());
    }
    return appFor(config).fetch(request, env, ctx);
  },
} satisfies ExportedHandler<Env>;
