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
import { ConfigError, scopesOf } from '../config/schema';
import { EgressRefused, withTimeout } from '../egress';
import type { Env } from '../env';
import { logEvent, type TokenEvent } from '../log';
import { boundTokenProblem } from '../mtls';
import { redact } from '../redact';
import { wiringFor, type Upstream, type Wiring } from '../upstream';
import { legacyStoreName } from './credential-set';
import { TokenEngine } from './engine';
import { buildTokenRequest, readTokenResponse, type GrantResult } from './grant';
import type { RejectionOutcome, TokenOutcome, TokenUnavailable } from './outcome';
import { emptyState, expiryOf, inWindow, isUsable, NO_HARD_END, refreshAt, usableUntil, type BlockReason, type CredentialState, type Policy } from './policy';
import type { CredentialSetStatus, LegacyState, StoreRef, TokenStoreApi } from './store-api';

/**
 * How every token request is fetched: the answer comes still encoded and grant.ts decodes it in
 * bounds. (On fetch()'s init, where workerd honours it; left to the runtime, a gzip answer was
 * inflated natively, outside the Worker's limits.)
 */
const TOKEN_FETCH: RequestInit = { encodeResponseBody: 'manual' };

export class TokenStore extends DurableObject<Env> implements TokenStoreApi {
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
    const scopes = [...new Set([...scopesOf((await wiringFor(this.env)).config, ref.upstream), ...Object.keys(s.tokens)])];
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
    let wiring: Wiring;
    try {
      wiring = await wiringFor(this.env);
    } catch (e) {
      if (!(e instanceof ConfigError)) throw e;
      logEvent('invalid_configuration', { issues: e.issues }, 'error');
      return { kind: 'unavailable', reason: 'config', detail: 'the Worker is misconfigured' };
    }
    const u = wiring.upstreams.get(ref.upstream);
    const broken = wiring.config.broken.upstreams[ref.upstream];
    if (u === undefined && broken !== undefined) {
      logEvent('invalid_configuration', { issues: broken }, 'error');
      return { kind: 'unavailable', reason: 'config', detail: 'the Worker is misconfigured' };
    }
    if (u === undefined || typeof ref.fp !== 'string' || u.fingerprint !== ref.fp) {
      return { kind: 'unavailable', reason: 'config_changing', detail: 'the configuration is being updated; try again', retryAt: clock.now() + 1000 };
    }
    if (this.engine !== undefined) return this.engine;
    this.loading ??= this.ctx.blockConcurrencyWhile(() => this.load(u, wiring));
    this.engine = await this.loading;
    return this.engine;
  }

  /** Build the engine over the stored state (adopting the first version's on first use). */
  private async load(u: Upstream, wiring: Wiring): Promise<TokenEngine> {
    const settings = u.settings;
    const p = u.policy;
    let state = this.ctx.storage.kv.get<CredentialState>('credset');
    if (state === undefined) {
      state = emptyState();
      await this.adoptLegacyObjects(state, u.name, scopesOf(wiring.config, u.name), p);
      this.ctx.storage.kv.put('credset', state);
    }
    const s = state;
    return new TokenEngine(s, p, { maxAttempts: settings.max_attempts, timeoutMs: settings.token_timeout_ms }, {
      request: async (scope, timeoutMs, afterRefusal): Promise<GrantResult> => {
        let assertion: string | undefined;
        try {
          assertion = u.signer === undefined ? undefined : await u.signer.sign(clock.now(), afterRefusal);
        } catch {
          return { ok: false, failure: { kind: 'misconfigured', detail: `the client assertion could not be signed (UPSTREAMS.${u.name}.client_assertion)` } };
        }
        try {
          const request = (signal: AbortSignal) => new Request(buildTokenRequest(settings, u.credentials, scope, assertion), { signal });
          const result = await withTimeout(timeoutMs, async (signal) => readTokenResponse(settings, await u.sendToken(request(signal), TOKEN_FETCH)));
          if (result.ok) {
            // A token bound to a certificate the API calls would not present: never handed out.
            const bound = boundTokenProblem(settings, result.value.token);
            return bound === undefined ? result : { ok: false, failure: { kind: 'misconfigured', detail: bound } };
          }
          // A refused assertion may be that one assertion's fault (a replayed jti, a key not yet registered).
          const freshRetry = u.signer !== undefined && result.failure.kind === 'refused';
          // Details are built from statuses and codes only; redacted anyway, belt and braces.
          return { ok: false, failure: { ...result.failure, detail: redact(result.failure.detail, u.sensitive), ...(freshRetry ? { freshRetry } : {}) } };
        } catch (e) {
          // The egress would not forward it: fix the egress or its secret; sent again, it fails alike.
          if (e instanceof EgressRefused) return { ok: false, failure: { kind: 'misconfigured', detail: e.message } };
          const timedOut = e instanceof Error && (e.name === 'TimeoutError' || e.name === 'AbortError');
          return { ok: false, failure: { kind: 'transient', detail: timedOut ? 'token request timed out' : 'token endpoint unreachable' } };
        }
      },
      save: () => this.ctx.storage.kv.put('credset', s),
      log: (event, scope, fields) => this.log(event, { upstream: u.name, scope }, fields),
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

  /** Structured log line (docs/operations.md, the event table); never a token or credential. */
  private log(event: TokenEvent, ref: Pick<StoreRef, 'upstream' | 'scope'>, fields: Record<string, unknown> = {}): void {
    logEvent(event, { upstream: ref.upstream, scope: ref.scope, ...fields });
  }
}
