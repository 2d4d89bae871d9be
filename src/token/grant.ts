/**
 * @module Token grant: build the token request each upstream style wants, and read its answer
 * strictly.
 *
 * Pure functions, no state: when to ask and how often is the policy's and the TokenStore's job.
 * Names follow RFC 6749 (`client_secret_basic`, `client_secret_post`), RFC 7523 and RFC 8705 (the
 * assertion and mTLS methods: the assertion is signed by client-assertion.ts). An answer that is not what
 * the spec says is an error naming the field, never a silent default; bodies are decoded and read
 * through a size limit, in bounded memory; redirects are never followed (a 3xx would resend the
 * client secret to another host).
 */
import { decodeJwt } from 'jose';
import { secondsUntil } from '../clock';
import { base64, readAtMost } from '../bytes';
import type { UpstreamConfig } from '../config/schema';
import type { Credentials } from '../config/secrets';
import { ACCEPT_ENCODING, CodingError, decodedBody } from '../decode';
// Shorter tokens are refused at issue: a token that short could not be cut out of what the API echoes.
import { parseMediaType } from '../media-type';
import { MIN_TOKEN_LENGTH } from '../redact';
import { CLIENT_ASSERTION_TYPE } from './client-assertion';
import type { AnsweredLifetime, CycleFailure } from './policy';

/** Largest token answer read (Go's oauth2 reads through a 1 MiB limit too). */
export const MAX_TOKEN_ANSWER_BYTES = 1024 * 1024;
/** Of an error answer only the start is read, for its OAuth error code. */
const MAX_ERROR_BYTES = 16 * 1024;

/**
 * RFC 6749 §2.3.1: client id and secret are form-urlencoded *before* they are joined and base64'd,
 * so a secret like `p@ss:w/rd+%` survives the trip.
 */
export function basicCredentials(clientId: string, clientSecret: string): string {
  return `Basic ${base64(`${formEncode(clientId)}:${formEncode(clientSecret)}`)}`;
}

/** application/x-www-form-urlencoded encoding of one value. */
export function formEncode(s: string): string {
  return new URLSearchParams({ s }).toString().slice(2);
}

/**
 * The token request for this upstream and scope set (`scope` already normalised, '' for none);
 * `assertion` is the fresh client assertion of `private_key_jwt` / `client_secret_jwt`.
 */
export function buildTokenRequest(u: UpstreamConfig, creds: Credentials, scope: string, assertion?: string): Request {
  const params = new URLSearchParams();
  if (u.send_grant_type) params.set('grant_type', u.grant);
  if (u.grant === 'password') {
    params.set(u.username_field, creds.username ?? '');
    params.set(u.password_field, creds.password ?? '');
  }
  if (scope !== '') params.set('scope', scope);
  for (const [k, v] of Object.entries(u.extra_params)) params.set(k, v);

  // Asked for explicitly: the answer is fetched undecoded and decoded in bounds (decode.ts).
  const headers = new Headers({ Accept: u.token_response === 'json' ? 'application/json' : '*/*', 'Accept-Encoding': ACCEPT_ENCODING });
  if (u.client_auth === 'client_secret_basic') {
    headers.set('Authorization', basicCredentials(creds.clientId ?? '', creds.clientSecret ?? ''));
  } else if (u.client_auth === 'client_secret_post') {
    params.set('client_id', creds.clientId ?? '');
    params.set('client_secret', creds.clientSecret ?? '');
  } else if (u.client_auth === 'private_key_jwt' || u.client_auth === 'client_secret_jwt') {
    // RFC 7523 §2.2; client_id too, which RFC 7521 §4.2 allows and some servers want.
    params.set('client_id', creds.clientId ?? '');
    params.set('client_assertion_type', CLIENT_ASSERTION_TYPE);
    params.set('client_assertion', assertion ?? '');
  } else if (u.client_auth === 'tls_client_auth' || u.client_auth === 'self_signed_tls_client_auth') {
    // RFC 8705 §2: the certificate authenticates; client_id says which client it is.
    params.set('client_id', creds.clientId ?? '');
  }

  // `manual`: a 3xx comes back to us as it is, and is refused (see readTokenResponse).
  if (u.token_method === 'GET') {
    // Config refuses GET with a credential in the params, so only public params reach the URL.
    const url = new URL(u.token_url);
    for (const [k, v] of params) url.searchParams.set(k, v);
    return new Request(url, { method: 'GET', headers, redirect: 'manual' });
  }
  headers.set('Content-Type', 'application/x-www-form-urlencoded');
  return new Request(u.token_url, { method: 'POST', headers, body: params.toString(), redirect: 'manual' });
}

