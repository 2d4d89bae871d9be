/**
 * @module Token engine: applies the policy to one credential set's state, with its I/O injected.
 *
 * Single-flight refreshes per scope set, refresh-ahead in the background while the current token is
 * still good, bounded retries within a deadline (one more at once when the endpoint refused a
 * client assertion: a fresh one may pass), rejection reports that replace a token only when a
 * replacement can be had. It sends token requests and persists state only through `EngineIO`, so
 * the TokenStore Durable Object (storage, egress, logs) and the Node-side contract tests (a fake
 * endpoint) run the very same code.
 */
import { clock, secondsUntil } from '../clock';
import type { TokenEvent } from '../log';
import type { GrantResult } from './grant';
import type { RejectionOutcome, TokenOutcome, TokenUnavailable } from './outcome';
import {
  holdToken,
  isUsable,
  judgeRejection,
  leaseOf,
  mayRequest,
  recordFailedCycle,
  recordIssued,
  recordSend,
  recordUse,
  refreshAt,
  startDistrust,
  type CredentialState,
  type CycleFailure,
  type Policy,
  type RequestCause,
  type SendGate,
} from './policy';

/** What the engine needs from its host. */
export interface EngineIO {
  /**
   * Send one token request for `scope`, reading its answer within `timeoutMs`. Never throws.
   * `afterRefusal`: the previous request of this cycle was refused with `freshRetry`.
   */
  request(scope: string, timeoutMs: number, afterRefusal: boolean): Promise<GrantResult>;
  /** Persist the state (called after every change; cheap, synchronous). */
  save(): void;
  /** A structured log line (docs/operations.md, the event table); never a token or credential. */
  log(event: TokenEvent, scope: string, fields?: Record<string, unknown>): void;
}

/** The credential set's limits on one refresh cycle. */
export interface CycleLimits {
  maxAttempts: number;
  /** Whole time one cycle (all attempts, body reads included) may take, in real ms. */
  timeoutMs: number;
}

/** While a background refresh runs, isolates holding the old token ask again this soon. */
export const BACKGROUND_RECHECK_MS = 1_000;
/** Pause before the second attempt of a cycle; doubled for each further one (full jitter). */
const RETRY_BASE_MS = 100;

export class TokenEngine {
  /** The refresh under way per scope set, shared by every caller. */
  private readonly inflight = new Map<string, Promise<TokenOutcome>>();

  constructor(
    readonly state: CredentialState,
    readonly policy: Policy,
    private readonly limits: CycleLimits,
    private readonly io: EngineIO,
  ) {}

  /** A token that is good to use now, fetching one if needed and allowed. */
  async getToken(scope: string): Promise<TokenOutcome> {
    const { state: s, policy: p } = this;
    const now = clock.now();
    const cur = s.tokens[scope];
    if (cur !== undefined && now < refreshAt(cur, p)) return leaseOf(cur, p);
    const running = this.inflight.get(scope);
    if (cur !== undefined && isUsable(cur, p, now)) {
      // Due for a refresh but still good: refresh in the background, hand out the current token.
      if (running === undefined) {
        const gate = mayRequest(s, p, now, 'expiring');
        if (!gate.ok) {
          // The current token stays in use meanwhile; isolates ask again when the gate opens.
          this.blocked(scope, gate, 'expiring', now);
          return leaseOf(cur, p, gate.at);
        }
        // Nobody waits for it: a failure (storage) is logged, and the next caller tries again.
        this.refresh(scope, 'expiring').catch((e: unknown) => this.io.log('token_refresh_crashed', scope, { error: e instanceof Error ? e.name : typeof e }));
      }
      return leaseOf(cur, p, now + BACKGROUND_RECHECK_MS);
    }
    if (running !== undefined) return running;
    const cause: RequestCause = cur === undefined ? 'cold' : 'expired';
    const gate = mayRequest(s, p, now, cause);
    if (!gate.ok) {
      this.blocked(scope, gate, cause, now);
      return unavailable(gate);
    }
    return this.refresh(scope, cause);
  }

  /**
   * The API rejected `token`. If it is no longer current, the current one is returned. If it is,
   * it is replaced only when a token request may be sent now, and kept (never deleted) until the
   * new one is stored. A freshly issued replacement that is rejected too makes the engine distrust
   * the API's rejections for a while: they are not about the token, and visitors cannot spend the
   * budget by sending requests the API refuses.
   */
  async reportRejected(scope: string, token: string): Promise<RejectionOutcome> {
    const { state: s, policy: p } = this;
    const now = clock.now();
    s.counts.rejectionsReported++;
    const verdict = judgeRejection(s, scope, token, now);
    switch (verdict.kind) {
      case 'stale':
        this.io.save();
        return this.getToken(scope);
      case 'ignore':
        s.counts.rejectionsIgnored++;
        this.io.save();
        this.io.log('token_rejected_by_api', scope, { action: 'ignore', until: new Date(verdict.until).toISOString() });
        return ignored(verdict.until);
      case 'distrust': {
        const until = startDistrust(s, now);
        s.counts.rejectionsIgnored++;
        this.io.save();
        this.io.log('token_rejected_by_api', scope, { action: 'distrust', until: new Date(until).toISOString() });
        return ignored(until);
      }
      case 'replace': {
        const running = this.inflight.get(scope);
        if (running !== undefined) {
          const r = await running;
          if (r.kind === 'token' && r.token !== token) return r;
        }
        const gate = mayRequest(s, p, clock.now(), 'rejected');
        this.io.save();
        if (!gate.ok) {
          this.io.log('token_rejected_by_api', scope, { action: 'keep', because: gate.reason, retry_in_s: secondsUntil(gate.at, now) });
          return { kind: 'kept', why: gate.reason, detail: `no replacement can be had now: ${gate.detail}`, retryAt: gate.at };
        }
        this.io.log('token_rejected_by_api', scope, { action: 'replace' });
        const r = await this.refresh(scope, 'rejected');
        if (r.kind === 'token') return r;
        return { kind: 'kept', why: r.reason, detail: `no replacement could be had: ${r.detail}`, ...(r.retryAt === undefined ? {} : { retryAt: r.retryAt }) };
      }
    }
  }

