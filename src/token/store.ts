/**
 * @module TokenStore Durable Object: the one place a token is fetched, for the whole edge.
 *
 * One object per upstream and scope set (`idFromName`). It serialises refreshes globally
 * (single-flight, across isolates), keeps the token in its SQLite storage so eviction or restart
 * costs no token request, spends token requests within the upstream's budget, backs off when the
 * endpoint fails, and invalidates by compare-and-swap so a rejected token is replaced once.
 * Isolates talk to it through `token/cache.ts`; nothing else should.
 */
import { DurableObject } from 'cloudflare:workers';
import { ConfigError, loadConfig, readCredentials, sensitiveValues, type ConfigVars, type Credentials, type UpstreamConfig } from '../config';
import { clock } from '../clock';
import { egressFor, withTimeout, type Egress } from '../egress';
import { redact } from '../problem';
import { buildTokenRequest, readTokenResponse, type GrantFailure } from './grant';

/** What an isolate may do with a token: use it until `refreshAt`, never after `expiresAt`. */
export interface TokenLease {
  ok: true;
  token: string;
  /** Epoch ms after which the token must not be used (for sliding tokens: as of the last use known). */
  expiresAt: number;
  /** Epoch ms after which the isolate should ask the store again. */
  refreshAt: number;
  lifetimeMs: number;
  sliding: boolean;
}

/** No usable token: the caller answers with this status and Retry-After. */
export interface TokenUnavailable {
  ok: false;
  /** 500: configuration (a missing secret); 502: the upstream refused; 503: try again later. */
  status: 500 | 502 | 503;
  title: string;
  detail: string;
  retryAfterSeconds?: number;
}

export type TokenResult = TokenLease | TokenUnavailable;

/** Which token an RPC is about. */
export interface TokenKey {
  upstream: string;
  /** Normalised scope set (`scopeKey`), '' for none. */
  scope: string;
}

/** The Durable Object name for a key; one object per upstream and scope set. */
export function storeName(key: TokenKey): string {
  return JSON.stringify([key.upstream, key.scope]);
}

interface StoredToken {
  token: string;
  issuedAt: number;
  lifetimeMs: number;
  /** Most recent known use (sliding expiry counts from here). */
  lastUsedAt: number;
}

interface StoredState {
  current?: StoredToken;
  /** Send times of recent token requests, for the budget. */
  sent: number[];
  /** No token request before this time (throttled, or backing off after failures). */
  coolDownUntil: number;
  /** Last failure, answered again during the cool-down. */
  failure?: { kind: GrantFailure['kind']; detail: string; consecutive: number };
}

/** Public, token-free view of a store, for status pages and tests. */
export interface TokenStoreStatus {
  hasToken: boolean;
  expiresAt?: number;
  issuedAt?: number;
  tokenRequestsInWindow: number;
  coolDownUntil: number;
  lastFailure?: string;
}

/** Longest pause between failed refresh cycles during an outage. */
export const MAX_OUTAGE_BACKOFF_MS = 60_000;
const RETRY_BASE_MS = 100;

export interface Env extends ConfigVars {
  TOKEN_STORE: DurableObjectNamespace<TokenStore>;
}

export class TokenStore extends DurableObject<Env> {
  private state: StoredState;
  /** The refresh under way, shared by every caller (input gates do not cover `fetch()`). */
  private inflight: Promise<TokenResult> | undefined;

  constructor(ctx: DurableObjectState, env: Env) {
    super(ctx, env);
    this.state = ctx.storage.kv.get<StoredState>('state') ?? { sent: [], coolDownUntil: 0 };
  }

  /** A token that is good to use now, fetching one if needed. */
  async getToken(key: TokenKey): Promise<TokenResult> {
    const u = this.upstream(key);
    if (!u.ok) return u;
    return this.tokenFor(key, u.config);
  }

  /**
   * Compare-and-swap invalidation: the API rejected `token`. If it is still current, drop it and
   * refresh; if it was already replaced, hand out the replacement. Any number of callers reporting
   * the same token cause at most one token request.
   */
  async invalidate(key: TokenKey & { token: string }): Promise<TokenResult> {
    const u = this.upstream(key);
    if (!u.ok) return u;
    if (this.state.current?.token === key.token) {
      delete this.state.current;
      this.save();
      this.log('token_invalidated', key);
    }
    return this.tokenFor(key, u.config);
  }

  /** Sliding expiry: an isolate used `token` at `at`. Keeps a busy token alive without a refresh. */
  async touch(key: TokenKey & { token: string; at: number }): Promise<void> {
    const cur = this.state.current;
    if (cur === undefined || cur.token !== key.token) return;
    const at = Math.min(key.at, clock.now());
    if (at > cur.lastUsedAt) {
      cur.lastUsedAt = at;
      this.save();
    }
  }

