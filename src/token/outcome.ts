/**
 * @module Token outcomes: what the token engine answers, shared by the TokenStore, the isolate
 * cache and the gateway. Times are absolute (epoch ms on the injectable clock); the gateway turns
 * them into HTTP answers in one place (`gateway/token-problems.ts`). No outcome ever carries a
 * credential; only a lease carries the token, and only for injection.
 */

/** A token that may be injected now, and until when. */
export interface TokenLease {
  kind: 'token';
  token: string;
  /** Never inject after this (expiry minus skew; for a sliding token, as of the last use known). */
  usableUntil: number;
  /** Ask the store again after this (refresh-ahead for fixed expiry; = usableUntil when sliding). */
  refreshAt: number;
  sliding: boolean;
  /** Sliding tokens: lifetime counted from each use, and the skew the policy applies to it. */
  lifetimeMs: number;
  skewMs: number;
  /** Sliding tokens with a hard end too (a JWT `exp`): never usable past this, whatever the use. */
  hardUsableUntil: number;
  /** ...and when to refresh ahead of that hard end. */
  hardRefreshAt: number;
}

/**
 * Why no token can be had. `budget`, `throttled`, `outage`: wait until `retryAt`. `refused`,
 * `invalid_answer`, `misconfigured`: the token endpoint or its config is wrong (retried with
 * backoff). `store_unreachable`, `config_changing`: a passing state of the Worker itself.
 * `config`: the Worker's config is invalid.
 */
export type UnavailableReason =
  | 'budget'
  | 'throttled'
  | 'outage'
  | 'refused'
  | 'invalid_answer'
  | 'misconfigured'
  | 'store_unreachable'
  | 'config_changing'
  | 'config';

export interface TokenUnavailable {
  kind: 'unavailable';
  reason: UnavailableReason;
  /** For people: built from statuses, OAuth error codes and config key names only, never a value. */
  detail: string;
  /** No token before this; absent when waiting will not help. */
  retryAt?: number;
}

/**
 * The API rejected the current token, and it was kept rather than replaced: because the API has
 * rejected freshly issued tokens too (`rejections_ignored`: its rejections are not about the token),
 * or because no replacement can be had now (the reason no token request may be sent).
 */
export interface TokenKept {
  kind: 'kept';
  why: 'rejections_ignored' | UnavailableReason;
  detail: string;
  retryAt?: number;
}

export type TokenOutcome = TokenLease | TokenUnavailable;

/** The answer to "the API rejected this token": a token to retry with, or why there is none. */
export type RejectionOutcome = TokenLease | TokenUnavailable | TokenKept;
