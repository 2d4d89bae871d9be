/**
 * @module A route's per-client rate limit, with Cloudflare's Rate Limiting binding.
 *
 * Runs after the origin guard (a preflight is never counted) and before the body is read or any
 * token or upstream work, so a refused request costs one counter call. Every request that gets
 * this far counts, whatever happens to it later: a bot cannot probe for free. The key is the route
 * and the client (client-address.ts), so clients and routes never share a budget.
 *
 * The binding answers only yes or no. Retry-After is the route's configured period: the window the
 * binding counts in, so waiting that long always reaches a fresh one.
 */
import type { Context } from 'hono';
import type { RouteConfig } from '../config/schema';
import { bindingIn } from '../config/secrets';
import { logEvent } from '../log';
import { problem } from '../problem';
import { clientKey } from './client-address';
import type { GatewayEnv } from './context';

/** The rate limit of a route, as config/schema.ts reads it. */
export type RateLimitSpec = NonNullable<RouteConfig['rate_limit']>;

/** The rate-limit key of a request to route `routeName`. */
export function rateLimitKey(routeName: string, headers: Headers): string {
  return `${routeName}|${clientKey(headers)}`;
}

/** Middleware refusing a client over the route's limit with 429 + Retry-After; its binding is read from `env` once. */
export function rateLimit(routeName: string, spec: RateLimitSpec, env: object): (c: Context<GatewayEnv>, next: () => Promise<void>) => Promise<void> {
  const detail = `too many requests to this route from your address; try again in ${spec.period} s`;
  // Checked at start (config/secrets.ts): a route whose binding is missing is broken, not here.
  const limiter = bindingIn(env, spec.binding, 'ratelimit')!;
  return async (c, next) => {
    let allowed: boolean;
    try {
      allowed = (await limiter.limit({ key: rateLimitKey(routeName, c.req.raw.headers) })).success !== false;
    } catch (e) {
      // A failing counter must not take the form down: let the request through and say so. The
      // token budget still guards the token endpoint, Turnstile (if on) the route.
      logEvent('rate_limit_unavailable', { request_id: c.get('requestId'), route: routeName, error: e instanceof Error ? e.name : 'unknown' }, 'error');
      allowed = true;
    }
    // The request line says it (outcome `rate-limited`): no second line, so a flood doubles nothing.
    if (!allowed) throw problem('rate-limited', detail, { retryAfter: spec.period });
    await next();
  };
}
