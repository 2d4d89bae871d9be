/**
 * @module The operator's paths: `GET /healthz` (public, no detail) and `GET /status` (guarded).
 *
 * /healthz answers `ok` when every part of this isolate's config works, and the anonymous
 * invalid-configuration 500 when any part is broken (a wholly invalid config is a 500 for every
 * path already, index.ts), so a health check notices what some visitors would. It calls nothing: no
 * upstream, no Durable Object. /status exists only when `STATUS` is configured; it asks every
 * credential set's TokenStore (admin/status.ts) and answers JSON, or HTML to a browser. Neither
 * path is CORS-enabled: no page of another origin can read them.
 */
import type { Hono } from 'hono';
import { secureHeaders } from 'hono/secure-headers';
import { ConfigError } from '../config/schema';
import { configIssuesOf } from '../config/load';
import type { GatewayEnv } from '../gateway/context';
import type { Wiring } from '../upstream';
import { logEvent } from '../log';
import { problem } from '../problem';
import { statusAuth, type StatusAuth } from './auth';
import { statusReport } from './status';
import { statusPage, statusPageCsp } from './status-page';

/** Never cached. */
const PRIVATE = { 'Cache-Control': 'no-store' };

/**
 * Register /healthz and, when configured, /status. Call it before the app's own security headers:
 * these paths get theirs here, with `Cross-Origin-Resource-Policy: same-origin` (no other origin
 * may even embed them), and the handlers end the chain.
 */
export function registerAdmin(app: Hono<GatewayEnv>, wiring: Wiring): void {
  const { config } = wiring;
  const issues = configIssuesOf(config);
  const headers = secureHeaders({ crossOriginResourcePolicy: 'same-origin' });
  app.use('/healthz', headers);
  app.get('/healthz', (c) => {
    if (issues.length > 0) throw new ConfigError(issues);
    c.set('outcome', 'health');
    return c.body('ok\n', 200, { 'Content-Type': 'text/plain; charset=utf-8', ...PRIVATE });
  });
  app.all('/healthz', () => {
    throw problem('method-not-allowed', '/healthz accepts GET, HEAD', { headers: { Allow: 'GET, HEAD' } });
  });
  const brokenStatus = config.broken.status;
  if (brokenStatus !== undefined) {
    // A wrong STATUS takes down /status only: the forms keep working.
    app.use('/status', headers);
    app.all('/status', () => {
      throw new ConfigError(brokenStatus);
    });
    return;
  }
  if (config.status === undefined) return;

  // One app per config, one config per env: the guard (admin token digest, Access key set) is made once.
  let guard: StatusAuth | undefined;
  app.use('/status', headers);
  app.get('/status', async (c) => {
    guard ??= statusAuth(config, c.env)!;
    const auth = await guard(c.req.raw);
    if ('refused' in auth) {
      // Why, for the operator; the caller learns only that it needs credentials.
      logEvent('status_refused', { request_id: c.get('requestId'), why: auth.refused });
      const error = auth.refused === 'no-credentials' ? '' : ', error="invalid_token"';
      throw problem('unauthorized', '/status needs the admin bearer token or a Cloudflare Access login', {
        headers: { 'WWW-Authenticate': `Bearer realm="status"${error}` },
      });
    }
    c.set('outcome', `status-${auth.caller}`);
    const url = new URL(c.req.url);
    for (const name of new Set(url.searchParams.keys())) {
      if (name !== 'upstream' && name !== 'format') throw problem('query-not-allowed', `/status takes upstream and format, not ${name.slice(0, 100)}`);
    }
    const asked = url.searchParams.getAll('upstream');
    const unknown = asked.filter((u) => !Object.hasOwn(config.upstreams, u) && !Object.hasOwn(config.broken.upstreams, u));
    if (unknown.length > 0) throw problem('not-found', `no upstream named ${unknown.map((u) => `"${u.slice(0, 100)}"`).join(', ')}`);
    const format = url.searchParams.get('format') ?? ((c.req.header('Accept') ?? '').includes('text/html') ? 'html' : 'json');
    if (format !== 'html' && format !== 'json') throw problem('query-not-allowed', 'format is html or json');
    const report = await statusReport(wiring, asked.length === 0 ? undefined : [...new Set(asked)]);
    if (format === 'html') {
      return c.body(statusPage(report), 200, { 'Content-Type': 'text/html; charset=utf-8', 'Content-Security-Policy': await statusPageCsp(), Vary: 'Accept', ...PRIVATE });
    }
    return c.body(JSON.stringify(report, null, 2), 200, { 'Content-Type': 'application/json; charset=utf-8', Vary: 'Accept', ...PRIVATE });
  });
  app.all('/status', () => {
    throw problem('method-not-allowed', '/status accepts GET, HEAD', { headers: { Allow: 'GET, HEAD' } });
  });
}