/** A token as issued, with what the answer said about its lifetime. */
export interface IssuedToken extends AnsweredLifetime {
  token: string;
}

export type GrantResult = { ok: true; value: IssuedToken } | { ok: false; failure: CycleFailure };

/**
 * Read a token endpoint's answer. Detail strings are built from the status, an RFC 6749 §5.2 error
 * code of the registered shape and config key names only, never from the body's free text (which
 * may quote a credential in any encoding).
 */
export async function readTokenResponse(u: UpstreamConfig, res: Response, now = Date.now()): Promise<GrantResult> {
  const s = res.status;
  if (s >= 300 && s < 400) {
    await res.body?.cancel();
    // Never the Location: it is not ours to show, and following it would resend the credentials.
    return fail('misconfigured', `token endpoint answered ${s} (a redirect, not followed): set token_url to the endpoint itself`);
  }
  if (!res.ok) {
    const read = await textAtMost(res, MAX_ERROR_BYTES);
    const code = oauthErrorCode('text' in read ? read.text : undefined);
    const detail = `token endpoint answered ${s}${code === undefined ? '' : ` (${code})`}`;
    if (u.token_throttled_statuses.includes(s)) {
      const retryAfter = parseRetryAfter(res.headers.get('Retry-After'), now);
      return { ok: false, failure: { kind: 'throttled', detail, ...(retryAfter === undefined ? {} : { retryAfterMs: retryAfter * 1000 }) } };
    }
    if (s === 404 || s === 405) return fail('misconfigured', `${detail}: check token_url and token_method`);
    if (s >= 500 || s === 408) return fail('transient', detail);
    return fail('refused', detail);
  }

  const read = await textAtMost(res, MAX_TOKEN_ANSWER_BYTES);
  if (!('text' in read)) {
    if (read.failed === 'too-large') return fail('invalid_answer', `token endpoint answered ${s} with a body over ${MAX_TOKEN_ANSWER_BYTES} bytes (decoded)`);
    if (read.failed === 'unsupported') return fail('invalid_answer', `token endpoint answered ${s} with a Content-Encoding the Worker does not decode (it decodes gzip and deflate)`);
    // Cut off or corrupted on the way (a proxy, a reset): worth another try.
    return fail('transient', `token endpoint answered ${s} with a body not in its stated Content-Encoding`);
  }
  const text = read.text;

  if (u.token_response === 'text') {
    const token = text.trim();
    const bad = tokenProblem(token);
    return bad === undefined ? { ok: true, value: withJwtExp({ token }) } : fail('invalid_answer', `token endpoint's bare token ${bad}`);
  }

  let body: unknown;
  try {
    body = JSON.parse(text);
  } catch {
    // A proxy's HTML page, a truncated answer: worth another try.
    return fail('transient', `token endpoint answered ${s} with a body that is not JSON (${mediaTypeName(res.headers.get('Content-Type'))})`);
  }
  if (typeof body !== 'object' || body === null || Array.isArray(body)) return fail('invalid_answer', 'token endpoint answered with JSON that is not an object');
  const record = body as Record<string, unknown>;
  // Some servers answer 200 with an error object (Go's oauth2 treats it as a failure too).
  if (Object.hasOwn(record, 'error') && record.error !== null && record.error !== undefined) {
    const code = typeof record.error === 'string' ? registeredCode(record.error) : undefined;
    return fail('refused', `token endpoint answered ${s} with an error${code === undefined ? '' : ` (${code})`}`);
  }
  const token = Object.hasOwn(record, u.token_field) ? record[u.token_field] : undefined;
  if (typeof token !== 'string') return fail('invalid_answer', `"${u.token_field}" must be a string`);
  const bad = tokenProblem(token);
  if (bad !== undefined) return fail('invalid_answer', `"${u.token_field}" ${bad}`);

  const raw = Object.hasOwn(record, u.expires_in_field) ? record[u.expires_in_field] : undefined;
  if (raw === undefined || raw === null) return { ok: true, value: withJwtExp({ token }) };
  const expiresInS = positiveSeconds(raw);
  if (expiresInS === undefined) return fail('invalid_answer', `"${u.expires_in_field}" must be a positive number of seconds`);
  return { ok: true, value: { token, expiresInS } };
}