  /** What a status page may show: never the token. */
  async status(key: TokenKey): Promise<TokenStoreStatus> {
    const u = this.upstream(key);
    const cur = this.state.current;
    const now = clock.now();
    return {
      hasToken: cur !== undefined && u.ok && now < this.expiresAt(cur, u.config),
      ...(cur !== undefined && u.ok ? { expiresAt: this.expiresAt(cur, u.config), issuedAt: cur.issuedAt } : {}),
      tokenRequestsInWindow: u.ok ? this.recentSends(u.config, now).length : this.state.sent.length,
      coolDownUntil: this.state.coolDownUntil,
      ...(this.state.failure === undefined ? {} : { lastFailure: this.state.failure.detail }),
    };
  }

  private async tokenFor(key: TokenKey, u: UpstreamConfig): Promise<TokenResult> {
    const now = clock.now();
    const cur = this.state.current;
    if (cur !== undefined && now < this.refreshDue(cur, u)) return this.lease(cur, u, now);

    this.inflight ??= this.refresh(key, u).finally(() => {
      this.inflight = undefined;
    });
    const result = await this.inflight;
    if (result.ok) return result;

    // The refresh failed or was not allowed: a token that has not expired is still good to use.
    const still = this.state.current;
    const later = clock.now();
    if (still !== undefined && later < this.expiresAt(still, u)) {
      const lease = this.lease(still, u, later);
      const retryAt = later + (result.retryAfterSeconds ?? 1) * 1000;
      return { ...lease, refreshAt: Math.min(lease.expiresAt, retryAt) };
    }
    return result;
  }

  /** One refresh cycle: up to `max_attempts` token requests, within budget and deadline. */
  private async refresh(key: TokenKey, u: UpstreamConfig): Promise<TokenResult> {
    let now = clock.now();
    if (now < this.state.coolDownUntil) return this.unavailable(now);

    // loadConfig (in upstream()) has checked that every secret and binding is there.
    const creds = readCredentials(key.upstream, u, this.env);
    const send = egressFor(u, this.env);
    const deadline = Date.now() + u.token_timeout_ms;
    let failure: GrantFailure = { kind: 'transient', detail: 'token request not sent' };

    for (let attempt = 1; attempt <= u.max_attempts; attempt++) {
      now = clock.now();
      const sent = this.recentSends(u, now);
      if (sent.length >= u.token_budget.max_requests) {
        // Budget spent: nothing may be sent before the oldest request leaves the window.
        const freeAt = (sent[0] ?? now) + u.token_budget.window_seconds * 1000;
        this.log('token_budget_exhausted', key, { free_in_s: Math.ceil((freeAt - now) / 1000) });
        if (attempt > 1) this.recordFailure(failure, now);
        return {
          ok: false,
          status: 503,
          title: 'Upstream token budget exhausted',
          detail: `the token budget for upstream "${key.upstream}" (${u.token_budget.max_requests} per ${u.token_budget.window_seconds} s) is spent`,
          retryAfterSeconds: Math.max(1, Math.ceil((freeAt - now) / 1000)),
        };
      }
      const remaining = deadline - Date.now();
      if (remaining <= 0) break;

      // Count the request before it leaves, so a crash mid-request still counts against the budget.
      this.state.sent = [...sent, now];
      this.save();
      const outcome = await this.requestToken(u, creds, key.scope, send, remaining, now);
      if (outcome.ok) {
        const issuedAt = clock.now();
        this.state.current = { token: outcome.value.token, issuedAt, lifetimeMs: outcome.value.lifetimeMs, lastUsedAt: issuedAt };
        this.state.coolDownUntil = 0;
        delete this.state.failure;
        this.save();
        this.log('token_issued', key, { attempt, lifetime_s: Math.round(outcome.value.lifetimeMs / 1000) });
        return this.lease(this.state.current, u, issuedAt);
      }
      failure = { ...outcome.failure, detail: redact(outcome.failure.detail, sensitiveValues(creds)) };
      this.log('token_request_failed', key, { attempt, kind: failure.kind, detail: failure.detail });
      if (failure.kind === 'throttled') {
        const wait = (failure.retryAfterSeconds ?? u.cooldown_seconds) * 1000;
        this.recordFailure(failure, clock.now(), wait);
        return this.unavailable(clock.now());
      }
      if (failure.kind === 'rejected') break;
      if (attempt < u.max_attempts) {
        // Full-jitter exponential backoff, never past the deadline.
        const cap = RETRY_BASE_MS * 2 ** (attempt - 1);
        const pause = Math.min(cap / 2 + Math.random() * (cap / 2), deadline - Date.now());
        if (pause <= 0) break;
        await new Promise((r) => setTimeout(r, pause));
      }
    }
    this.recordFailure(failure, clock.now());
    return this.unavailable(clock.now());
  }

