/**
 * @module Cloudflare Turnstile on a route: the widget's token, verified with siteverify before any
 * token or upstream work.
 *
 * The token comes as the widget's form field `cf-turnstile-response` (taken out of the body by
 * body.ts) or, for `fetch` clients, the `CF-Turnstile-Response` header; both at once is refused,
 * not guessed. siteverify gets the secret, the token, the client's address and an idempotency key
 * (one per verification, reused by the one retry). The token must be accepted, issued on one of the
 * route's hosts and, when the route names one, for its action. A token is verified once per
 * isolate: a replay (or a second concurrent use) is refused here without asking siteverify, which
 * refuses replays across the edge (`timeout-or-duplicate`). When siteverify cannot answer (down,
 * slow, garbage), the route fails closed: 503 with Retry-After, nothing forwarded.
 *
 * Neither the token nor the secret is ever logged or put in an answer.
 */
import { clock } from '../clock';
import { TURNSTILE_FIELD, TURNSTILE_HEADER, type RouteConfig } from '../config/schema';
import { problem, type ProblemError } from '../problem';
import { readAtMost, sha256Hex, utf8Strict } from '../bytes';
import { ACCEPT_ENCODING, CodingError, decodedBody } from '../decode';
import { clientAddress } from './client-address';

export const SITEVERIFY_URL = 'https://challenges.cloudflare.com/turnstile/v0/siteverify';

/** Longest token Turnstile issues (Cloudflare's docs); anything longer is not one. */
export const MAX_TOKEN_LENGTH = 2048;

/** How long a token can be valid (Cloudflare: 300 s), so how long a verified one is remembered. */
const TOKEN_LIFETIME_MS = 300_000;

/** Most tokens remembered per isolate; the oldest go first. */
const MAX_REMEMBERED = 10_000;

/** Largest siteverify answer read (a real one is a few hundred bytes). */
const MAX_ANSWER_BYTES = 16 * 1024;

/** Retry-After when siteverify could not answer: Turnstile outages are short, and the token is still good. */
const UNAVAILABLE_RETRY_S = 5;

/** What a Turnstile check needs from the request in hand. */
export interface TurnstileInput {
  headers: Headers;
  /** The token given as the form or JSON field, if any (body.ts). */
  field: string | undefined;
  /** The widget's secret key (the Worker secret `secret_from`). */
  secret: string;
  /** Writes one structured line (request id and route added by the caller): why a check failed, beyond its slug. */
  log: (event: 'turnstile_refused' | 'turnstile_unavailable', fields: Record<string, unknown>) => void;
}

/** Verifies a request's Turnstile token; throws `ProblemError` (400/403/503) when it does not pass. */
export type TurnstileCheck = (input: TurnstileInput) => Promise<void>;

/** siteverify's answer, as far as it is read. */
interface SiteverifyAnswer {
  success: boolean;
  errorCodes: string[];
  hostname?: string;
  action?: string;
}

type Verdict = { kind: 'answer'; answer: SiteverifyAnswer } | { kind: 'unavailable'; cause: string };

/** The route's Turnstile check, decided once (hosts derived, action fixed); undefined without `turnstile`. */
export function turnstileCheck(route: RouteConfig): TurnstileCheck | undefined {
  const t = route.turnstile;
  if (t === undefined) return undefined;
  // config/schema.ts refuses allow_any_origin without hostnames, so this list is never empty.
  const hostnames = new Set(t.hostnames ?? route.allowed_origins.map((o) => new URL(o).hostname.toLowerCase()));
  return async ({ headers, field, secret, log }) => {
    const refuse = (why: string, detail: string, extra: Record<string, unknown> = {}): ProblemError => {
      log('turnstile_refused', { why, ...extra });
      return problem('turnstile-failed', detail);
    };
    const header = headers.get(TURNSTILE_HEADER) ?? '';
    if (header !== '' && (field ?? '') !== '') {
      throw problem('turnstile-ambiguous', `the token came both as the ${TURNSTILE_HEADER} header and the ${TURNSTILE_FIELD} field; send it once`);
    }
    const token = header !== '' ? header : (field ?? '');
    if (token === '') {
      throw problem('turnstile-required', `this route needs a Turnstile token: the widget's ${TURNSTILE_FIELD} field, or the ${TURNSTILE_HEADER} header`);
    }
    if (token.length > MAX_TOKEN_LENGTH || !/^[\x21-\x7e]+$/.test(token)) throw refuse('malformed', 'the Turnstile token is not one (too long, or characters a token never has)');

    const fp = await sha256Hex(token);
    if (!markUsed(fp)) throw refuse('replayed', 'this Turnstile token was already used: complete the check again');
    const verdict = await siteverify(secret, token, clientAddress(headers), t.timeout_ms);
    if (verdict.kind === 'unavailable') {
      forget(fp); // not verified: the same token may be tried again
      log('turnstile_unavailable', { cause: verdict.cause });
      throw problem('turnstile-unavailable', 'the Turnstile check could not be completed; try again in a moment', { retryAfter: UNAVAILABLE_RETRY_S });
    }
    const a = verdict.answer;
    if (!a.success) {
      const codes = a.errorCodes;
      if (codes.some((c) => c === 'missing-input-secret' || c === 'invalid-input-secret' || c === 'internal-error')) {
        forget(fp);
        // The route's secret is wrong, or Cloudflare failed: the operator's problem, not the visitor's.
        log('turnstile_unavailable', { cause: 'siteverify refused the request', error_codes: codes });
        throw problem('turnstile-unavailable', 'the Turnstile check could not be completed; try again in a moment', { retryAfter: UNAVAILABLE_RETRY_S });
      }
      if (codes.includes('timeout-or-duplicate')) throw refuse('timeout-or-duplicate', 'the Turnstile token has expired or was already used: complete the check again', { error_codes: codes });
      throw refuse('rejected', 'the Turnstile token was not accepted: complete the check again', { error_codes: codes });
    }
    if (a.hostname === undefined || !hostnames.has(a.hostname.toLowerCase())) {
      throw refuse('hostname', 'the Turnstile token was issued on another site', { hostname: a.hostname?.slice(0, 253) ?? null });
    }
    if (t.action !== undefined && a.action !== t.action) {
      throw refuse('action', 'the Turnstile token was issued for another form', { action: a.action?.slice(0, 32) ?? null });
    }
  };
}

