/**
 * @module Worker entry: wiring only. The Hono app and the TokenStore Durable Object export.
 *
 * Where things happen: config.ts (keys), token/grant.ts (how a token is requested),
 * token/store.ts (when: single-flight, budget, cool-down, invalidation), token/cache.ts (isolate
 * reuse), gateway/ (routes, bodies, CORS, forwarding with the token injected), egress.ts.
 */
import { Hono } from 'hono';
import { requestId } from 'hono/request-id';
import { secureHeaders } from 'hono/secure-headers';
import { ConfigError, loadConfig, type Config } from './config';
import { resultPage } from './demo/result-page';
import { registerRoutes, routeErrorAnswer, type GatewayEnv } from './gateway/routes';
import { problem, problemResponse, ProblemError } from './problem';
import type { Env } from './env';

export { TokenStore } from './token/store';

/** 500 naming every bad key (never a value): the answer to any request while the config is wrong. */
function invalidConfig(e: ConfigError, requestId: string): Response {
  return problemResponse({ status: 500, title: 'Invalid configuration', detail: e.issues.join('; ') }, requestId);
}

/** One Hono app per validated config (configs are parsed once per isolate). */
const apps = new WeakMap<Config, Hono<GatewayEnv>>();

function appFor(config: Config): Hono<GatewayEnv> {
  let app = apps.get(config);
  if (app === undefined) {
    app = new Hono<GatewayEnv>();
    app.use(requestId(), secureHeaders({ crossOriginResourcePolicy: 'cross-origin' }));
    if (config.demoPages) app.get('/result', resultPage);
    registerRoutes(app, config);
    app.notFound(() => {
      throw problem(404, 'Not found', 'no route is configured for this path');
    });
    app.onError((err, c) => {
      const id = c.get('requestId');
      if (err instanceof ProblemError) return routeErrorAnswer(c, err) ?? problemResponse(err.problem, id);
      if (err instanceof ConfigError) return invalidConfig(err, id);
      // An unexpected error: log its name only (messages may quote input), answer a generic 500.
      console.error(JSON.stringify({ event: 'unhandled_error', request_id: id, error: err.name }));
      return problemResponse({ status: 500, title: 'Internal error', detail: 'the Worker failed; quote the request id when reporting this' }, id);
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
