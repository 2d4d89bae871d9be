/**
 * @module Token policy: when a token is usable, when to refresh it, when a token request may be
 * sent, and what a rejected token means. Pure functions of state and a time (no I/O, no clock of
 * their own), so every rule can be read and tested here; the TokenStore applies them and the
 * isolate cache reuses their results.
 *
 * Times are epoch milliseconds. A token's expiry is anchored at the moment its request was *sent*,
 * the earliest the issuer can have issued it, so the round trip never makes us think a token lives
 * longer than it does; a skew (Go's oauth2 `expiryDelta`) is kept on top for clock differences.
 */
import type { UpstreamConfig } from '../config/schema';
import type { TokenLease } from './outcome';

/** Never use a token in the last 10 s of its life (Go's oauth2 expiryDelta)... */
export const SKEW_MS = 10_000;
/** ...nor in the last 1/20 of it, for short-lived tokens; the refresh-ahead margin is capped alike. */
export const LIFETIME_SHARE = 20;
/**
 * Added to the budget window: the upstream counts a token request from its arrival, which we bound
 * by the moment its answer came back; this covers clocks that count in whole seconds.
 */
export const BUDGET_SLACK_MS = 2_000;
/** Longest pause between failed refresh cycles during an outage (1 s, 2 s, 4 s … 60 s). */
export const MAX_OUTAGE_BACKOFF_MS = 60_000;
/** Longest cool-down a throttling endpoint can impose with `Retry-After` (a hostile value is capped). */
export const MAX_THROTTLE_MS = 24 * 3_600_000;
/**
 * Without an explicit `token_budget`, the default guard (10 per minute) stops storms but never the
 * one-per-lifetime refresh of a token that is expiring or expired; those are spaced by this at least.
 */
export const GUARD_MIN_INTERVAL_MS = 1_000;
/** How long the API's rejections are ignored once a fresh token was rejected too: 10 min, doubling to 1 h. */
export const DISTRUST_BASE_MS = 10 * 60_000;
export const DISTRUST_MAX_MS = 60 * 60_000;

/** The rules of one credential set, from its upstream's config. */
export interface Policy {
  sliding: boolean;
  refreshMarginMs: number;
  defaultLifetimeMs: number;
  /** `explicit`: set in config, a hard limit. Otherwise the default storm guard. */
  budget: { max: number; windowMs: number; explicit: boolean };
  /** Longest one token request may take (its deadline): bounds when an unanswered request arrived. */
  requestTimeoutMs: number;
  /** Cool-down after a throttling answer that names no Retry-After. */
  throttleCooldownMs: number;
}

/** The default guard when `token_budget` is not set. */
export const DEFAULT_BUDGET = { max_requests: 10, window_seconds: 60 } as const;

export function policyOf(u: UpstreamConfig): Policy {
  const budget = u.token_budget ?? DEFAULT_BUDGET;
  return {
    sliding: u.expiry === 'sliding',
    refreshMarginMs: u.refresh_margin_seconds * 1000,
    defaultLifetimeMs: u.default_lifetime_seconds * 1000,
    budget: { max: budget.max_requests, windowMs: budget.window_seconds * 1000, explicit: u.token_budget !== undefined },
    requestTimeoutMs: u.token_timeout_ms,
    throttleCooldownMs: u.cooldown_seconds * 1000,
  };
}

// ---------------------------------------------------------------------------------------------
// Validity
// ---------------------------------------------------------------------------------------------

/** A token held by the store. */
export interface HeldToken {
  token: string;
  /** When the request that obtained it was sent: the earliest the issuer can have issued it. */
  sentAt: number;
  /**
   * Fixed expiry: when it stops working. Sliding expiry: a hard end on top of the sliding one (a
   * JWT's `exp`), or `NO_HARD_END`.
   */
  expiresAt: number;
  /** Fixed: `expiresAt − sentAt`. Sliding: the lifetime counted from each use. */
  lifetimeMs: number;
  /** Sliding: the most recent use known to have reached the API (starts at `sentAt`). */
  lastUsedAt: number;
  /** Obtained because the token before it was reported rejected. */
  replacement: boolean;
  /** When an API first answered a request made with it without rejecting it. */
  acceptedAt?: number;
}

/** `expiresAt` of a sliding token that has no hard end (JSON keeps it, unlike Infinity). */
export const NO_HARD_END = Number.MAX_SAFE_INTEGER;

/** The skew kept before a token's expiry: 10 s, or 1/20 of a short lifetime. */
export function skewMs(lifetimeMs: number): number {
  return Math.min(SKEW_MS, lifetimeMs / LIFETIME_SHARE);
}

