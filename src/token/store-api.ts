/**
 * @module What isolates may ask a TokenStore (its RPC surface) and the token-free status it
 * reports. Types only: the gateway, the isolate cache and `Env` depend on this, never on the
 * Durable Object class itself.
 */
import type { RejectionOutcome, TokenOutcome, TokenUnavailable } from './outcome';
import type { BlockReason, CredentialState } from './policy';

/** Who a TokenStore call is about: the credential set (by name and fingerprint) and the scope set. */
export interface StoreRef {
  upstream: string;
  /** The fingerprint as the caller's config computes it; the store refuses a call when its own differs. */
  fp: string;
  /** Normalised scope set (`scopeKey`), '' for none. */
  scope: string;
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

/** The state the first version stored under `state` in each per-scope object. */
export interface LegacyState {
  current?: { token: string; issuedAt: number; lifetimeMs: number; lastUsedAt: number };
  sent?: number[];
  coolDownUntil?: number;
  failure?: { kind: string; consecutive: number };
}

/** The TokenStore's RPC methods (token/store.ts implements them). */
export interface TokenStoreApi extends Rpc.DurableObjectBranded {
  getToken(ref: StoreRef): Promise<TokenOutcome>;
  reportRejected(ref: StoreRef & { token: string }): Promise<RejectionOutcome>;
  reportUse(ref: StoreRef & { token: string; usedAt: number }): Promise<void>;
  status(ref: StoreRef): Promise<CredentialSetStatus | TokenUnavailable>;
  adoptLegacy(): Promise<LegacyState | null>;
}
