/**
 * @module Demo result page: where the demo form lands without JavaScript.
 *
 * A plain HTML form post is answered with a 303 (gateway/html.ts); for the demo route that
 * redirect carries the API's answer (`redirect_result`), and this page renders it server-side so
 * the no-JS flow shows the codes too. Only mounted when `DEMO_PAGES` is set. Everything in the
 * query is attacker-controllable: every value is escaped and the page runs no script at all.
 */
import type { Context } from 'hono';

interface Suggestion {
  codeCategory?: unknown;
  codeLabel?: unknown;
  codeConfidence?: unknown;
}

const escape = (v: unknown): string =>
  String(v).replace(/[&<>"']/g, (c) => ({ '&': '&amp;', '<': '&lt;', '>': '&gt;', '"': '&quot;', "'": '&#39;' })[c]!);

/** Decode the base64url JSON answer the redirect carries; undefined when absent or unreadable. */
function decodeResult(param: string | undefined): { codeStatus?: unknown; input?: Record<string, unknown>; result?: Suggestion[] } | undefined {
  if (param === undefined || param.length > 8192) return undefined;
  try {
    const b64 = param.replace(/-/g, '+').replace(/_/g, '/');
    const bytes = Uint8Array.from(atob(b64 + '='.repeat((4 - (b64.length % 4)) % 4)), (c) => c.charCodeAt(0));
    const value: unknown = JSON.parse(new TextDecoder().decode(bytes));
    return typeof value === 'object' && value !== null ? (value as ReturnType<typeof decodeResult>) : undefined;
  } catch {
    return undefined;
  }
}

function suggestionsTable(result: Suggestion[]): string {
  const rows = result
    .map((s) => {
      const confidence = typeof s.codeConfidence === 'number' ? `${Math.round(s.codeConfidence * 100)}%` : '';
      return `<tr><td class="code">${escape(s.codeCategory)}</td><td>${escape(s.codeLabel)}</td><td class="conf"><span class="pct">${confidence}</span></td></tr>`;
    })
    .join('');
  return `<table class="codes"><thead><tr><th scope="col">Code</th><th scope="col">Occupation</th><th scope="col">Confidence</th></tr></thead><tbody>${rows}</tbody></table>`;
}

/** GET /result: render the outcome of a no-JavaScript form post. */
export function resultPage(c: Context): Response {
  const q = c.req.query();
  const ok = q.status === 'ok';
  const answer = ok ? decodeResult(q.result) : undefined;
  let main: string;
  if (ok && answer !== undefined && Array.isArray(answer.result) && answer.result.length > 0) {
    const input = answer.input ?? {};
    main = `<h2>Suggested codes</h2>
<p>For <strong>${escape(input.occp_text ?? '')}</strong>${input.tasks_text ? ` (${escape(input.tasks_text)})` : ''}:</p>
${suggestionsTable(answer.result)}`;
  } else if (ok) {
    main = `<h2>No code found</h2><p>The coding service could not suggest a code for that description. Try other words for the occupation or its main tasks.</p>`;
  } else {
    main = `<h2>Something went wrong</h2>
<p role="alert">The submission was not coded${q.reason ? `: ${escape(q.reason)}` : ''} (status ${escape(q.code ?? 'unknown')}).</p>
${q.request_id ? `<p>Reference: <code>${escape(q.request_id)}</code></p>` : ''}`;
  }
  const html = `<!doctype html>
<html lang="en"><head><meta charset="utf-8"><meta name="viewport" content="width=device-width, initial-scale=1">
<title>${ok ? 'Result' : 'Error'} — Occupation coder (demo)</title><link rel="stylesheet" href="/style.css"></head>
<body><header class="site"><p class="kicker">edge-token-injector demo</p><h1>Occupation coder</h1></header>
<main><section class="card">${main}
<p><a href="/">Code another occupation</a></p></section></main></body></html>`;
  return c.html(html, 200, {
    'Cache-Control': 'no-store',
    'Content-Security-Policy': "default-src 'none'; style-src 'self'; base-uri 'none'; form-action 'self'",
  });
}
