/**
 * @module TokenStore Durable Object: the one place a token is fetched, for the whole edge.
 *
 * One object per credential set (`credential-set.ts`), holding a token per scope set, the
 * credential set's token-request history (its budget) and its cool-downs, in SQLite storage so
 * eviction or restart costs no token request. The rules live in `policy.ts` and are applied by
 * `engine.ts`; this class gives the engine its storage, its egress and its logs, checks that the
 * caller runs the same config, and adopts the first version's per-scope state once.
 * Isolates talk to it through `token/cache.ts`; nothing else should.
 */
import { DurableObject } from 'cloudflare:workers';
import { clock } from '../clock';
import { ConfigError, loadConfig, readCredentials, scopesOf, sensitiveValues, type Config } from '../config';
import { EgressRefused, egressFor, egressSecrets, withTimeout } from '../egress';
import type { Env } from '../env';
import { logEvent, type TokenEvent } from '../log';
import { redact } from '../redact';
import { fingerprintOf, legacyStoreName, type StoreRef } from './credential-set';
import { TokenEngine } from './engine';
import { buildTokenRequest, readTokenResponse, type GrantResult } from './grant';
import type { RejectionOutcome, TokenOutcome, TokenUnavailable } from './outcome';
import {
  emptyState,
  expiryOf,
  inWindow,
  isUsable,
  NO_HARD_END,
  policyFor,
  refreshAt,
  usableUntil,
  type BlockReason,
  type CredentialState,
  type Policy,
} from './policy';

export type { Env } from '../env';

/**
 * How every token request is fetched: the answer comes still encoded and grant.ts decodes it in
 * bounds. (On fetch()'s init, where workerd honours it; left to the runtime, a gzip answer was
 * inflated natively, outside the Worker's limits.)
 */
const TOKEN_FETCH: RequestInit = { encodeResponseBody: 'manual' };

/** The state the first version stored under `state` in each per-scope object. */
interface LegacyState {
  current?: { token: string; issuedAt: number; lifetimeMs: number; lastUsedAt: number };
  sent?: number[];
  coolDownUntil?: number;
  failure?: { kind: string; consecutive: number };
}

/** A token-free view of a credential set, for status pages and tests. */
export interface CredentialSetStatus {
  upstream: string;
  scopes: Array<{
    scope: string;
    hasToken: boolean;
    /** When the issuer stops accepting it as far as we know, and when we stop using it (minus skew). */
    expiresAt?: number;
    usableUntil?: number;
    refreshAt?: number;
    /** When the request that obtained it was sent. */
    obtainedAt?: number;
    replacement?: boolean;
    accepted?: boolean;
  }>;
  budget: { max: number; windowSeconds: number; explicit: boolean; inWindow: number };
  block?: { until: number; reason: BlockReason; detail: string };
  failures: number;
  distrust?: { until: number; level: number };
  counts: CredentialState['counts'];
  /** The most recent token request, answered (`doneAt`) or not, whatever its outcome. */
  lastRequest?: { sentAt: number; doneAt?: number; cause: string };
}

export class TokenStore extends DurableObject<Env> {
  private engine: TokenEngine | undefined;
  private loading: Promise<TokenEngine> | undefined;

  /** A token that is good to use now, fetching one if needed and allowed (see `TokenEngine`). */
  async getToken(ref: StoreRef): Promise<TokenOutcome> {
    const e = await this.open(ref);
    return e instanceof TokenEngine ? e.getToken(ref.scope) : e;
  }

  /** The API rejected `token`: replace it if a replacement can be had, else keep it (see `TokenEngine`). */
  async reportRejected(ref: StoreRef & { token: string }): Promise<RejectionOutcome> {
    const e = await this.open(ref);
    return e instanceof TokenEngine ? e.reportRejected(ref.scope, ref.token) : e;
  }