/**
 * Ask siteverify once, and once more (same idempotency key, so a token the first attempt already
 * consumed is not refused as a duplicate) after a network error or a 5xx/429, within `timeoutMs`
 * overall. A timeout, an answer that is not siteverify's JSON, or no answer: unavailable.
 */
async function siteverify(secret: string, token: string, remoteip: string | undefined, timeoutMs: number): Promise<Verdict> {
  const form = new URLSearchParams({ secret, response: token, idempotency_key: crypto.randomUUID() });
  if (remoteip !== undefined) form.set('remoteip', remoteip);
  const body = form.toString();
  // Real elapsed time (not the injectable clock): this bounds how long a visitor waits.
  const deadline = Date.now() + timeoutMs;
  let cause = 'timeout';
  for (let attempt = 0; attempt < 2; attempt++) {
    const left = deadline - Date.now();
    if (left <= 0) return { kind: 'unavailable', cause: 'timeout' };
    try {
      const res = await fetch(SITEVERIFY_URL, {
        method: 'POST',
        headers: { 'Content-Type': 'application/x-www-form-urlencoded', 'Accept-Encoding': ACCEPT_ENCODING },
        body,
        redirect: 'manual',
        signal: AbortSignal.timeout(left),
        // Decoded here, in bounds (decode.ts), not by the runtime.
        encodeResponseBody: 'manual',
      });
      if (res.status >= 500 || res.status === 429) {
        await res.body?.cancel();
        cause = `status ${res.status}`;
        continue;
      }
      const answerBody = res.body === null ? null : decodedBody(res.body, res.headers.get('Content-Encoding'));
      if (answerBody === undefined) {
        await res.body?.cancel();
        return { kind: 'unavailable', cause: 'answer not understood' };
      }
      const bytes = await readAtMost(answerBody, MAX_ANSWER_BYTES);
      if (res.status !== 200) return { kind: 'unavailable', cause: `status ${res.status}` };
      const answer = bytes === undefined ? undefined : readAnswer(bytes);
      return answer === undefined ? { kind: 'unavailable', cause: 'answer not understood' } : { kind: 'answer', answer };
    } catch (e) {
      if (e instanceof Error && e.name === 'TimeoutError') return { kind: 'unavailable', cause: 'timeout' };
      if (e instanceof CodingError) return { kind: 'unavailable', cause: 'answer not understood' };
      cause = 'unreachable';
    }
  }
  return { kind: 'unavailable', cause };
}

/** siteverify's JSON, strictly: an object with a boolean `success`; undefined for anything else. */
function readAnswer(bytes: Uint8Array): SiteverifyAnswer | undefined {
  let v: unknown;
  try {
    v = JSON.parse(utf8Strict(bytes));
  } catch {
    return undefined;
  }
  if (typeof v !== 'object' || v === null || Array.isArray(v)) return undefined;
  const o = v as Record<string, unknown>;
  if (typeof o.success !== 'boolean') return undefined;
  const codes = o['error-codes'];
  return {
    success: o.success,
    // Only code-shaped strings: these go to the log.
    errorCodes: Array.isArray(codes) ? codes.filter((c): c is string => typeof c === 'string' && /^[a-z0-9-]{1,64}$/.test(c)).slice(0, 10) : [],
    ...(typeof o.hostname === 'string' ? { hostname: o.hostname } : {}),
    ...(typeof o.action === 'string' ? { action: o.action } : {}),
  };
}

// ---- Tokens seen by this isolate --------------------------------------------------------------

/** SHA-256 of a token → when it can no longer be valid anyway. Only hashes are kept. */
const seen = new Map<string, number>();

/** Record a token as used; false when it already was (within its lifetime, on the injectable clock). */
function markUsed(fp: string): boolean {
  const now = clock.now();
  const until = seen.get(fp);
  if (until !== undefined && until > now) return false;
  seen.delete(fp);
  // Every entry lives as long, so insertion order is expiry order: drop from the front.
  for (const [k, t] of seen) {
    if (seen.size < MAX_REMEMBERED && t > now) break;
    seen.delete(k);
  }
  seen.set(fp, now + TOKEN_LIFETIME_MS);
  return true;
}

function forget(fp: string): void {
  seen.delete(fp);
}
