/**
 * @module The status report as a small HTML page, for a browser (behind Cloudflare Access).
 *
 * No script at all, every value escaped, and a CSP that allows nothing but the page's own style
 * block (by its hash): a value that somehow carried markup could neither run nor load anything.
 */
import { escapeHtml } from '../escape-html';
import { base64 } from '../bytes';
import type { CredentialSetReport, StatusReport } from './status';


const STYLE = `
body { font: 15px/1.45 system-ui, sans-serif; margin: 2rem auto; max-width: 60rem; padding: 0 1rem; color: #1b1b1b; }
h1 { font-size: 1.4rem; } h2 { font-size: 1.1rem; margin-top: 2rem; } h2 small { font-weight: normal; color: #555; }
table { border-collapse: collapse; width: 100%; } th, td { text-align: left; padding: .3rem .6rem; border-bottom: 1px solid #ddd; }
dl { display: grid; grid-template-columns: max-content auto; gap: .2rem 1rem; } dt { color: #555; } dd { margin: 0; }
.bad { color: #a40000; font-weight: 600; } .ok { color: #0a6a0a; font-weight: 600; }
`;

/** The CSP of the page: only its own style block, by hash. */
let csp: Promise<string> | undefined;

export function statusPageCsp(): Promise<string> {
  csp ??= crypto.subtle.digest('SHA-256', new TextEncoder().encode(STYLE)).then((d) => {
    const hash = base64(new Uint8Array(d));
    return `default-src 'none'; style-src 'sha256-${hash}'; base-uri 'none'; form-action 'none'; frame-ancestors 'none'`;
  });
  return csp;
}

const seconds = (s: number | undefined) => (s === undefined ? '—' : `${s} s`);

function credentialSet(c: CredentialSetReport): string {
  const head = `<h2>${escapeHtml(c.upstream)} <small>credential set ${escapeHtml(c.credential_set)}</small></h2>`;
  if (c.error !== undefined) return `<section>${head}<p class="bad">${escapeHtml(c.error)}</p></section>`;
  const rows = (c.scopes ?? [])
    .map(
      (t) =>
        `<tr><td>${t.scope === '' ? '(none)' : escapeHtml(t.scope)}</td>` +
        `<td class="${t.has_token ? 'ok' : 'bad'}">${t.has_token ? 'held' : 'none'}</td>` +
        `<td>${seconds(t.expires_in_s)}</td><td>${seconds(t.refresh_in_s)}</td>` +
        `<td>${t.last_refresh === undefined ? '—' : escapeHtml(t.last_refresh)}</td></tr>`,
    )
    .join('');
  const b = c.budget!;
  const cd = c.cooldown;
  const f = c.failures!;
  const r = c.rejections!;
  const last = c.last_token_request;
  return (
    `<section>${head}` +
    `<table><thead><tr><th>Scope</th><th>Token</th><th>Expires in</th><th>Refresh in</th><th>Last refresh</th></tr></thead><tbody>${rows}</tbody></table>` +
    '<dl>' +
    `<dt>Token requests in window</dt><dd>${b.requests_in_window} of ${b.max_requests} per ${b.window_seconds} s${b.explicit ? '' : ' (default guard)'}</dd>` +
    `<dt>Tokens issued</dt><dd>${c.tokens_issued ?? 0}</dd>` +
    `<dt>Cool-down</dt><dd${cd ? ' class="bad"' : ''}>${cd ? `${escapeHtml(cd.reason)} for ${cd.remaining_s} s (until ${escapeHtml(cd.until)}): ${escapeHtml(cd.detail)}` : 'none'}</dd>` +
    `<dt>Failures</dt><dd>${f.consecutive} in a row, ${f.failed_cycles} failed refresh cycles</dd>` +
    `<dt>Rejections seen</dt><dd>${r.reported} reported, ${r.ignored} ignored${r.distrusted_until === null ? '' : `; rejections distrusted until ${escapeHtml(r.distrusted_until)}`}</dd>` +
    `<dt>Last token request</dt><dd>${last ? `${escapeHtml(last.sent_at)} (${escapeHtml(last.cause)}${last.answered ? '' : ', unanswered'})` : 'none'}</dd>` +
    '</dl>' +
    pacing(c.pacing) +
    '</section>'
  );
}

/** The pace and quota of a paced upstream. */
function pacing(p: CredentialSetReport['pacing']): string {
  if (p === undefined) return '';
  if ('error' in p) return `<h3>Pacing</h3><p class="bad">${escapeHtml(p.error)}</p>`;
  const q = p.quota;
  return (
    '<h3>Pacing</h3><dl>' +
    `<dt>Pace</dt><dd>${p.requests_per_second} per second; ${p.calls_last_minute} calls in the last minute, ${p.calls_today} today</dd>` +
    `<dt>Daily quota</dt><dd${q !== undefined && q.left === 0 ? ' class="bad"' : ''}>${q === undefined ? 'none' : `${q.left} of ${q.per_day} left; resets in ${q.resets_in_s} s (${escapeHtml(q.resets_at)})`}</dd>` +
    `<dt>Waiting now</dt><dd>${p.callers_waiting}</dd>` +
    `<dt>Batches</dt><dd>${p.batches_sent} sent, ${p.records_per_batch.mean} records each on average, ${p.records_per_batch.max} at most</dd>` +
    `<dt>Wait for a slot</dt><dd>p50 ${p.wait_ms.p50 ?? '—'} ms, p99 ${p.wait_ms.p99 ?? '—'} ms</dd>` +
    '</dl>'
  );
}

/** The page for `report`. */
export function statusPage(report: StatusReport): string {
  return (
    '<!doctype html><html lang="en"><head><meta charset="utf-8"><meta name="viewport" content="width=device-width, initial-scale=1">' +
    `<meta name="robots" content="noindex"><title>Token status</title><style>${STYLE}</style></head><body>` +
    `<h1>Token status</h1><p>As of ${escapeHtml(report.generated_at)}; no token is ever shown here. The same as JSON: <code>Accept: application/json</code>.</p>` +
    report.credential_sets.map(credentialSet).join('') +
    '</body></html>'
  );
}
