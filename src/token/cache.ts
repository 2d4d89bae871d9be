/**
 * @module Isolate token cache: reuse a token without a round trip to its TokenStore.
 *
 * A warm request makes no Durable Object call: the token is served from this isolate's memory until
 * the store's `refreshAt`; while the store has said "no token before T", that answer is repeated
 * here too. Concurrent misses in one isolate share one store call, and a rejected
 * token is invalidated here and in the store by compare-and-swap. For sliding tokens the isolate
 * reports its use to the store every quarter lifetime, so a busy token stays alive everywhere.
 */
import { clock } from '../clock';
import { loadConfig } from '../config';
import { problem, type ProblemError } from '../problem';
import { storeName, type Env, type TokenKey, type TokenResult, type TokenUnavailable } from './store';

interface Entry {
  token: string;
  expiresAt: number;
  refreshAt: number;
  lifetimeMs: number;
  sliding: boolean;
  /** Sliding tokens: last use seen by this isolate, and last use reported to the store. */
  lastUsedAt: number;
  lastReportedAt: number;
}

const entries = new Map<string, Entry>();
const pending = new Map<string, Promise<TokenResult>>();

/**
 * "No token before `retryAt`" answers, kept so that a busy form during an outage or a spent budget
 * does not turn every request into a Durable Object call that can only say the same. Held for at
 * most `MAX_NEGATIVE_MS`, in case the isolate's and the store's clocks disagree.
 */
interface Refusal {
  result: TokenUnavailable;
  retryAt: number;
  until: number;
}
const refusals = new Map<string, Refusal>();
const MAX_NEGATIVE_MS = 30_000;

/** Schedules work after the response (ExecutionContext.waitUntil). */
export type WaitUntil = (promise: Promise<unknown>) => void;

const keyOf = (k: TokenKey) => storeName(k);

function storeFor(env: Env, key: TokenKey) {
  // Only the first get() of an Object decides where it lives; the hint is harmless afterwards.
  const locationHint = loadConfig(env).upstreams[key.upstream]?.location_hint;
  return env.TOKEN_STORE.get(env.TOKEN_STORE.idFromName(storeName(key)), locationHint === undefined ? {} : { locationHint });
}

/**
 * A token for `key` that is good to use now. Throws a `ProblemError` (502/503 with Retry-After) when
 * none can be had; an expired token is never returned.
 */
export async function getToken(env: Env, key: TokenKey, waitUntil?: WaitUntil): Promise<string> {
  const k = keyOf(key);
  const now = clock.now();
  const e = entries.get(k);
  if (e !== undefined && now < e.refreshAt && now < e.expiresAt) return use(env, key, e, now, waitUntil);
  const refused = refusals.get(k);
  if (refused !== undefined && now < refused.until) {
    throw unavailable({ ...refused.result, retryAfterSeconds: Math.max(1, Math.ceil((refused.retryAt - now) / 1000)) });
  }

  let call = pending.get(k);
  if (call === undefined) {
    call = storeFor(env, key).getToken(key).catch(storeUnreachable);
    pending.set(k, call);
    void call.finally(() => pending.delete(k));
  }
  return remember(env, key, await call, waitUntil);
}

/**
 * The API rejected `token`: forget it here, ask the store to replace it (compare-and-swap), and
 * return the replacement. Concurrent reports of the same token share one store call.
 */
export async function invalidate(env: Env, key: TokenKey, token: string, waitUntil?: WaitUntil): Promise<string> {
  const k = keyOf(key);
  const e = entries.get(k);
  if (e !== undefined && e.token !== token && clock.now() < e.expiresAt) return use(env, key, e, clock.now(), waitUntil);
  if (e?.token === token) entries.delete(k);

  const pk = `${k}\u0000invalidate\u0000${token}`;
  let call = pending.get(pk);
  if (call === undefined) {
    call = storeFor(env, key).invalidate({ ...key, token }).catch(storeUnreachable);
    pending.set(pk, call);
    void call.finally(() => pending.delete(pk));
  }
  return remember(env, key, await call, waitUntil);
}

/** Forget every cached token of this isolate (tests, credential rotation). */
export function clearIsolateCache(): void {
  entries.clear();
  refusals.clear();
}

function remember(env: Env, key: TokenKey, result: TokenResult, waitUntil?: WaitUntil): string {
  const now = clock.now();
  if (!result.ok) {
    if (result.retryAfterSeconds !== undefined && result.retryAfterSeconds > 1) {
      const retryAt = now + result.retryAfterSeconds * 1000;
      refusals.set(keyOf(key), { result, retryAt, until: Math.min(retryAt, now + MAX_NEGATIVE_MS) });
    }
    throw unavailable(result);
  }
  refusals.delete(keyOf(key));
  const e: Entry = {
    token: result.token,
    expiresAt: result.expiresAt,
    refreshAt: result.refreshAt,
    lifetimeMs: result.lifetimeMs,
    sliding: result.sliding,
    lastUsedAt: now,
    lastReportedAt: now,
  };
  if (now >= e.expiresAt) throw problem(503, 'Upstream token unavailable', 'the token store returned an expired token', { retryAfter: 1 });
  entries.set(keyOf(key), e);
  return use(env, key, e, now, waitUntil);
}

function use(env: Env, key: TokenKey, e: Entry, now: number, waitUntil?: WaitUntil): string {
  if (e.sliding) {
    // Each use pushes a sliding token's expiry out, here and (every quarter lifetime) in the store.
    const margin = e.expiresAt - e.refreshAt;
    e.lastUsedAt = now;
    e.expiresAt = Math.max(e.expiresAt, now + e.lifetimeMs);
    e.refreshAt = Math.max(e.refreshAt, e.expiresAt - margin);
    if (now - e.lastReportedAt >= e.lifetimeMs / 4) {
      e.lastReportedAt = now;
      const report = storeFor(env, key).touch({ ...key, token: e.token, at: now });
      if (waitUntil !== undefined) waitUntil(report);
      else void report.catch(() => undefined);
    }
  }
  return e.token;
}

/** The Durable Object call itself failed (overloaded, being reset): a retry soon is the cure. */
function storeUnreachable(): TokenResult {
  return { ok: false, status: 503, title: 'Token store unavailable', detail: 'the token store could not be reached; try again', retryAfterSeconds: 1 };
}

function unavailable(r: TokenUnavailable): ProblemError {
  return problem(r.status, r.title, r.detail, r.retryAfterSeconds === undefined ? {} : { retryAfter: r.retryAfterSeconds });
}