function fail(kind: CycleFailure['kind'], detail: string): { ok: false; failure: CycleFailure } {
  return { ok: false, failure: { kind, detail } };
}

/** Why a token cannot be injected as a header value and cut out of echoes, if it cannot. */
function tokenProblem(token: string): string | undefined {
  if (token.length < MIN_TOKEN_LENGTH) return `must be at least ${MIN_TOKEN_LENGTH} characters`;
  if (!/^[\x21-\x7e]+$/.test(token)) return 'must be printable ASCII without spaces';
  return undefined;
}

/** A JWT's `exp`, when the token is a JWT that has one. */
function withJwtExp(t: IssuedToken): IssuedToken {
  try {
    const { exp } = decodeJwt(t.token);
    return typeof exp === 'number' && Number.isFinite(exp) ? { ...t, jwtExp: exp } : t;
  } catch {
    return t;
  }
}

/** `expires_in` as a positive number or numeric string ("3599"); anything else is undefined. */
function positiveSeconds(v: unknown): number | undefined {
  const n = typeof v === 'number' ? v : typeof v === 'string' && /^\s*\d+(\.\d+)?\s*$/.test(v) ? Number(v) : NaN;
  return Number.isFinite(n) && n > 0 ? n : undefined;
}

/** A body's text, or why there is none to read. */
type BodyText = { text: string } | { failed: 'too-large' | 'unsupported' | 'broken' };

/**
 * The body's text, decoded (gzip, deflate: decode.ts), at most `max` bytes of it. The rest is never
 * read, nor inflated: a hostile endpoint cannot make us buffer an unbounded answer.
 */
async function textAtMost(res: Response, max: number): Promise<BodyText> {
  const body = res.body === null ? null : decodedBody(res.body, res.headers.get('Content-Encoding'));
  if (body === undefined) {
    await res.body?.cancel();
    return { failed: 'unsupported' };
  }
  try {
    const bytes = await readAtMost(body, max);
    return bytes === undefined ? { failed: 'too-large' } : { text: new TextDecoder().decode(bytes) };
  } catch (e) {
    if (e instanceof CodingError) return { failed: 'broken' };
    throw e;
  }
}

/** RFC 6749 §5.2 `error` of an error answer, when it has the registered shape. */
function oauthErrorCode(text: string | undefined): string | undefined {
  if (text === undefined) return undefined;
  try {
    const body: unknown = JSON.parse(text);
    if (typeof body === 'object' && body !== null && 'error' in body) {
      const e = (body as { error: unknown }).error;
      if (typeof e === 'string') return registeredCode(e);
    }
  } catch {
    // not JSON: no code to report
  }
  return undefined;
}

/**
 * Error codes are shown only in the shape of the registered ones (`invalid_client`, `slow_down`):
 * lower-case words joined by `_`. Anything else (a base64 or URL-encoded credential an endpoint
 * chose to put there) is not shown at all.
 */
function registeredCode(e: string): string | undefined {
  return /^[a-z]{1,30}(_[a-z]{1,30}){0,4}$/.test(e) ? e : undefined;
}

/** A content type's media type when it is an ordinary one, else a neutral word (it may quote anything). */
function mediaTypeName(contentType: string | null): string {
  if (contentType === null || contentType.trim() === '') return 'no content type';
  const type = parseMediaType(contentType)?.essence ?? '';
  return /^(text|application)\/(html|plain|xml|json|xhtml\+xml|problem\+json|octet-stream)$/.test(type) ? type : 'another content type';
}

/** Retry-After as delta-seconds or an HTTP date (RFC 9110 §10.2.3). */
export function parseRetryAfter(v: string | null, now = Date.now()): number | undefined {
  if (v === null) return undefined;
  if (/^\d+$/.test(v.trim())) return Number(v.trim());
  const at = Date.parse(v);
  return Number.isNaN(at) ? undefined : secondsUntil(at, now);
}
