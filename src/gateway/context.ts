/**
 * @module What a request carries through the gateway's Hono app: its bindings and the facts its
 * request line is written from. Types only, so routes, their middleware and the admin paths share
 * them without importing each other.
 */
import type { RouteConfig } from '../config/schema';
import type { Env } from '../env';
import type { TokenSource } from '../token/outcome';

/** What the API calls of one request came to (forward.ts returns it). */
export interface CallTrace {
  /** The API's status, of the last call when a rejected token was retried. */
  status?: number;
  /** API calls made: 2 when a rejected token was replaced and the call sent again. */
  calls: number;
  /** Where the token came from. */
  token?: TokenSource;
}

export interface GatewayVariables {
  requestId: string;
  /** The route that took the request, and its name in ROUTES. */
  route?: RouteConfig;
  routeName?: string;
  /** The routes of the path the router matched, when no route took the request (refused before). */
  pathRoutes?: ReadonlyArray<readonly [string, RouteConfig]>;
  /** How a handler ended the request its own way (`honeypot`, `health`, `status-admin`, `page`). */
  outcome?: string;
  /** The problem slug the request was refused or failed with. */
  reason?: string;
  /** The API calls made for it. */
  trace?: CallTrace;
  /** The values of the route's `log_fields`. */
  fields?: Record<string, unknown>;
}

export type GatewayEnv = { Bindings: Env; Variables: GatewayVariables };
