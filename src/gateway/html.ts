/**
 * @module Plain HTML forms: a form posted without JavaScript gets a 303 to a page of its own site.
 *
 * Success goes to the route's `redirect`, failure to its `error_redirect` (else `redirect`), each
 * with a short status in the query, so nothing is lost: the page learns whether the API took the
 * submission and with which status. JSON clients never get here.
 */
import type { RouteConfig } from '../config';
import type { Problem } from '../problem';

/** A browser navigation (form post) that the route can redirect. `fetch()` sends `Accept: *\/*`. */
export function wantsHtml(request: Request, route: RouteConfig): boolean {
  if (route.redirect === undefined && route.error_redirect === undefined) return false;
  return (request.headers.get('Accept') ?? '').toLowerCase().includes('text/html');
}

/** 303 to the route's page for this outcome: the API's answer, or a problem of the Worker's own. */
export function htmlAnswer(route: RouteConfig, outcome: Response | Problem, requestId: string | undefined): Response {
  const status = outcome.status;
  const ok = outcome instanceof Response && status >= 200 && status < 300;
  const page = ok ? route.redirect : (route.error_redirect ?? route.redirect);
  const url = new URL(page!);
  url.searchParams.set('status', ok ? 'ok' : 'error');
  url.searchParams.set('code', String(status));
  if (!ok && !(outcome instanceof Response)) url.searchParams.set('reason', outcome.title);
  if (requestId !== undefined) url.searchParams.set('request_id', requestId);
  if (outcome instanceof Response) void outcome.body?.cancel();
  return new Response(null, { status: 303, headers: { Location: url.toString(), 'Cache-Control': 'no-store' } });
}
