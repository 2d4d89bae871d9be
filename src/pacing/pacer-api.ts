/**
 * @module What isolates may ask a Pacer (its RPC surface) and what it answers. Types only: the
 * gateway and `Env` depend on this, never on the Durable Object class itself.
 */
import type { ProblemSlug } from '../problem';
import type { SlotVerdict } from './policy';

/** Which credential set's pacing a call is about (the Pacer refuses a caller whose fingerprint differs). */
export interface PacerRef {
  upstream: string;
  fp: string;
}

/** One single-record submission waiting to join a batch call. */
export interface BatchItem {
  /** The Worker's own id for the record (a UUID): set on the record, read back on its result. */
  id: string;
  /** The route's name in ROUTES (its `coalesce` settings and answer limits). */
  route: string;
  /** The API path and query the route's call goes to (its params filled in). */
  target: string;
  search: string;
  /** The body without the record, as canonical JSON: only submissions that agree on it share a batch. */
  shared: string;
  /** The record, as the submission gave it (its own `record_id` member, if any, is overwritten). */
  record: Record<string, unknown>;
  /** The normalised scope set the route's token is for. */
  scope: string;
  /** Content negotiation headers the submission sent (part of what a batch must agree on). */
  headers: Array<[string, string]>;
}

/**
 * What one submitter gets: its own record's answer, in the shape a single call would have got, or
 * a problem. `body` is already redacted (it went through the answer path in the Pacer).
 */
export type BatchOutcome =
  | {
      kind: 'answer';
      status: number;
      contentType: string | null;
      body: string;
      /** The API's `Retry-After`, as it sent it (after the answer path dropped any that carried the token). */
      retryAfter?: string;
    }
  | { kind: 'problem'; slug: ProblemSlug; detail: string; retryAfterS?: number; extensions?: Record<string, unknown> };

/** The Pacer could not take the call: the config differs (a deploy under way) or is broken. */
export interface PacerUnavailable {
  kind: 'unavailable';
  slug: 'config-changing' | 'invalid-configuration';
  detail: string;
}

/** What a credential set's pacing looks like now (for /status). Times are epoch ms. */
export interface PacingStatus {
  requestsPerSecond: number;
  perDay?: number;
  callsLastMinute: number;
  callsToday: number;
  quotaLeft?: number;
  quotaResetsAt?: number;
  waitingNow: number;
  batchesSent: number;
  recordsSent: number;
  largestBatch: number;
  /** Time from arrival to leaving, over the recent calls and records (ms); undefined before any. */
  waitP50Ms?: number;
  waitP99Ms?: number;
}

/** The Pacer's RPC methods (pacing/pacer.ts implements them). */
export interface PacerApi extends Rpc.DurableObjectBranded {
  /** A time to send one call at (the caller sleeps until then), or why not. */
  reserve(ref: PacerRef): Promise<SlotVerdict | PacerUnavailable>;
  /** Join the next batch call of `item`'s route and wait for its own answer. */
  submit(ref: PacerRef, item: BatchItem): Promise<BatchOutcome | PacerUnavailable>;
  /** The submitter of `id` went away: drop it from any batch not yet sent. */
  withdraw(ref: PacerRef, id: string): Promise<void>;
  status(ref: PacerRef): Promise<PacingStatus | PacerUnavailable>;
}
