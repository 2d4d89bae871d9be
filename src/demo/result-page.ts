/**
 * @module Demo result page: where the demo form lands without JavaScript.
 *
 * A plain HTML form post is answered with a 303 (gateway/html.ts); for the demo route that
 * redirect carries the API's answer (`redirect_result`), and this page renders it server-side so
 * the no-JS flow shows the codes too. Only mounted when `DEMO_PAGES` is set. Everything in the
 * query is attacker-controllable: every value is escaped and the page runs no script at all.
 */
import { utf8Strict } from '../bytes';
import { escapeHtml } from '../escape-html';
import type { Context } from 'hono';
import { isProblemSlug, PROBLEM_TYPES } from '../problem';

/** One suggested code, as the demo page shows it. */
interface Suggestion {
  code: string;
  label: string;
  confidence?: number;
}


/** Most suggestions shown, and the longest label: a hand-made result cannot make a huge page. */
const MAX_ROWS = 20;
const MAX_LABEL = 200;

/**
 * The coding answer the redirect carries (base64url JSON), validated field by field: `result` a
 * list of `{codeCategory, codeLabel, codeConfidence}` with a code of digits. Undefined for
 * anything else (absent, unreadable, another shape): the page then says so in its own words.
 */
function decodeResult(param: string | undefined): Suggestion[] | undefined {
  if (param === undefined || param.length > 8192 || !/^[A-Za-z0-9_-]*$/.test(param)) return undefined;
  let value: unknown;
  try {
    const b64 = param.replace(/-/g, '+').replace(/_/g, '/');
    const bytes = Uint8Array.from(atob(b64 + '='.repeat((4 - (b64.length % 4)) % 4)), (c) => c.charCodeAt(0));
    value = JSON.parse(utf8Strict(bytes));
  } catch {
    return undefined;
  }
  const rows = typeof value === 'object' && value !== null ? (value as { result?: unknown }).result : undefined;
  if (!Array.isArray(rows) || rows.length > MAX_ROWS) return undefined;
  const out: Suggestion[] = [];
  for (const row of rows) {
    if (typeof row !== 'object' || row === null) return undefined;
    const { codeCategory, codeLabel, codeConfidence } = row as Record<string, unknown>;
    const code = typeof codeCategory === 'number' ? String(codeCategory) : codeCategory;
    if (typeof code !== 'string' || !/^[0-9]{1,8}$/.test(code)) return undefined;
    if (typeof codeLabel !== 'string' || codeLabel.length > MAX_LABEL) return undefined;
    if (codeConfidence !== undefined && (typeof codeConfidence !== 'number' || !(codeConfidence >= 0 && codeConfidence <= 1))) return undefined;
    out.push({ code, label: codeLabel, ...(typeof codeConfidence === 'number' ? { confidence: codeConfidence } : {}) });
  }
  return out;
}

function suggestionsTable(result: Suggestion[]): string {
  const rows = result
    .map((s) => {
      const confidence = s.confidence === undefined ? '' : `${Math.round(s.confidence * 100)}%`;
      return `<tr><td class="code">${escapeHtml(s.code)}</td><td>${escapeHtml(s.label)}</td><td class="conf"><span class="pct">${confidence}</span></td></tr>`;
    })
    .join('');
  return `<table class="codes"><thead><tr><th scope="col">Code</th><th scope="col">Occupation</th><th scope="col">Confidence</th></tr></thead><tbody>${rows}</tbody></table>`;
}

/**
 * GET /result: render the outcome of a no-JavaScript form post. Nothing from the URL is shown as
 * text: the reason is a problem slug shown by its own title, the status and request id are shown
 * only when they have their shapes, and the codes only when the result has the coding answer's.
 */
export function resultPage(c: Context): Response {
  const q = c.req.query();
  const ok = q.status === 'ok';
  const code = q.code !== undefined && /^[1-5][0-9]{2}$/.test(q.code) ? q.code : undefined;
  const requestId = q.request_id !== undefined && /^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$/.test(q.request_id) ? q.request_id : undefined;
  const answer = ok && q.result !== undefined ? decodeResult(q.result) : undefined;
  let main: string;
  if (ok && answer !== undefined && answer.length > 0) {
    main = `<h2>Suggested codes</h2>\n${suggestionsTable(answer)}`;
  } else if (ok && q.result !== undefined && answer === undefined) {
    main = `<h2>Result not shown</h2><p>This result could not be shown. Submit the form again to get a fresh one.</p>`;
  } else if (ok) {
    main = `<h2>No code found</h2><p>The coding service could not suggest a code for that description. Try other words for the occupation or its main tasks.</p>`;
  } else if (q.reason === 'quota-exhausted') {
    // Said plainly: nothing the visitor changes will help today.
    main = `<h2>Today’s coding quota is used up</h2>
<p role="alert">The coding service takes a fixed number of requests a day, and today’s are spent. Please come back after the day resets${code === undefined ? '' : ` (status ${code})`}.</p>
${requestId === undefined ? '' : `<p>Reference: <code>${requestId}</code></p>`}`;
  } else {
    const reason = isProblemSlug(q.reason) ? PROBLEM_TYPES[q.reason].title : undefined;
    main = `<h2>Something went wrong</h2>
<p role="alert">The submission was not coded${reason === undefined ? '' : `: ${escapeHtml(reason)}`}${code === undefined ? '' : ` (status ${code})`}.</p>
${requestId === undefined ? '' : `<p>Reference: <code>${requestId}</code></p>`}`;
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