  /** A request made with `token` at `usedAt` was answered without a rejection. */
  async reportUse(ref: StoreRef & { token: string; usedAt: number }): Promise<void> {
    const e = await this.open(ref);
    if (e instanceof TokenEngine) e.reportUse(ref.scope, ref.token, ref.usedAt);
  }

  /** What a status page may show: never a token. */
  async status(ref: StoreRef): Promise<CredentialSetStatus | TokenUnavailable> {
    const e = await this.open(ref);
    if (!(e instanceof TokenEngine)) return e;
    const { state: s, policy: p } = e;
    const now = clock.now();
    const scopes = [...new Set([...scopesOf(loadConfig(this.env), ref.upstream), ...Object.keys(s.tokens)])];
    return {
      upstream: ref.upstream,
      scopes: scopes.map((scope) => {
        const t = s.tokens[scope];
        if (t === undefined) return { scope, hasToken: false };
        return {
          scope,
          hasToken: isUsable(t, p, now),
          expiresAt: expiryOf(t, p),
          usableUntil: usableUntil(t, p),
          refreshAt: refreshAt(t, p),
          obtainedAt: t.sentAt,
          replacement: t.replacement,
          accepted: t.acceptedAt !== undefined,
        };
      }),
      budget: { max: p.budget.max, windowSeconds: p.budget.windowMs / 1000, explicit: p.budget.explicit, inWindow: inWindow(s, p, now).length },
      ...(s.block !== undefined && now < s.block.until ? { block: s.block } : {}),
      failures: s.failures,
      ...(s.distrust !== undefined && now < s.distrust.until ? { distrust: s.distrust } : {}),
      counts: s.counts,
      ...(s.requests.length === 0 ? {} : { lastRequest: { ...s.requests.at(-1)! } }),
    };
  }

  /**
   * Called on an object of the first version's layout (one per upstream and scope set): hand its
   * state over once and forget it, so it is adopted by exactly one credential set.
   */
  async adoptLegacy(): Promise<LegacyState | null> {
    const state = this.ctx.storage.kv.get<LegacyState>('state');
    if (state === undefined) return null;
    this.ctx.storage.kv.delete('state');
    return state;
  }

  /**
   * The engine of this credential set, once the caller is known to run the same config (during a
   * deploy an isolate and this object may briefly disagree: the caller is told to retry).
   */
  private async open(ref: StoreRef): Promise<TokenEngine | TokenUnavailable> {
    let config: Config;
    try {
      config = loadConfig(this.env);
    } catch (e) {
      if (!(e instanceof ConfigError)) throw e;
      logEvent('invalid_configuration', { issues: e.issues }, 'error');
      return { kind: 'unavailable', reason: 'config', detail: 'the Worker is misconfigured' };
    }
    if (config.upstreams[ref.upstream] === undefined || typeof ref.fp !== 'string' || (await fingerprintOf(this.env, ref.upstream)) !== ref.fp) {
      return { kind: 'unavailable', reason: 'config_changing', detail: 'the configuration is being updated; try again', retryAt: clock.now() + 1000 };
    }
    if (this.engine !== undefined) return this.engine;
    this.loading ??= this.ctx.blockConcurrencyWhile(() => this.load(ref, config));
    this.engine = await this.loading;
    return this.engine;
  }

