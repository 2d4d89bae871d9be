/**
 * @module Isolate token cache: reuse a token without a round trip to its TokenStore.
 *
 * A warm request makes no Durable Object call: the token is served from this isolate's memory until
 * the store's `refreshAt`, and never at or after its `usableUntil`. While the store has said "no
 * token before T", or "the API's rejections are ignored until T", that answer is repeated here too
 * (for at most 30 s, in case clocks disagree). Concurrent misses in one isolate share one store call.
 * When the store cannot be reached, a token in hand is used until it stops being usable, and the
 * failure is logged. Accepted uses are reported to the store once per token, and for sliding tokens
 * every quarter lifetime, so a busy sliding token stays alive everywhere.
 */
import { clock } from '../clock';
import { loadConfig, type Config } from '../config';
import type { Env } from '../env';
import { logEvent, type TokenSource } from '../log';
import { fingerprintOf, storeName, storeStub, type StoreRef } from './credential-set';
import type { RejectionOutcome, TokenKept, TokenLease, TokenOutcome, TokenUnavailable } from './outcome';

/** Which token a request needs: an upstream (credential set) and a normalised scope set. */
export interface TokenRef {
  upstream: string;
  scope: string;
}

/** Schedules work after the response (ExecutionContext.waitUntil). */
export type WaitUntil = (promise: Promise<unknown>) => void;

interface Entry {
  lease: TokenLease;
  sref: StoreRef;
  /** Its key in `entries` (a later token for the same ref replaces it there). */
  k: string;
  /** Whether this isolate has told the store the token works, and when it last reported a use. */
  acceptReported: boolean;
  lastReportedAt: number;
  /** The store kept this token on a rejection (no replacement now, or rejections distrusted): its answer until then. */
  kept?: { outcome: TokenKept; until: number };
}

const entries = new Map<string, Entry>();
/** The entry a handed-out lease belongs to: reporting a use needs no lookup by key. */
const owners = new WeakMap<TokenLease, Entry>();
const pending = new Map<string, Promise<TokenOutcome | RejectionOutcome>>();
const refusals = new Map<string, { outcome: TokenUnavailable; until: number }>();

/** Longest a negative answer of the store is repeated here without asking it again. */
const MAX_NEGATIVE_MS = 30_000;
/** With the store unreachable and a token in hand, ask the store again this often. */
const STORE_RETRY_MS = 1_000;

/** A ref resolved once per config: the store's ref (with the credential set's fingerprint) and the cache key. */
interface Resolved {
  sref: StoreRef;
  k: string;
}
const resolved = new WeakMap<Config, Map<string, Promise<Resolved>>>();

function resolve(env: Env, ref: TokenRef): Promise<Resolved> {
  const config = loadConfig(env);
  let byRef = resolved.get(config);
  if (byRef === undefined) resolved.set(config, (byRef = new Map()));
  const id = `${ref.upstream}\u0000${ref.scope}`;
  let r = byRef.get(id);
  if (r === undefined) {
    r = fingerprintOf(env, ref.upstream).then((fp) => ({ sref: { upstream: ref.upstream, scope: ref.scope, fp }, k: `${storeName(ref.upstream, fp)}\u0000${ref.scope}` }));
    byRef.set(id, r);
  }
  return r;
}

/**
 * A token for `ref` that is usable now, or why there is none. Never an expired token. `seen.token`
 * tells the request log whether the token was reused from this isolate or the TokenStore was asked.
 */
export async function getToken(env: Env, ref: TokenRef, seen?: { token?: TokenSource }): Promise<TokenOutcome> {
  const { sref, k } = await resolve(env, ref);
  const now = clock.now();
  const e = entries.get(k);
  if (e !== undefined && now < e.lease.refreshAt && now < e.lease.usableUntil) {
    if (seen !== undefined) seen.token = 'cached';
    return e.lease;
  }
  const refused = refusals.get(k);
  if (refused !== undefined && now < refused.until) return refused.outcome;
  if (seen !== undefined) seen.token = 'store';

  const outcome = (await shared(k, sref, () => storeStub(env, sref.upstream, sref.fp).getToken(sref))) as TokenOutcome;
  const later = clock.now();
  if (outcome.kind === 'unavailable' && outcome.reason === 'store_unreachable' && e !== undefined && later < e.lease.usableUntil) {
    // The store is down but the token in hand is still good: use it, and ask again soon.
    e.lease.refreshAt = Math.min(e.lease.usableUntil, later + STORE_RETRY_MS);
    return e.lease;
  }
  return remember(k, sref, outcome);
}

/**
 * The API rejected `token`. Returns a token to retry with (a replacement, or the one that already
 * replaced it), or why the token was kept or none can be had. Concurrent reports share one call.
 */
