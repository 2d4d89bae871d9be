/**
 * @module Plain HTML forms: a form posted without JavaScript gets a 303 to a page of its own site.
 *
 * Success goes to the route's `redirect`, failure to its `error_redirect` (else `redirect`), each
 * with a short status in the query, so nothing is lost: the page learns whether the API took the
 * submission and with which status, and for the Worker's own refusals the machine-readable `reason`
 * (a problem slug, never free text). JSON clients never get here.
 */
import type { RouteConfig } from '../config/schema';
import type { Problem } from '../problem';
import { base64url } from '../bytes';
import { readAnswerAtMost } from './answer';

/** A browser navigation (form post) that the route can redirect. `fetch()` sends `Accept: *\/*`. */
export function wantsHtml(request: Request, route: RouteConfig): boolean {
  if (route.redirect === undefined && route.error_redirect === undefined) return false;
  return (request.headers.get('Accept') ?? '').toLowerCase().includes('text/html');
}

/** Largest API answer a redirect carries (`redirect_result`); URLs must stay well under 8 KB. */
const MAX_RESULT_BYTES = 4096;

/**
 * 303 for the API's answer. With `redirect_result`, a successful JSON answer of at most 4 KB rides
 * along as base64url `result`, for a landing page that renders it server-side (no JavaScript).
 */
export async function htmlAnswer(route: RouteConfig, res: Response, requestId: string | undefined): Promise<Response> {
  const ok = res.status >= 200 && res.status < 300;
  let result: string | undefined;
  if (ok && route.redirect_result) {
    // Checked while reading: a larger answer is not read to the end to find that out.
    const bytes = await readAnswerAtMost(res.body, MAX_RESULT_BYTES);
    if (bytes !== undefined) result = base64url(bytes);
  } else {
    void res.body?.cancel();
  }
  return redirect(route, ok, res.status, { ...(result === undefined ? {} : { result }) }, requestId);
}

/** 303 to the success page as if the API had answered 200 (a filled honeypot: nothing was sent). */
export function htmlAccepted(route: RouteConfig, requestId: string | undefined): Response {
  return redirect(route, true, 200, {}, requestId);
}

/** 303 to the error page for a problem of the Worker's own. */
export function htmlProblem(route: RouteConfig, p: Problem, requestId: string | undefined): Response {
  return redirect(route, false, p.status, { reason: p.reason }, requestId);
}

function redirect(route: RouteConfig, ok: boolean, status: number, extra: Record<string, string>, requestId: string | undefined): Response {
  const url = new URL((ok ? route.redirect : (route.error_redirect ?? route.redirect))!);
  url.searchParams.set('status', ok ? 'ok' : 'error');
  url.searchParams.set('code', String(status));
  for (const [k, v] of Object.entries(extra)) url.searchParams.set(k, v);
  if (requestId !== undefined) url.searchParams.set('request_id', requestId);
  return new Response(null, { status: 303, headers: { Location: url.toString(), 'Cache-Control': 'no-store' } });
}