  /** Build the engine over the stored state (adopting the first version's on first use). */
  private async load(ref: StoreRef, config: Config): Promise<TokenEngine> {
    const u = config.upstreams[ref.upstream]!;
    const p = policyFor(u);
    let state = this.ctx.storage.kv.get<CredentialState>('credset');
    if (state === undefined) {
      state = emptyState();
      await this.adoptLegacyObjects(state, ref.upstream, scopesOf(config, ref.upstream), p);
      this.ctx.storage.kv.put('credset', state);
    }
    const creds = readCredentials(ref.upstream, u, this.env);
    const sensitive = [...sensitiveValues(creds), ...egressSecrets(u, this.env)];
    const send = egressFor(u, this.env);
    const s = state;
    return new TokenEngine(s, p, { maxAttempts: u.max_attempts, timeoutMs: u.token_timeout_ms }, {
      request: async (scope, timeoutMs): Promise<GrantResult> => {
        try {
          const result = await withTimeout(timeoutMs, async (signal) => readTokenResponse(u, await send(new Request(buildTokenRequest(u, creds, scope), { signal }), TOKEN_FETCH)));
          // Details are built from statuses and codes only; redacted anyway, belt and braces.
          return result.ok ? result : { ok: false, failure: { ...result.failure, detail: redact(result.failure.detail, sensitive) } };
        } catch (e) {
          // The egress would not forward it: fix the egress or its secret; sent again, it fails alike.
          if (e instanceof EgressRefused) return { ok: false, failure: { kind: 'misconfigured', detail: e.message } };
          const timedOut = e instanceof Error && (e.name === 'TimeoutError' || e.name === 'AbortError');
          return { ok: false, failure: { kind: 'transient', detail: timedOut ? 'token request timed out' : 'token endpoint unreachable' } };
        }
      },
      save: () => this.ctx.storage.kv.put('credset', s),
      log: (event, scope, fields) => this.log(event, { upstream: ref.upstream, scope }, fields),
    });
  }

  /**
   * First use of this layout: take over what the first version's per-scope objects hold, so an
   * upgrade costs no token request and forgets no budget history. Their `issuedAt` was taken after
   * the answer arrived, so the token is anchored a whole request deadline earlier, to stay on the
   * safe side of its real expiry. Carried-over failure text is not shown again (it was not built to
   * today's rules).
   */
  private async adoptLegacyObjects(s: CredentialState, upstream: string, scopes: string[], p: Policy): Promise<void> {
    const now = clock.now();
    const back = p.requestTimeoutMs;
    for (const scope of scopes) {
      let legacy: LegacyState | null;
      try {
        legacy = await this.env.TOKEN_STORE.get(this.env.TOKEN_STORE.idFromName(legacyStoreName(upstream, scope))).adoptLegacy();
      } catch {
        continue;
      }
      if (legacy === null) continue;
      const c = legacy.current;
      if (c !== undefined && typeof c.token === 'string' && Number.isFinite(c.issuedAt) && Number.isFinite(c.lifetimeMs)) {
        const sentAt = c.issuedAt - back;
        s.tokens[scope] = {
          token: c.token,
          sentAt,
          expiresAt: p.sliding ? NO_HARD_END : c.issuedAt + c.lifetimeMs - back,
          lifetimeMs: c.lifetimeMs,
          lastUsedAt: p.sliding ? Math.max(sentAt, c.lastUsedAt - back) : sentAt,
          replacement: false,
        };
      }
      for (const sentAt of legacy.sent ?? []) if (Number.isFinite(sentAt)) s.requests.push({ sentAt, cause: 'cold' });
      const until = legacy.coolDownUntil ?? 0;
      if (until > now && until > (s.block?.until ?? 0)) {
        const reason: BlockReason = legacy.failure?.kind === 'throttled' ? 'throttled' : legacy.failure?.kind === 'rejected' ? 'refused' : 'outage';
        s.block = { until, reason, detail: 'cooling down after failed token requests' };
        s.failures = Math.max(s.failures, legacy.failure?.consecutive ?? 0);
      }
      this.log('token_legacy_adopted', { upstream, scope }, { token: c !== undefined, token_requests: legacy.sent?.length ?? 0 });
    }
    s.requests.sort((a, b) => a.sentAt - b.sentAt);
  }

  /** Structured log line (the README's event table); never a token or credential. */
  private log(event: TokenEvent, ref: Pick<StoreRef, 'upstream' | 'scope'>, fields: Record<string, unknown> = {}): void {
    logEvent(event, { upstream: ref.upstream, scope: ref.scope, ...fields });
  }
}
