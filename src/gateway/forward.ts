/**
 * @module Forwarding: call the API with the token injected, and recover from a rejected token once.
 *
 * The call is built by request.ts (what goes up) and its answer made safe by answer.ts (what comes
 * back); this module holds the token flow between them. A "token rejected" status is reported to
 * the token engine, which hands back a replacement (or the token that already replaced it) for one
 * retry, or says why the token was kept; a second rejection is a 502. Uses the API accepted are
 * reported back (sliding expiry, and whether a rejection can be about the token).
 */
import { clock } from '../clock';
import type { UpstreamConfig } from '../config';
import { egressFor, egressSecrets } from '../egress';
import type { Env } from '../env';
import type { RequestNotes } from '../log';
import { getToken, reportRejected, reportUse, type TokenRef, type WaitUntil } from '../token/cache';
import { DEFAULT_ANSWER, passBack, type AnswerOptions } from './answer';
import { sendApiCall, type ApiCall } from './request';
import { freshTokenRejectedProblem, rejectedProblem, unavailableProblem } from './token-problems';

/** Everything the forwarder needs from the request in hand. */
export interface ForwardContext {
  env: Env;
  key: TokenRef;
  upstream: UpstreamConfig;
  waitUntil?: WaitUntil;
  /** How the route handles the answer (limits, active content, Location); defaults without a route. */
  answer?: AnswerOptions;
  /** The request's log line: told where the token came from and what the API answered. */
  notes?: RequestNotes;
}

/**
 * Call the API. Returns the API's answer for the browser (answer.ts). Throws a `ProblemError`: 504 on
 * timeout, 502 when unreachable, refused by the egress, or when the token is rejected and cannot be
 * replaced (or a fresh one is rejected too), 502/503 when no token can be had, 502 for an answer
 * that cannot be passed on.
 */
export async function forward(ctx: ForwardContext, call: ApiCall): Promise<Response> {
  const send = egressFor(ctx.upstream, ctx.env);
  const rejects = (status: number) => ctx.upstream.token_rejected_statuses.includes(status);
  const notes = ctx.notes;
  const first = await getToken(ctx.env, ctx.key, notes);
  if (first.kind !== 'token') throw unavailableProblem(first, clock.now());
  let lease = first;
  let sentAt = clock.now();
  let res = await sendApiCall(ctx.upstream, send, call, lease.token);
  if (notes !== undefined) noteCall(notes, res.status);
  if (rejects(res.status)) {
    await res.body?.cancel();
    const next = await reportRejected(ctx.env, ctx.key, lease.token);
    if (next.kind === 'unavailable') throw unavailableProblem(next, clock.now());
    if (next.kind === 'kept') throw rejectedProblem(next, res.status, clock.now());
    lease = next;
    sentAt = clock.now();
    res = await sendApiCall(ctx.upstream, send, call, lease.token);
    if (notes !== undefined) noteCall(notes, res.status);
    if (rejects(res.status)) {
      await res.body?.cancel();
      // Tell the engine a fresh token was rejected too: it stops replacing tokens on such answers.
      await reportRejected(ctx.env, ctx.key, lease.token);
      throw freshTokenRejectedProblem(res.status);
    }
  }
  reportUse(ctx.env, lease, sentAt, ctx.waitUntil);
  return await passBack(res, lease.token, call.url, ctx.answer ?? DEFAULT_ANSWER, egressSecrets(ctx.upstream, ctx.env));
}

/** One API call answered `status`: the request line shows the last status and how many calls. */
function noteCall(notes: RequestNotes, status: number): void {
  notes.upstreamStatus = status;
  notes.upstreamCalls = (notes.upstreamCalls ?? 0) + 1;
}
