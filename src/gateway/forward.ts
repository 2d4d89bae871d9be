/**
 * @module Forwarding: call the API with the token injected, and recover from a rejected token once.
 *
 * The call is built by request.ts (what goes up) and its answer made safe by answer.ts (what comes
 * back); this module holds the token flow between them. A "token rejected" status invalidates the
 * token by compare-and-swap and retries once with the replacement; a second rejection is a 502.
 */
import type { UpstreamConfig } from '../config';
import { egressFor } from '../egress';
import { problem } from '../problem';
import { getToken, invalidate, type WaitUntil } from '../token/cache';
import type { Env, TokenKey } from '../token/store';
import { DEFAULT_ANSWER, passBack, type AnswerOptions } from './answer';
import { sendApiCall, type ApiCall } from './request';

/** Everything the forwarder needs from the request in hand. */
export interface ForwardContext {
  env: Env;
  key: TokenKey;
  upstream: UpstreamConfig;
  waitUntil?: WaitUntil;
  /** How the route handles the answer (limits, active content, Location); defaults without a route. */
  answer?: AnswerOptions;
}

/**
 * Call the API. Returns the API's answer for the browser (answer.ts). Throws a `ProblemError`: 504 on
 * timeout, 502 when unreachable or when a fresh token is rejected too, 502/503 when no token can be
 * had, 502 for an answer that cannot be passed on.
 */
export async function forward(ctx: ForwardContext, call: ApiCall): Promise<Response> {
  const send = egressFor(ctx.upstream, ctx.env);
  let token = await getToken(ctx.env, ctx.key, ctx.waitUntil);
  let res = await sendApiCall(ctx.upstream, send, call, token);
  if (ctx.upstream.token_rejected_statuses.includes(res.status)) {
    await res.body?.cancel();
    token = await invalidate(ctx.env, ctx.key, token, ctx.waitUntil);
    res = await sendApiCall(ctx.upstream, send, call, token);
    if (ctx.upstream.token_rejected_statuses.includes(res.status)) {
      await res.body?.cancel();
      throw problem('token-rejected', `the API answered ${res.status} to a token it had just been given; not retrying again`);
    }
  }
  return await passBack(res, token, call.url, ctx.answer ?? DEFAULT_ANSWER);
}