  private async requestToken(
    u: UpstreamConfig,
    creds: Credentials,
    scope: string,
    send: Egress,
    timeoutMs: number,
    now: number,
  ): ReturnType<typeof readTokenResponse> {
    try {
      return await withTimeout(timeoutMs, async (signal) => {
        const res = await send(new Request(buildTokenRequest(u, creds, scope), { signal }));
        return readTokenResponse(u, res, now);
      });
    } catch (e) {
      const timedOut = e instanceof Error && (e.name === 'TimeoutError' || e.name === 'AbortError');
      return { ok: false, failure: { kind: 'transient', detail: timedOut ? 'token request timed out' : 'token endpoint unreachable' } };
    }
  }

  /**
   * Remember a failed cycle and open a cool-down: for throttling the endpoint's (or configured)
   * wait; otherwise 1 s, 2 s, 4 s … up to 60 s between cycles while failures continue.
   */
  private recordFailure(f: GrantFailure, now: number, waitMs?: number): void {
    const consecutive = (this.state.failure?.consecutive ?? 0) + 1;
    const backoff = waitMs ?? Math.min(1000 * 2 ** (consecutive - 1), MAX_OUTAGE_BACKOFF_MS);
    this.state.failure = { kind: f.kind, detail: f.detail, consecutive };
    this.state.coolDownUntil = now + backoff;
    this.save();
  }

  /** The answer while no token request may be sent. */
  private unavailable(now: number): TokenUnavailable {
    const f = this.state.failure;
    const retryAfterSeconds = Math.max(1, Math.ceil((this.state.coolDownUntil - now) / 1000));
    if (f?.kind === 'rejected') {
      return {
        ok: false,
        status: 502,
        title: 'Upstream refused the credentials',
        detail: `${f.detail}: check the upstream's client id, secret or login in the Worker's secrets`,
        retryAfterSeconds,
      };
    }
    return {
      ok: false,
      status: 503,
      title: f?.kind === 'throttled' ? 'Upstream token endpoint is throttling' : 'Upstream token endpoint unavailable',
      detail: f?.detail ?? 'no token is available yet',
      retryAfterSeconds,
    };
  }

  private lease(t: StoredToken, u: UpstreamConfig, now: number): TokenLease {
    const sliding = u.expiry === 'sliding';
    if (sliding && now > t.lastUsedAt) {
      // Handing the token out is a use: the caller sends it upstream right away.
      t.lastUsedAt = now;
      this.save();
    }
    return { ok: true, token: t.token, expiresAt: this.expiresAt(t, u), refreshAt: this.refreshDue(t, u), lifetimeMs: t.lifetimeMs, sliding };
  }

  private expiresAt(t: StoredToken, u: UpstreamConfig): number {
    return (u.expiry === 'sliding' ? t.lastUsedAt : t.issuedAt) + t.lifetimeMs;
  }

  /** Refresh ahead of expiry by the margin (at most half the lifetime, for short-lived tokens). */
  private refreshDue(t: StoredToken, u: UpstreamConfig): number {
    return this.expiresAt(t, u) - Math.min(u.refresh_margin_seconds * 1000, t.lifetimeMs / 2);
  }

  private recentSends(u: UpstreamConfig, now: number): number[] {
    const from = now - u.token_budget.window_seconds * 1000;
    return this.state.sent.filter((t) => t > from);
  }

  private upstream(key: TokenKey): { ok: true; config: UpstreamConfig } | TokenUnavailable {
    try {
      const config = loadConfig(this.env).upstreams[key.upstream];
      if (config === undefined) return { ok: false, status: 502, title: 'Unknown upstream', detail: `no upstream named "${key.upstream}"` };
      return { ok: true, config };
    } catch (e) {
      if (e instanceof ConfigError) return configProblem(e);
      throw e;
    }
  }

  private save(): void {
    this.ctx.storage.kv.put('state', this.state);
  }

  /** Structured log line; never a token or credential. */
  private log(event: string, key: TokenKey, fields: Record<string, unknown> = {}): void {
    console.log(JSON.stringify({ event, upstream: key.upstream, scope: key.scope, ...fields }));
  }
}

function configProblem(e: ConfigError): TokenUnavailable {
  return { ok: false, status: 500, title: 'Invalid configuration', detail: e.issues.join('; ') };
}