  /** A request made with `token` at `usedAt` was answered without a rejection. */
  reportUse(scope: string, token: string, usedAt: number): void {
    if (recordUse(this.state, scope, token, usedAt, clock.now())) this.io.save();
  }

  /** Start (or join) the refresh of a scope set's token. */
  private refresh(scope: string, cause: RequestCause): Promise<TokenOutcome> {
    let running = this.inflight.get(scope);
    if (running === undefined) {
      running = this.cycle(scope, cause).finally(() => this.inflight.delete(scope));
      this.inflight.set(scope, running);
    }
    return running;
  }

  /** One refresh cycle: up to `maxAttempts` token requests, each allowed by the policy, within the deadline. */
  private async cycle(scope: string, cause: RequestCause): Promise<TokenOutcome> {
    const { state: s, policy: p, io } = this;
    const deadline = Date.now() + this.limits.timeoutMs;
    let failure: CycleFailure = { kind: 'transient', detail: 'token request not sent' };
    // A refused client assertion gets one more request per cycle, with a fresh assertion.
    let freshUsed = false;
    let afterRefusal = false;
    for (let attempt = 1; attempt <= this.limits.maxAttempts; attempt++) {
      const now = clock.now();
      const why: RequestCause = attempt === 1 ? cause : 'retry';
      const gate = mayRequest(s, p, now, why);
      if (!gate.ok) {
        this.blocked(scope, gate, why, now);
        if (attempt === 1) return unavailable(gate);
        break;
      }
      const remaining = deadline - Date.now();
      if (remaining <= 0) break;

      // Counted before it leaves, so a crash mid-request still counts against the budget.
      const record = recordSend(s, p, now, why);
      io.save();
      const result = await io.request(scope, remaining, afterRefusal);
      record.doneAt = clock.now();
      if (result.ok) {
        const held = holdToken(result.value.token, result.value, now, p, cause === 'rejected');
        // A token already inside its skew on arrival (a lifetime shorter than the round trip, a JWT
        // `exp` about to pass) can never be injected: as useless as no token.
        if ('invalid' in held || !isUsable(held, p, clock.now())) {
          const why = 'invalid' in held ? held.invalid : 'the token expires before it can be used';
          failure = { kind: 'invalid_answer', detail: `token endpoint answer: ${why}` };
          io.log('token_request_failed', scope, { attempt, kind: failure.kind, detail: failure.detail });
          break;
        }
        recordIssued(s, scope, held);
        io.save();
        // The rejected token is gone only now: until its replacement was stored, it stayed in use.
        if (cause === 'rejected') io.log('token_invalidated', scope);
        io.log(cause === 'expiring' ? 'token_refreshed' : 'token_fetched', scope, { attempt, cause, lifetime_s: Math.round(held.lifetimeMs / 1000) });
        return leaseOf(held, p);
      }
      io.save();
      failure = result.failure;
      io.log('token_request_failed', scope, { attempt, kind: failure.kind, detail: failure.detail });
      const fresh = failure.freshRetry === true && !freshUsed;
      if ((failure.kind !== 'transient' && !fresh) || attempt === this.limits.maxAttempts) break;
      afterRefusal = fresh;
      if (fresh) {
        // Nothing to wait for: it was that one assertion the endpoint refused.
        freshUsed = true;
        continue;
      }
      // Full-jitter exponential backoff, never past the deadline.
      const cap = RETRY_BASE_MS * 2 ** (attempt - 1);
      const pause = Math.min(cap / 2 + Math.random() * (cap / 2), deadline - Date.now());
      if (pause <= 0) break;
      await new Promise((r) => setTimeout(r, pause));
    }
    recordFailedCycle(s, p, failure, clock.now());
    io.save();
    const block = s.block!;
    io.log('token_cooldown_started', scope, { reason: block.reason, cooldown_s: secondsUntil(block.until, clock.now()) });
    return { kind: 'unavailable', reason: block.reason, detail: block.detail, retryAt: block.until };
  }

  /** A token request for `cause` was not sent: the budget is spent, or a cool-down is on. */
  private blocked(scope: string, gate: Extract<SendGate, { ok: false }>, cause: RequestCause, now: number): void {
    const retry_in_s = secondsUntil(gate.at, now);
    if (gate.reason === 'budget') this.io.log('token_budget_blocked', scope, { cause, retry_in_s });
    else this.io.log('token_cooldown_blocked', scope, { cause, reason: gate.reason, retry_in_s });
  }
}

function unavailable(gate: Extract<SendGate, { ok: false }>): TokenUnavailable {
  return { kind: 'unavailable', reason: gate.reason, detail: gate.detail, retryAt: gate.at };
}

function ignored(until: number): RejectionOutcome {
  return {
    kind: 'kept',
    why: 'rejections_ignored',
    detail: `the API rejected a freshly issued token too, so its rejections are not taken to be about the token until ${new Date(until).toISOString()}`,
    retryAt: until,
  };
}