/** When the issuer will stop accepting the token, as far as we know. */
export function expiryOf(t: HeldToken, p: Pick<Policy, 'sliding'>): number {
  return p.sliding ? Math.min(t.lastUsedAt + t.lifetimeMs, t.expiresAt) : t.expiresAt;
}

/** The one validity rule: never inject a token at or after this time. */
export function usableUntil(t: HeldToken, p: Pick<Policy, 'sliding'>): number {
  return expiryOf(t, p) - skewMs(t.lifetimeMs);
}

export function isUsable(t: HeldToken, p: Pick<Policy, 'sliding'>, now: number): boolean {
  return now < usableUntil(t, p);
}

/** How far ahead of the end of use a token is refreshed: the margin, capped at 1/20 of its lifetime. */
function refreshMarginOf(t: Pick<HeldToken, 'lifetimeMs'>, p: Pick<Policy, 'refreshMarginMs'>): number {
  return Math.min(p.refreshMarginMs, t.lifetimeMs / LIFETIME_SHARE);
}

/**
 * When to fetch the next token. Fixed expiry: `refresh_margin_seconds` ahead of the end of use
 * (capped at 1/20 of the lifetime, so a 5 s token is not refreshed at half-life). Sliding: never
 * ahead, since each use extends the token and an early refresh buys nothing.
 */
export function refreshAt(t: HeldToken, p: Pick<Policy, 'sliding' | 'refreshMarginMs'>): number {
  const end = usableUntil(t, p);
  // Sliding: only a hard end (a JWT's exp) that comes first is worth refreshing ahead of.
  if (p.sliding && slidingEndFirst(t.lastUsedAt + t.lifetimeMs, t.expiresAt)) return end;
  return end - refreshMarginOf(t, p);
}

/** Whether a sliding token's end from its last use comes before its hard end (then it is not refreshed ahead). */
function slidingEndFirst(slidEnd: number, hardEnd: number): boolean {
  return slidEnd < hardEnd;
}

/**
 * What a holder (an isolate) may do with a held token: use it until `usableUntil`, ask the store
 * again at `refreshAt` (sooner with `recheckAt`), and, for a sliding token, how each accepted use
 * extends it. The lease carries these results, never the rule's inputs: `leaseAfterUse` is the only
 * way to extend it, so the store and the isolate cache apply the same rule.
 */
export function leaseOf(t: HeldToken, p: Policy, recheckAt?: number): TokenLease {
  const until = usableUntil(t, p);
  const lease: TokenLease = { kind: 'token', token: t.token, usableUntil: until, refreshAt: Math.min(recheckAt ?? refreshAt(t, p), until) };
  if (!p.sliding) return lease;
  const skew = skewMs(t.lifetimeMs);
  const hardUsableUntil = t.expiresAt === NO_HARD_END ? NO_HARD_END : t.expiresAt - skew;
  return {
    ...lease,
    slide: {
      byMs: t.lifetimeMs - skew,
      hardUsableUntil,
      hardRefreshAt: hardUsableUntil === NO_HARD_END ? NO_HARD_END : hardUsableUntil - refreshMarginOf(t, p),
      reportEveryMs: t.lifetimeMs / SLIDING_REPORTS_PER_LIFETIME,
    },
  };
}

/** A sliding token's uses are reported to the store this many times per lifetime at least. */
export const SLIDING_REPORTS_PER_LIFETIME = 4;

/**
 * The lease after a use at `usedAt` that the API accepted: a sliding token is usable for its
 * lifetime (minus the skew) from that use, never past its hard end, and refreshed ahead only of a
 * hard end that comes first (as `refreshAt`). Undefined when the use changes nothing.
 */
export function leaseAfterUse(lease: TokenLease, usedAt: number): TokenLease | undefined {
  const s = lease.slide;
  if (s === undefined) return undefined;
  const slid = usedAt + s.byMs;
  const until = Math.min(slid, s.hardUsableUntil);
  if (until <= lease.usableUntil) return undefined;
  return { ...lease, usableUntil: until, refreshAt: slidingEndFirst(slid, s.hardUsableUntil) ? until : s.hardRefreshAt };
}

/** What a token answer said about its lifetime (already checked by the grant). */
export interface AnsweredLifetime {
  /** `expires_in`, seconds, positive. */
  expiresInS?: number;
  /** The JWT's `exp`, epoch seconds. */
  jwtExp?: number;
}

/**
 * The held token for an answer to a request sent at `sentAt`. `expires_in` counts from `sentAt`
 * (relative, so immune to the issuer's clock); failing that a JWT's `exp` is taken as it is (not
 * shifted by the round trip); failing both, the configured default. Returns a message naming the
 * problem when the answer cannot give a usable token.
 */
