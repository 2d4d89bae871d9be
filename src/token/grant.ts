/**
 * @module Token grant: build the token request each upstream style wants, and read its answer.
 *
 * Pure functions, no state: when to ask and how often is the TokenStore's job. Names follow RFC
 * 6749 (`client_secret_basic`, `client_secret_post`).
 */
import { decodeJwt } from 'jose';
import type { Credentials, UpstreamConfig } from '../config';

/**
 * RFC 6749 §2.3.1: client id and secret are form-urlencoded *before* they are joined and base64'd,
 * so a secret like `p@ss:w/rd+%` survives the trip.
 */
export function basicCredentials(clientId: string, clientSecret: string): string {
  const enc = (s: string) => new URLSearchParams({ s }).toString().slice(2);
  const bytes = new TextEncoder().encode(`${enc(clientId)}:${enc(clientSecret)}`);
  let binary = '';
  for (const b of bytes) binary += String.fromCharCode(b);
  return `Basic ${btoa(binary)}`;
}

/** The token request for this upstream and scope set (`scope` already normalised, '' for none). */
export function buildTokenRequest(u: UpstreamConfig, creds: Credentials, scope: string): Request {
  const params = new URLSearchParams();
  if (u.send_grant_type) params.set('grant_type', u.grant);
  if (u.grant === 'password') {
    params.set(u.username_field, creds.username ?? '');
    params.set(u.password_field, creds.password ?? '');
  }
  if (scope !== '') params.set('scope', scope);
  for (const [k, v] of Object.entries(u.extra_params)) params.set(k, v);

  const headers = new Headers({ Accept: u.token_response === 'json' ? 'application/json' : '*/*' });
  if (u.client_auth === 'client_secret_basic') {
    headers.set('Authorization', basicCredentials(creds.clientId ?? '', creds.clientSecret ?? ''));
  } else if (u.client_auth === 'client_secret_post') {
    params.set('client_id', creds.clientId ?? '');
    params.set('client_secret', creds.clientSecret ?? '');
  }

  if (u.token_method === 'GET') {
    // Config refuses GET with a credential in the params, so only public params reach the URL.
    const url = new URL(u.token_url);
    for (const [k, v] of params) url.searchParams.set(k, v);
    return new Request(url, { method: 'GET', headers });
  }
  headers.set('Content-Type', 'application/x-www-form-urlencoded');
  return new Request(u.token_url, { method: 'POST', headers, body: params.toString() });
}

/** A token as issued: the value and when the issuer says it stops working (fixed) or its lifetime. */
export interface IssuedToken {
  token: string;
  /** Lifetime in ms counted from issue (fixed) or from last use (sliding). */
  lifetimeMs: number;
}

/** Why a token answer could not be used; `kind` decides what the store does next. */
export type GrantFailure =
  /** 5xx, timeout, network error, an unreadable body: worth a retry. */
  | { kind: 'transient'; detail: string }
  /** 429, or 403 (ABS's "too many token requests"): stop asking for a while. */
  | { kind: 'throttled'; detail: string; retryAfterSeconds?: number }
  /** 400/401 and other 4xx: the credentials or the request are wrong; retrying will not help. */
  | { kind: 'rejected'; detail: string };

const MAX_DETAIL = 200;

/**
 * Read a token endpoint's answer. `now` is used only to turn a JWT's `exp` into a lifetime.
 * Detail strings are built from status codes and RFC 6749 §5.2 error codes only, never the raw body,
 * and are passed through redaction by the caller anyway.
 */
export async function readTokenResponse(
  u: UpstreamConfig,
  res: Response,
  now: number,
): Promise<{ ok: true; value: IssuedToken } | { ok: false; failure: GrantFailure }> {
  const text = await res.text();
  if (!res.ok) return { ok: false, failure: classifyError(res, text) };

  let token: string | undefined;
  let lifetimeS: number | undefined;
  if (u.token_response === 'text') {
    token = text.trim();
    if (token === '' || /[\s<>"]/.test(token)) return transient(`token endpoint answered ${res.status} with a body that is not a bare token`);
  } else {
    let body: unknown;
    try {
      body = JSON.parse(text);
    } catch {
      const type = res.headers.get('Content-Type') ?? 'no content type';
      return transient(`token endpoint answered ${res.status} with a body that is not JSON (${type.slice(0, 60)})`);
    }
    if (typeof body !== 'object' || body === null || Array.isArray(body)) return transient('token endpoint answered with JSON that is not an object');
    const record = body as Record<string, unknown>;
    const t = record[u.token_field];
    if (typeof t !== 'string' || t === '') return transient(`token endpoint answer has no "${u.token_field}" string`);
    token = t;
    lifetimeS = readLifetime(record[u.expires_in_field]);
  }

  if (lifetimeS === undefined) lifetimeS = jwtLifetimeSeconds(token, now);
  return { ok: true, value: { token, lifetimeMs: (lifetimeS ?? u.default_lifetime_seconds) * 1000 } };
}

function transient(detail: string): { ok: false; failure: GrantFailure } {
  return { ok: false, failure: { kind: 'transient', detail } };
}

/** `expires_in` as a number or a numeric string ("3599"); anything else is ignored. */
function readLifetime(v: unknown): number | undefined {
  const n = typeof v === 'number' ? v : typeof v === 'string' && /^\s*\d+(\.\d+)?\s*$/.test(v) ? Number(v) : NaN;
  return Number.isFinite(n) && n > 0 ? n : undefined;
}

/** Seconds until a JWT's `exp`, if the token is a JWT that has one. */
function jwtLifetimeSeconds(token: string, now: number): number | undefined {
  try {
    const { exp } = decodeJwt(token);
    if (typeof exp !== 'number') return undefined;
    const s = exp - now / 1000;
    return s > 0 ? s : undefined;
  } catch {
    return undefined;
  }
}

function classifyError(res: Response, text: string): GrantFailure {
  const code = oauthErrorCode(text);
  const detail = `token endpoint answered ${res.status}${code === undefined ? '' : ` (${code})`}`;
  if (res.status === 429 || res.status === 403) {
    const retryAfter = parseRetryAfter(res.headers.get('Retry-After'));
    return { kind: 'throttled', detail, ...(retryAfter === undefined ? {} : { retryAfterSeconds: retryAfter }) };
  }
  if (res.status >= 500 || res.status === 408) return { kind: 'transient', detail };
  return { kind: 'rejected', detail };
}

/** RFC 6749 §5.2 `error` code, when the body is that shape and the code looks like one. */
function oauthErrorCode(text: string): string | undefined {
  try {
    const body: unknown = JSON.parse(text);
    if (typeof body === 'object' && body !== null && 'error' in body) {
      const e = (body as { error: unknown }).error;
      if (typeof e === 'string' && /^[\x20-\x7e]{1,64}$/.test(e) && !e.includes('"')) return e.slice(0, MAX_DETAIL);
    }
  } catch {
    // not JSON: no code to report
  }
  return undefined;
}

/** Retry-After as delta-seconds or an HTTP date (RFC 9110 §10.2.3). */
export function parseRetryAfter(v: string | null, now = Date.now()): number | undefined {
  if (v === null) return undefined;
  if (/^\d+$/.test(v.trim())) return Number(v.trim());
  const at = Date.parse(v);
  return Number.isNaN(at) ? undefined : Math.max(0, Math.ceil((at - now) / 1000));
}