export async function reportRejected(env: Env, ref: TokenRef, token: string): Promise<RejectionOutcome> {
  const { sref, k } = await resolve(env, ref);
  const now = clock.now();
  const e = entries.get(k);
  if (e !== undefined && e.lease.token !== token && now < e.lease.usableUntil) return e.lease;
  if (e?.lease.token === token && e.kept !== undefined && now < e.kept.until) return e.kept.outcome;

  const outcome = await shared(`${k}\u0000rejected\u0000${token}`, sref, () => storeStub(env, sref.upstream, sref.fp).reportRejected({ ...sref, token }));
  if (outcome.kind === 'kept') {
    // Whatever kept it (a spent budget, a cool-down, distrusted rejections) holds until retryAt:
    // repeated here, so a visitor's stream of rejected requests costs no Durable Object call each.
    const held = entries.get(k);
    if (held?.lease.token === token && outcome.retryAt !== undefined) held.kept = { outcome, until: Math.min(outcome.retryAt, clock.now() + MAX_NEGATIVE_MS) };
    return outcome;
  }
  return remember(k, sref, outcome);
}

/**
 * A request made with `lease`'s token at `sentAt` was answered without a rejection. A sliding token
 * is extended from that use here at once; the store hears of it once per token (so it knows the
 * token works) and, for sliding tokens, every quarter lifetime.
 */
export function reportUse(env: Env, lease: TokenLease, sentAt: number, waitUntil?: WaitUntil): void {
  const e = owners.get(lease);
  if (e === undefined || entries.get(e.k) !== e) return;
  const l = e.lease;
  if (l.sliding) {
    // The upstream extends from when the request arrived, no earlier than when we sent it.
    const slid = sentAt + l.lifetimeMs - l.skewMs;
    const until = Math.min(slid, l.hardUsableUntil);
    if (until > l.usableUntil) {
      l.usableUntil = until;
      l.refreshAt = slid < l.hardUsableUntil ? until : l.hardRefreshAt;
    }
  }
  if (e.acceptReported && !(l.sliding && sentAt - e.lastReportedAt >= l.lifetimeMs / 4)) return;
  e.acceptReported = true;
  e.lastReportedAt = sentAt;
  const { sref } = e;
  const report = storeStub(env, sref.upstream, sref.fp)
    .reportUse({ ...sref, token: l.token, usedAt: sentAt })
    .catch((err: unknown) => logStoreFailure(sref, err));
  if (waitUntil !== undefined) waitUntil(report);
}

/** Forget every cached token and answer of this isolate (tests, credential rotation). */
export function clearIsolateCache(): void {
  entries.clear();
  refusals.clear();
}

function shared(k: string, sref: StoreRef, call: () => Promise<TokenOutcome | RejectionOutcome>): Promise<TokenOutcome | RejectionOutcome> {
  let p = pending.get(k);
  if (p === undefined) {
    p = call().catch((err: unknown): TokenUnavailable => {
      logStoreFailure(sref, err);
      return { kind: 'unavailable', reason: 'store_unreachable', detail: 'the token store could not be reached; try again', retryAt: clock.now() + STORE_RETRY_MS };
    });
    pending.set(k, p);
    void p.finally(() => pending.delete(k));
  }
  return p;
}

function remember<T extends TokenOutcome>(k: string, sref: StoreRef, outcome: T): T | TokenUnavailable {
  const now = clock.now();
  if (outcome.kind === 'unavailable') {
    if (outcome.retryAt !== undefined && outcome.retryAt - now > STORE_RETRY_MS) {
      refusals.set(k, { outcome, until: Math.min(outcome.retryAt, now + MAX_NEGATIVE_MS) });
    }
    return outcome;
  }
  refusals.delete(k);
  if (now >= outcome.usableUntil) {
    return { kind: 'unavailable', reason: 'outage', detail: 'the token store returned a token that is no longer usable', retryAt: now + STORE_RETRY_MS };
  }
  const prev = entries.get(k);
  if (prev?.lease.token === outcome.token) {
    // The same token again: keep what this isolate knows of it (reports, a kept answer, its uses).
    prev.lease.usableUntil = Math.max(prev.lease.usableUntil, outcome.usableUntil);
    prev.lease.refreshAt = outcome.refreshAt;
    return prev.lease as T;
  }
  const e: Entry = { lease: { ...outcome }, sref, k, acceptReported: false, lastReportedAt: -Infinity };
  entries.set(k, e);
  owners.set(e.lease, e);
  return e.lease as T;
}

/** The store call failed (overloaded, being reset): logged by name only, never a token. */
function logStoreFailure(sref: StoreRef, err: unknown): void {
  logEvent('token_store_unreachable', { upstream: sref.upstream, scope: sref.scope, error: err instanceof Error ? err.name : typeof err }, 'error');
}
