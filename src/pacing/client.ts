/**
 * @module The gateway's side of pacing: ask the upstream's Pacer for a slot before a call leaves,
 * or hand a single-record submission to it to join the next batch call; turn what it answers into
 * the browser's answer or a problem. Every wait is bounded: a Pacer that is reset or never answers
 * is a clear 503 or 504, never a hang.
 */
import { utf8Strict } from '../bytes';
import { clock, secondsUntil } from '../clock';
import type { RouteConfig } from '../config/schema';
import { ANSWER_HEADERS } from '../gateway/answer';
import { fieldProblem } from '../gateway/body';
import type { CallTrace } from '../gateway/context';
import type { ApiCall } from '../gateway/request';
import { problem, ProblemError, type ProblemExtras } from '../problem';
import type { WaitUntil } from '../token/cache';
import type { Upstream } from '../upstream';
import { recordIssues, takeApart } from './coalesce';
import type { BatchItem, BatchOutcome, PacerUnavailable } from './pacer-api';
import type { SlotVerdict } from './policy';

/** Beyond the longest hold and the API timeout, how long a Pacer may take to answer at all. */
const PACER_GRACE_MS = 5_000;

/**
 * The pace hook for `forward` on a paced upstream: before each call, a slot from the Pacer and a
 * sleep until it. Throws the problem a refusal stands for (quota, pace full, Pacer unreachable).
 */
export function paceOf(upstream: Upstream): ((attempt: number) => Promise<void>) | undefined {
  const pacer = upstream.pacer;
  if (pacer === undefined) return undefined;
  return async () => {
    let verdict: SlotVerdict | PacerUnavailable;
    try {
      verdict = await pacer().reserve(upstream.pacerRef);
    } catch {
      throw problem('pacer-unavailable', 'the pacer of this API could not be reached; try again', { retryAfter: 1 });
    }
    if (verdict.kind !== 'slot') throw refusal(verdict);
    await clock.sleep(verdict.at - clock.now());
  };
}

/** What a submission to a coalescing route needs besides its API call. */
export interface CoalescedCall {
  upstream: Upstream;
  routeName: string;
  route: RouteConfig;
  scope: string;
  /** The route's target with its params filled in (the path the batch call goes to). */
  target: string;
  call: ApiCall;
  /** Aborts when the submitter goes away: its record is then dropped from any batch not yet sent. */
  signal?: AbortSignal;
  waitUntil?: WaitUntil;
}

/**
 * Hand the submission's one record to the Pacer and wait for its own answer (in the shape a single
 * call returns), within the longest hold plus the API timeout. Throws a `ProblemError` for a record
 * that cannot join a batch (422), a refusal of the Pacer, or no answer in time.
 */
export async function submitRecord(c: CoalescedCall): Promise<{ response: Response; trace: CallTrace }> {
  const spec = c.route.coalesce!;
  const pacer = c.upstream.pacer!;
  let body: unknown;
  try {
    body = JSON.parse(utf8Strict(c.call.body ?? new Uint8Array()));
  } catch {
    body = undefined;
  }
  const parts = takeApart(body, spec);
  if (!parts.ok) throw problem('invalid-submission', parts.detail);
  const issues = recordIssues(parts.record, spec.limits);
  if (issues.size > 0) throw fieldProblem(issues, 'invalid-submission', 'the record breaks a limit of the API');

  const item: BatchItem = {
    id: crypto.randomUUID(),
    route: c.routeName,
    target: c.target,
    search: c.call.url.search,
    shared: parts.shared,
    record: parts.record,
    scope: c.scope,
    // Only the headers the batch must agree on: the rest would split batches for nothing.
    headers: [...c.call.headers].filter(([name]) => spec.headers.some((h) => h.toLowerCase() === name)),
  };
  const ref = c.upstream.pacerRef;
  const withdraw = () => c.waitUntil?.(pacer().withdraw(ref, item.id).catch(() => undefined));
  c.signal?.addEventListener('abort', withdraw, { once: true });
  const s = c.upstream.settings;
  // Its slot, the token (held at a rollover), the call itself, and some grace.
  const limitMs = s.pacing!.max_wait_ms + s.token_wait_ms + s.api_timeout_ms + PACER_GRACE_MS;
  let timer: ReturnType<typeof setTimeout> | undefined;
  const late = new Promise<never>((_, reject) => {
    timer = setTimeout(() => reject(problem('upstream-timeout', `no answer for this record within ${Math.round(limitMs / 1000)} s`)), limitMs);
  });
  let outcome: BatchOutcome | PacerUnavailable;
  try {
    outcome = await Promise.race([pacer().submit(ref, item), late]);
  } catch (e) {
    if (e instanceof ProblemError) {
      withdraw();
      throw e;
    }
    // The Pacer was reset or could not be reached: its queue is gone, the submitter may try again.
    throw problem('pacer-unavailable', 'the pacer of this API was restarted before this record was answered; try again', { retryAfter: 1 });
  } finally {
    if (timer !== undefined) clearTimeout(timer);
    c.signal?.removeEventListener('abort', withdraw);
  }
  if (outcome.kind !== 'answer') throw refusal(outcome);
  const headers = new Headers(ANSWER_HEADERS);
  if (outcome.contentType !== null) headers.set('Content-Type', outcome.contentType);
  if (outcome.retryAfter !== undefined) headers.set('Retry-After', outcome.retryAfter);
  // No body is no body (an empty string would get a text/plain Content-Type).
  return { response: new Response(outcome.body === '' ? null : outcome.body, { status: outcome.status, headers }), trace: { status: outcome.status, calls: 1 } };
}

/** The problem a refusal of the Pacer stands for. */
function refusal(v: Exclude<SlotVerdict, { kind: 'slot' }> | Exclude<BatchOutcome, { kind: 'answer' }> | PacerUnavailable): ProblemError {
  const now = clock.now();
  switch (v.kind) {
    case 'quota':
      return problem('quota-exhausted', `the API's daily quota (${v.perDay} calls) is spent; it resets at ${new Date(v.resetsAt).toISOString()}`, {
        retryAfter: secondsUntil(v.resetsAt, now, 1),
        extensions: { resets_at: new Date(v.resetsAt).toISOString() },
      });
    case 'busy':
      return problem('pacing-busy', 'the API takes calls at a set pace and the next free slot is further away than this route waits', { retryAfter: secondsUntil(v.retryAt, now, 1) });
    case 'unavailable':
      return problem(v.slug, v.detail, v.slug === 'config-changing' ? { retryAfter: 1 } : {});
    case 'problem': {
      const extras: ProblemExtras = { ...(v.retryAfterS === undefined ? {} : { retryAfter: v.retryAfterS }), ...(v.extensions === undefined ? {} : { extensions: v.extensions }) };
      return problem(v.slug, v.detail, extras);
    }
  }
}
