/**
 * @module Token outcomes: what the token engine answers, shared by the TokenStore, the isolate
 * cache and the gateway. Times are absolute (epoch ms on the injectable clock); the gateway turns
 * them into HTTP answers in one place (`gateway/token-problems.ts`). No outcome ever carries a
 * credential; only a lease carries the token, and only for injection.
 */

/**
 * A token that may be injected now, and until when (made by `leaseOf` in policy.ts, extended only by
 * `leaseAfterUse`).
 */
export interface TokenLease {
  kind: 'token';
  token: string;
  /** Never inject at or after this (expiry minus skew; for a sliding token, as of the last use known). */
  usableUntil: number;
  /** Ask the store again at this time (refresh-ahead for fixed expiry; = usableUntil when sliding). */
  refreshAt: number;
  /** A sliding token: how an accepted use extends it (results of the policy, not its inputs). */
  slide?: {
    /** A use at `t` makes it usable until `t + byMs`... */
    byMs: number;
    /** ...but never past this (a JWT's `exp` minus the skew), and then refreshed ahead at `hardRefreshAt`. */
    hardUsableUntil: number;
    hardRefreshAt: number;
    /** Uses are reported to the store at least this often, so every isolate's uses keep it alive. */
    reportEveryMs: number;
  };
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

/** Where a request's token came from: this isolate's cache (no Durable Object call), or the TokenStore. */
export type TokenSource = 'cached' | 'store';

/**
 * Reasons a token may be had soon without anything being fixed: the budget or a throttling
 * endpoint's cool-down (a rollover under a one-per-lifetime budget), or a deploy under way. Not an
 * outage: its retries are likely to fail too, and a caller is better told at once.
 */
const PASSING: ReadonlySet<UnavailableReason> = new Set(['budget', 'throttled', 'config_changing']);

/**
 * How long a caller that may wait until `holdUntil` should wait for `o` before asking again, or
 * undefined when waiting is no use (the credentials or the config are wrong, or the token comes
 * later than the caller may wait). Pure: the isolate cache applies it.
 */
export function waitFor(o: TokenUnavailable, now: number, holdUntil: number): number | undefined {
  if (!PASSING.has(o.reason) || o.retryAt === undefined || o.retryAt > holdUntil) return undefined;
  return Math.max(0, o.retryAt - now);
}