export function holdToken(
  token: string,
  answered: AnsweredLifetime,
  sentAt: number,
  p: Pick<Policy, 'sliding' | 'defaultLifetimeMs'>,
  replacement: boolean,
): HeldToken | { invalid: string } {
  let lifetimeMs: number;
  let expiresAt: number;
  if (answered.expiresInS !== undefined) {
    lifetimeMs = answered.expiresInS * 1000;
    expiresAt = p.sliding ? NO_HARD_END : sentAt + lifetimeMs;
  } else if (answered.jwtExp !== undefined) {
    const exp = answered.jwtExp * 1000;
    if (exp <= sentAt) return { invalid: 'the token\'s "exp" is not in the future' };
    lifetimeMs = p.sliding ? p.defaultLifetimeMs : exp - sentAt;
    expiresAt = exp;
  } else {
    lifetimeMs = p.defaultLifetimeMs;
    expiresAt = p.sliding ? NO_HARD_END : sentAt + lifetimeMs;
  }
  return { token, sentAt, expiresAt, lifetimeMs, lastUsedAt: sentAt, replacement };
}

// ---------------------------------------------------------------------------------------------
// When a token request may be sent
// ---------------------------------------------------------------------------------------------

/**
 * Why a token request is made. `expiring`/`expired`: the one-per-lifetime refresh; `cold`: no
 * token yet; `rejected`: the API rejected the current one; `retry`: another attempt in a cycle.
 */
export type RequestCause = 'cold' | 'expiring' | 'expired' | 'rejected' | 'retry';

export interface TokenRequestRecord {
  sentAt: number;
  /** When its answer came back, or it was given up; absent while under way (or if we crashed). */
  doneAt?: number;
  cause: RequestCause;
}

/** Why nothing may be sent now (besides the budget): the last failed cycle's kind. */
export type BlockReason = 'throttled' | 'outage' | 'refused' | 'invalid_answer' | 'misconfigured';

/** The state of one credential set: its tokens (one per scope set) and its token-request history. */
export interface CredentialState {
  tokens: Record<string, HeldToken>;
  /** Recent token requests, oldest first. */
  requests: TokenRequestRecord[];
  /** No token request before `until` (throttled, or backing off after failed cycles). */
  block?: { until: number; reason: BlockReason; detail: string };
  /** Failed refresh cycles in a row. */
  failures: number;
  /** The API's rejections are not taken to be about the token until `until`. */
  distrust?: { until: number; level: number };
  /** Counters for the status page. */
  counts: { issued: number; failedCycles: number; rejectionsReported: number; rejectionsIgnored: number };
}

export function emptyState(): CredentialState {
  return { tokens: {}, requests: [], failures: 0, counts: { issued: 0, failedCycles: 0, rejectionsReported: 0, rejectionsIgnored: 0 } };
}

/**
 * Until when a past token request counts against the budget: the window runs from its arrival at
 * the upstream, no later than when its answer came back (or, unanswered, its deadline), plus slack.
 */
export function countsUntil(r: TokenRequestRecord, p: Pick<Policy, 'budget' | 'requestTimeoutMs'>): number {
  return (r.doneAt ?? r.sentAt + p.requestTimeoutMs) + p.budget.windowMs + BUDGET_SLACK_MS;
}

/** The token requests that still count against the budget at `now`. */
export function inWindow(s: CredentialState, p: Pick<Policy, 'budget' | 'requestTimeoutMs'>, now: number): TokenRequestRecord[] {
  return s.requests.filter((r) => countsUntil(r, p) > now);
}

export type SendGate = { ok: true } | { ok: false; at: number; reason: 'budget' | BlockReason; detail: string };

/**
 * May a token request for `cause` leave at `now`? If not, the earliest time it may and why. One
 * rule for every scope set of the credential set: the budget and cool-downs are the credential
 * set's, as the upstream counts them.
 */
export function mayRequest(s: CredentialState, p: Policy, now: number, cause: RequestCause): SendGate {
  if (s.block !== undefined && now < s.block.until) return { ok: false, at: s.block.until, reason: s.block.reason, detail: s.block.detail };
  const live = inWindow(s, p, now);
  if (live.length < p.budget.max) return { ok: true };
  // The default guard lets the one-per-lifetime refresh through (spaced a little): it is there for
  // storms (rejections, retries), not for a steady load of short-lived tokens.
  const last = s.requests.at(-1);
  const scheduled = !p.budget.explicit && (cause === 'expiring' || cause === 'expired');
  if (scheduled && (last === undefined || now - last.sentAt >= GUARD_MIN_INTERVAL_MS)) return { ok: true };
  const frees = live.map((r) => countsUntil(r, p)).sort((a, b) => a - b);
  let at = frees[live.length - p.budget.max] ?? now;
  // A scheduled refresh held back only by the spacing may go as soon as the spacing ends.
  if (scheduled && last !== undefined) at = Math.min(at, last.sentAt + GUARD_MIN_INTERVAL_MS);
  const b = p.budget;
  return { ok: false, at, reason: 'budget', detail: `the token budget (${b.max} per ${b.windowMs / 1000} s) is spent` };
}

