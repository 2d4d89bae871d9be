/**
 * @module Isolate token cache: reuse a token without a round trip to its TokenStore.
 *
 * A warm request makes no Durable Object call: the token is served from this isolate's memory until
 * the lease's `refreshAt`, and never at or after its `usableUntil`. While the store has said "no
 * token before T", or "the API's rejections are ignored until T", that answer is repeated here too
 * (for at most 30 s, in case clocks disagree). Concurrent misses in one isolate share one store call.
 * When the store cannot be reached, a token in hand is used until it stops being usable, and the
 * failure is logged. Accepted uses are reported to the store once per token, and for sliding tokens
 * as often as the lease says, so a busy sliding token stays alive everywhere; how a use extends a
 * sliding lease is the policy's rule (`leaseAfterUse`), not this module's.
 */
import { clock } from '../clock';
import { logEvent } from '../log';
import type { Upstream } from '../upstream';
import { waitFor, type RejectionOutcome, type TokenKept, type TokenLease, type TokenOutcome, type TokenSource, type TokenUnavailable } from './outcome';
import { leaseAfterUse } from './policy';
import type { StoreRef } from './store-api';

/** Schedules work after the response (ExecutionContext.waitUntil). */
export type WaitUntil = (promise: Promise<unknown>) => void;

/** What this isolate holds for one credential set and scope set. */
interface Held {
  lease: TokenLease;
  upstream: Upstream;
  ref: StoreRef;
  /** Its key in `held` (a later token for the same ref replaces it there). */
  key: string;
  /** Whether this isolate has told the store the token works, and when it last reported a use. */
  acceptReported: boolean;
  lastReportedAt: number;
  /** The store kept this token on a rejection (no replacement now, or rejections distrusted): its answer until then. */
  kept?: { outcome: TokenKept; until: number };
}

const held = new Map<string, Held>();
/** What a handed-out lease belongs to: reporting a use needs no lookup by key. */
const holderOf = new WeakMap<TokenLease, Held>();
const pending = new Map<string, Promise<TokenOutcome | RejectionOutcome>>();
const refusals = new Map<string, { outcome: TokenUnavailable; until: number }>();

/** Longest a negative answer of the store is repeated here without asking it again. */
export const MAX_NEGATIVE_MS = 30_000;
/** With the store unreachable and a token in hand, ask the store again this often. */
const STORE_RETRY_MS = 1_000;

/** The cache key of a credential set's scope set. */
const keyOf = (ref: StoreRef) => `${ref.upstream}\u0000${ref.fp}\u0000${ref.scope}`;

/** A token for a request, and where it came from (none: a refusal this isolate repeated). */
export interface TokenAnswer {
  outcome: TokenOutcome;
  source?: TokenSource;
}

/** A token of `upstream` for `scope` that is usable now, or why there is none. Never an expired token. */
export async function getToken(upstream: Upstream, scope: string): Promise<TokenAnswer> {
  const ref = upstream.ref(scope);
  const key = keyOf(ref);
  const now = clock.now();
  const mine = held.get(key);
  if (mine !== undefined && now < mine.lease.refreshAt && now < mine.lease.usableUntil) return { outcome: mine.lease, source: 'cached' };
  const refused = refusals.get(key);
  if (refused !== undefined && now < refused.until) return { outcome: refused.outcome };

  const outcome = (await shared(key, ref, () => upstream.store().getToken(ref))) as TokenOutcome;
  const later = clock.now();
  if (outcome.kind === 'unavailable' && outcome.reason === 'store_unreachable' && mine !== undefined && later < mine.lease.usableUntil) {
    // The store is down but the token in hand is still good: use it, and ask again soon.
    replaceLease(mine, { ...mine.lease, refreshAt: Math.min(mine.lease.usableUntil, later + STORE_RETRY_MS) });
    return { outcome: mine.lease, source: 'store' };
  }
  return { outcome: hold(upstream, key, ref, outcome), source: 'store' };
}

/**
 * A token as `getToken` gives it, but held (up to `waitMs`) while no token may be asked for yet for
 * a passing reason: at a rollover under a one-per-lifetime budget the new token comes a few seconds
 * after the old one stops being usable, and the caller is served with it instead of a 503.
 */
export async function getTokenWaiting(upstream: Upstream, scope: string, waitMs: number): Promise<TokenAnswer> {
  const holdUntil = clock.now() + waitMs;
  for (;;) {
    const answer = await getToken(upstream, scope);
    if (answer.outcome.kind === 'token') return answer;
    const wait = waitFor(answer.outcome, clock.now(), holdUntil);
    if (wait === undefined) return answer;
    // A little after the time named, so a slightly slower clock elsewhere has moved past it too.
    await clock.sleep(wait + 25);
  }
}

/**
 * The API rejected `token`. Returns a token to retry with (a replacement, or the one that already
 * replaced it), or why the token was kept or none can be had. Concurrent reports share one call.
 */
