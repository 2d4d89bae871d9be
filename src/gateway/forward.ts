/**
 * @module Forwarding: call the API with the token injected, and recover from a rejected token once.
 *
 * The call is built by request.ts (what goes up) and its answer made safe by answer.ts (what comes
 * back); this module holds the token flow between them. A "token rejected" status is reported to
 * the token engine, which hands back a replacement (or the token that already replaced it) for one
 * retry, or says why the token was kept; a second rejection is a 502. Uses the API accepted are
 * reported back (sliding expiry, and whether a rejection can be about the token). What happened is
 * returned (`CallTrace`) for the request line, never written anywhere from here.
 */
import { clock } from '../clock';
import { ProblemError } from '../problem';
import { getTokenWaiting, reportRejected, reportUse, type WaitUntil } from '../token/cache';
import type { Upstream } from '../upstream';
import { DEFAULT_ANSWER, passBack, type AnswerOptions } from './answer';
import type { CallTrace } from './context';
import { sendApiCall, type ApiCall } from './request';
import { freshTokenRejectedProblem, rejectedProblem, unavailableProblem } from './token-problems';

/** Everything the forwarder needs from the request in hand. */
export interface ForwardContext {
  upstream: Upstream;
  /** The normalised scope set the route's token is for. */
  scope: string;
  waitUntil?: WaitUntil;
  /** How the route handles the answer (limits, active content, Location); defaults without a route. */
  answer?: AnswerOptions;
  /**
   * Waits for the upstream's pace before API call number `attempt` (1, or 2 after a rejected token)
   * leaves; throws a `ProblemError` when no slot can be had (pacing/). Absent: calls leave at once.
   */
  pace?: (attempt: number) => Promise<void>;
}

/** The API's answer for the browser, or the problem that stands in for it; either way, what the calls came to. */
export type Forwarded = { ok: true; response: Response; trace: CallTrace } | { ok: false; problem: ProblemError; trace: CallTrace };

/**
 * Call the API. The answer is made safe for the browser (answer.ts). A problem instead: 504 on
 * timeout, 502 when unreachable, refused by the egress, or when the token is rejected and cannot be
 * replaced (or a fresh one is rejected too), 502/503 when no token can be had, 502 for an answer
 * that cannot be passed on. Anything else thrown is a bug and propagates.
 */
export async function forward(ctx: ForwardContext, call: ApiCall): Promise<Forwarded> {
  const trace: CallTrace = { calls: 0 };
  try {
    return { ok: true, response: await callWithToken(ctx, call, trace), trace };
  } catch (e) {
    if (e instanceof ProblemError) return { ok: false, problem: e, trace };
    throw e;
  }
}

async function callWithToken(ctx: ForwardContext, call: ApiCall, trace: CallTrace): Promise<Response> {
  const { upstream, scope } = ctx;
  const rejects = (status: number) => upstream.settings.token_rejected_statuses.includes(status);
  const first = await getTokenWaiting(upstream, scope, upstream.settings.token_wait_ms);
  if (first.source !== undefined) trace.token = first.source;
  if (first.outcome.kind !== 'token') throw unavailableProblem(first.outcome, clock.now());
  let lease = first.outcome;
  let sentAt = clock.now();
  let res = await send(ctx, call, lease.token, trace);
  if (rejects(res.status)) {
    await res.body?.cancel();
    const next = await reportRejected(upstream, scope, lease.token);
    if (next.kind === 'unavailable') throw unavailableProblem(next, clock.now());
    if (next.kind === 'kept') throw rejectedProblem(next, res.status, clock.now());
    lease = next;
    sentAt = clock.now();
    res = await send(ctx, call, lease.token, trace);
    if (rejects(res.status)) {
      await res.body?.cancel();
      // Tell the engine a fresh token was rejected too: it stops replacing tokens on such answers.
      await reportRejected(upstream, scope, lease.token);
      throw freshTokenRejectedProblem(res.status);
    }
  }
  reportUse(lease, sentAt, ctx.waitUntil);
  return await passBack(res, lease.token, call.url, ctx.answer ?? DEFAULT_ANSWER, upstream.egressSecrets);
}

/**
 * One API call; the trace counts it and keeps its status. On a paced upstream an API that still
 * answers 429 (two calls arrived closer than they left, the network bunched them) gets the call
 * once more, at the next slot: a limit the Worker can wait out fails nobody.
 */
async function send(ctx: ForwardContext, call: ApiCall, token: string, trace: CallTrace): Promise<Response> {
  const once = async () => {
    await ctx.pace?.(trace.calls + 1);
    const res = await sendApiCall(ctx.upstream.settings, ctx.upstream.send, call, token);
    trace.status = res.status;
    trace.calls++;
    return res;
  };
  const res = await once();
  if (ctx.pace === undefined || res.status !== 429 || trace.calls > 2) return res;
  await res.body?.cancel();
  return once();
}