/** Record a token request about to leave (before it leaves: a crash mid-request still counts). */
export function recordSend(s: CredentialState, p: Policy, now: number, cause: RequestCause): TokenRequestRecord {
  const record: TokenRequestRecord = { sentAt: now, cause };
  // Keep what still counts, and the last one (the guard spaces refreshes from it).
  const keep = s.requests.filter((r, i) => countsUntil(r, p) > now || i === s.requests.length - 1);
  s.requests = [...keep, record];
  return record;
}

/** A token was obtained: hold it for its scope set; the endpoint works again. */
export function recordIssued(s: CredentialState, scope: string, t: HeldToken): void {
  s.tokens[scope] = t;
  s.failures = 0;
  s.counts.issued++;
  delete s.block;
}

/** What a failed token request said, as far as the policy cares. */
export interface CycleFailure {
  kind: 'transient' | 'throttled' | 'refused' | 'invalid_answer' | 'misconfigured';
  detail: string;
  /** The endpoint's Retry-After, in ms. */
  retryAfterMs?: number;
  /**
   * The refusal was of this one request's client assertion (a replayed `jti`, a key the server
   * does not have yet): one more request in the cycle, with a fresh assertion, may succeed.
   */
  freshRetry?: boolean;
}

/**
 * A refresh cycle failed: no token request until the endpoint's wait (throttled: its Retry-After,
 * else `cooldown_seconds`) or a backoff of 1 s, 2 s, 4 s … 60 s over consecutive failed cycles.
 */
export function recordFailedCycle(s: CredentialState, p: Policy, f: CycleFailure, now: number): void {
  s.failures++;
  s.counts.failedCycles++;
  const wait =
    f.kind === 'throttled'
      ? Math.min(f.retryAfterMs ?? p.throttleCooldownMs, MAX_THROTTLE_MS)
      : Math.min(1000 * 2 ** (s.failures - 1), MAX_OUTAGE_BACKOFF_MS);
  s.block = { until: now + wait, reason: f.kind === 'transient' ? 'outage' : f.kind, detail: f.detail };
}

// ---------------------------------------------------------------------------------------------
// Rejected tokens
// ---------------------------------------------------------------------------------------------

/**
 * What to do when the API rejected `token`:
 * - `stale`: it is no longer the current token (already replaced): use the current one;
 * - `ignore`: rejections are distrusted for now: keep the token;
 * - `distrust`: a freshly issued replacement was rejected too, so the API's rejections are not
 *   about the token: start distrusting them (`startDistrust`) and keep the token;
 * - `replace`: get a new token if one may be sent, keeping this one until it is stored.
 */
export type RejectionVerdict = { kind: 'stale' } | { kind: 'ignore'; until: number } | { kind: 'distrust' } | { kind: 'replace' };

export function judgeRejection(s: CredentialState, scope: string, token: string, now: number): RejectionVerdict {
  const cur = s.tokens[scope];
  if (cur === undefined || cur.token !== token) return { kind: 'stale' };
  if (s.distrust !== undefined && now < s.distrust.until) return { kind: 'ignore', until: s.distrust.until };
  // A replacement no API ever accepted, rejected in turn: a new token will not help.
  if (cur.replacement && cur.acceptedAt === undefined) return { kind: 'distrust' };
  return { kind: 'replace' };
}

/**
 * Distrust the API's rejections: 10 min, doubling each time it happens again within an hour of
 * the last period's end, up to 1 h. Returns when it ends.
 */
export function startDistrust(s: CredentialState, now: number): number {
  const prev = s.distrust;
  const level = prev !== undefined && now - prev.until < DISTRUST_MAX_MS ? prev.level + 1 : 0;
  const until = now + Math.min(DISTRUST_BASE_MS * 2 ** level, DISTRUST_MAX_MS);
  s.distrust = { until, level };
  return until;
}

/**
 * A request made with `token` at `usedAt` was answered without a rejection: the token is known to
 * work, and (sliding expiry) the upstream extended it from that use.
 */
export function recordUse(s: CredentialState, scope: string, token: string, usedAt: number, now: number): boolean {
  const cur = s.tokens[scope];
  if (cur === undefined || cur.token !== token) return false;
  const at = Math.min(usedAt, now);
  let changed = false;
  if (at > cur.lastUsedAt) {
    cur.lastUsedAt = at;
    changed = true;
  }
  if (cur.acceptedAt === undefined) {
    cur.acceptedAt = at;
    changed = true;
  }
  return changed;
}
