/**
 * @module The status report: what each credential set's TokenStore says about its tokens, budget,
 * cool-down, failures and rejections, in figures an operator can act on — never a token.
 *
 * Every configured upstream is asked (its fingerprint computed by this isolate, as for a token),
 * in parallel; one that cannot be asked is reported as such, not left out. Times are ISO 8601 and
 * seconds from now, on the same clock the token engine reads.
 */
import { clock, secondsUntil } from '../clock';
import type { PacerUnavailable, PacingStatus } from '../pacing/pacer-api';
import type { CredentialSetStatus } from '../token/store-api';
import type { Upstream, Wiring } from '../upstream';

/** One scope set's token. */
export interface ScopeReport {
  /** The normalised scope set ('' for none). */
  scope: string;
  /** A token usable now is held. */
  has_token: boolean;
  /** Seconds until the token expires as far as we know (0 once past). */
  expires_in_s?: number;
  /** Seconds until it is no longer injected (expiry minus the skew). */
  usable_for_s?: number;
  /** Seconds until it is refreshed ahead (0: due now). */
  refresh_in_s?: number;
  /** When the token held was requested: its last refresh. */
  last_refresh?: string;
  /** The API has accepted a request made with it. */
  accepted?: boolean;
  /** It replaced a token the API rejected. */
  replacement?: boolean;
}

/** One credential set (an upstream under this deploy's config). */
export interface CredentialSetReport {
  upstream: string;
  /** The first 8 hex digits of the credential set's fingerprint: a new value is a new TokenStore. */
  credential_set: string;
  /** Why the TokenStore could not tell; nothing else is reported then. */
  error?: string;
  scopes?: ScopeReport[];
  budget?: {
    max_requests: number;
    window_seconds: number;
    /** Set as `token_budget` (a hard limit), or the default storm guard. */
    explicit: boolean;
    /** Token requests that count against it now. */
    requests_in_window: number;
  };
  /** No token request until `until`: throttled by the endpoint or backing off after failures. */
  cooldown?: { reason: string; detail: string; until: string; remaining_s: number } | null;
  failures?: { consecutive: number; failed_cycles: number };
  rejections?: { reported: number; ignored: number; distrusted_until: string | null };
  tokens_issued?: number;
  /** The API's pace and quota as the credential set's Pacer keeps them (upstreams with `pacing`). */
  pacing?: PacingReport | { error: string };
  last_token_request?: { sent_at: string; cause: string; answered: boolean } | null;
}

/** One credential set's pacing, in figures. */
export interface PacingReport {
  requests_per_second: number;
  calls_last_minute: number;
  calls_today: number;
  /** The daily quota: calls left, and when it resets (absent without one). */
  quota?: { per_day: number; left: number; resets_at: string; resets_in_s: number };
  callers_waiting: number;
  batches_sent: number;
  /** Records per batch call: mean and largest (0 before any batch). */
  records_per_batch: { mean: number; max: number };
  /** Time from a call's or record's arrival to its slot, over recent ones (ms); null before any. */
  wait_ms: { p50: number | null; p99: number | null };
}

export interface StatusReport {
  generated_at: string;
  credential_sets: CredentialSetReport[];
}

const iso = (ms: number) => new Date(ms).toISOString();
const secondsFrom = (now: number, ms: number) => secondsUntil(ms, now);

/** The report for `upstreams` (all configured ones by default, broken ones too). */
export async function statusReport(wiring: Wiring, upstreams: string[] = [...Object.keys(wiring.config.upstreams), ...Object.keys(wiring.config.broken.upstreams)]): Promise<StatusReport> {
  const sets = await Promise.all(
    upstreams.map((name) => {
      const u = wiring.upstreams.get(name);
      // A broken upstream has no TokenStore to ask: its keys (never values) say why.
      return u === undefined ? { upstream: name, credential_set: '', error: `invalid configuration: ${(wiring.config.broken.upstreams[name] ?? []).join('; ')}` } : credentialSetReport(u);
    }),
  );
  return { generated_at: iso(clock.now()), credential_sets: sets };
}

async function credentialSetReport(u: Upstream): Promise<CredentialSetReport> {
  const head = { upstream: u.name, credential_set: u.fingerprint.slice(0, 8) };
  let s: CredentialSetStatus | { kind: 'unavailable'; detail: string };
  try {
    s = await u.store().status(u.ref(''));
  } catch {
    return { ...head, error: 'the token store could not be reached' };
  }
  if (!('scopes' in s)) return { ...head, error: s.detail };
  const pacing = u.pacer === undefined ? undefined : await pacingReport(u);
  return { ...head, ...figures(s, clock.now()), ...(pacing === undefined ? {} : { pacing }) };
}

async function pacingReport(u: Upstream): Promise<PacingReport | { error: string }> {
  let p: PacingStatus | PacerUnavailable;
  try {
    p = await u.pacer!().status(u.pacerRef);
  } catch {
    return { error: 'the pacer could not be reached' };
  }
  if ('kind' in p) return { error: p.detail };
  const now = clock.now();
  return {
    requests_per_second: p.requestsPerSecond,
    calls_last_minute: p.callsLastMinute,
    calls_today: p.callsToday,
    ...(p.perDay === undefined || p.quotaLeft === undefined || p.quotaResetsAt === undefined
      ? {}
      : { quota: { per_day: p.perDay, left: p.quotaLeft, resets_at: iso(p.quotaResetsAt), resets_in_s: secondsFrom(now, p.quotaResetsAt) } }),
    callers_waiting: p.waitingNow,
    batches_sent: p.batchesSent,
    records_per_batch: { mean: p.batchesSent === 0 ? 0 : Math.round((p.recordsSent / p.batchesSent) * 10) / 10, max: p.largestBatch },
    wait_ms: { p50: p.waitP50Ms ?? null, p99: p.waitP99Ms ?? null },
  };
}

/** The store's token-free view as report figures. */
function figures(s: CredentialSetStatus, now: number): Omit<CredentialSetReport, 'upstream' | 'credential_set'> {
  return {
    scopes: s.scopes.map((t) => ({
      scope: t.scope,
      has_token: t.hasToken,
      ...(t.expiresAt === undefined ? {} : { expires_in_s: secondsFrom(now, t.expiresAt) }),
      ...(t.usableUntil === undefined ? {} : { usable_for_s: secondsFrom(now, t.usableUntil) }),
      ...(t.refreshAt === undefined ? {} : { refresh_in_s: secondsFrom(now, t.refreshAt) }),
      ...(t.obtainedAt === undefined ? {} : { last_refresh: iso(t.obtainedAt) }),
      ...(t.accepted === undefined ? {} : { accepted: t.accepted }),
      ...(t.replacement === undefined ? {} : { replacement: t.replacement }),
    })),
    budget: { max_requests: s.budget.max, window_seconds: s.budget.windowSeconds, explicit: s.budget.explicit, requests_in_window: s.budget.inWindow },
    cooldown: s.block === undefined ? null : { reason: s.block.reason, detail: s.block.detail, until: iso(s.block.until), remaining_s: secondsFrom(now, s.block.until) },
    failures: { consecutive: s.failures, failed_cycles: s.counts.failedCycles },
    rejections: { reported: s.counts.rejectionsReported, ignored: s.counts.rejectionsIgnored, distrusted_until: s.distrust === undefined ? null : iso(s.distrust.until) },
    tokens_issued: s.counts.issued,
    last_token_request: s.lastRequest === undefined ? null : { sent_at: iso(s.lastRequest.sentAt), cause: s.lastRequest.cause, answered: s.lastRequest.doneAt !== undefined },
  };
}