export async function reportRejected(upstream: Upstream, scope: string, token: string): Promise<RejectionOutcome> {
  const ref = upstream.ref(scope);
  const key = keyOf(ref);
  const now = clock.now();
  const mine = held.get(key);
  if (mine !== undefined && mine.lease.token !== token && now < mine.lease.usableUntil) return mine.lease;
  if (mine?.lease.token === token && mine.kept !== undefined && now < mine.kept.until) return mine.kept.outcome;

  const outcome = await shared(`${key}\u0000rejected\u0000${token}`, ref, () => upstream.store().reportRejected({ ...ref, token }));
  if (outcome.kind === 'kept') {
    // Whatever kept it (a spent budget, a cool-down, distrusted rejections) holds until retryAt:
    // repeated here, so a visitor's stream of rejected requests costs no Durable Object call each.
    const current = held.get(key);
    if (current?.lease.token === token && outcome.retryAt !== undefined) current.kept = { outcome, until: Math.min(outcome.retryAt, clock.now() + MAX_NEGATIVE_MS) };
    return outcome;
  }
  return hold(upstream, key, ref, outcome);
}

/**
 * A request made with `lease`'s token at `sentAt` was answered without a rejection. A sliding token
 * is extended from that use here at once (`leaseAfterUse`); the store hears of it once per token
 * (so it knows the token works) and, for sliding tokens, every `slide.reportEveryMs`.
 */
export function reportUse(lease: TokenLease, sentAt: number, waitUntil?: WaitUntil): void {
  const h = holderOf.get(lease);
  if (h === undefined || held.get(h.key) !== h) return;
  const extended = leaseAfterUse(h.lease, sentAt);
  if (extended !== undefined) replaceLease(h, extended);
  const slide = h.lease.slide;
  if (h.acceptReported && !(slide !== undefined && sentAt - h.lastReportedAt >= slide.reportEveryMs)) return;
  h.acceptReported = true;
  h.lastReportedAt = sentAt;
  const { ref, upstream } = h;
  const report = upstream
    .store()
    .reportUse({ ...ref, token: h.lease.token, usedAt: sentAt })
    .catch((err: unknown) => logStoreFailure(ref, err));
  if (waitUntil !== undefined) waitUntil(report);
}

/** Forget every cached token and answer of this isolate (tests, credential rotation). */
export function clearIsolateCache(): void {
  held.clear();
  refusals.clear();
}

/** One store call per key at a time in this isolate; a failed call is `store_unreachable`. */
function shared(key: string, ref: StoreRef, call: () => Promise<TokenOutcome | RejectionOutcome>): Promise<TokenOutcome | RejectionOutcome> {
  let p = pending.get(key);
  if (p === undefined) {
    p = call().catch((err: unknown): TokenUnavailable => {
      logStoreFailure(ref, err);
      return { kind: 'unavailable', reason: 'store_unreachable', detail: 'the token store could not be reached; try again', retryAt: clock.now() + STORE_RETRY_MS };
    });
    pending.set(key, p);
    void p.finally(() => pending.delete(key));
  }
  return p;
}

/** Keep what the store answered: a lease to reuse, or a refusal to repeat for a while. */
function hold<T extends TokenOutcome>(upstream: Upstream, key: string, ref: StoreRef, outcome: T): T | TokenUnavailable {
  const now = clock.now();
  if (outcome.kind === 'unavailable') {
    if (outcome.retryAt !== undefined && outcome.retryAt - now > STORE_RETRY_MS) {
      refusals.set(key, { outcome, until: Math.min(outcome.retryAt, now + MAX_NEGATIVE_MS) });
    }
    return outcome;
  }
  refusals.delete(key);
  if (now >= outcome.usableUntil) {
    return { kind: 'unavailable', reason: 'outage', detail: 'the token store returned a token that is no longer usable', retryAt: now + STORE_RETRY_MS };
  }
  const prev = held.get(key);
  if (prev?.lease.token === outcome.token) {
    // The same token again: keep what this isolate knows of it (reports, a kept answer, its uses).
    replaceLease(prev, { ...outcome, usableUntil: Math.max(prev.lease.usableUntil, outcome.usableUntil) });
    return prev.lease as T;
  }
  const h: Held = { lease: outcome, upstream, ref, key, acceptReported: false, lastReportedAt: -Infinity };
  held.set(key, h);
  holderOf.set(outcome, h);
  return outcome;
}

/** A holder's lease is now `lease` (leases handed out earlier still find their holder). */
function replaceLease(h: Held, lease: TokenLease): void {
  h.lease = lease;
  holderOf.set(lease, h);
}

/** The store call failed (overloaded, being reset): logged by name only, never a token. */
function logStoreFailure(ref: StoreRef, err: unknown): void {
  logEvent('token_store_unreachable', { upstream: ref.upstream, scope: ref.scope, error: err instanceof Error ? err.name : typeof err }, 'error');
}
