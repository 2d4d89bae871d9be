/**
 * @module Token outcomes as HTTP answers: the one place the token engine's outcomes become problems.
 *
 * 503 + Retry-After where waiting helps (budget, throttling, outage, the store or config in
 * transition); 502 where the upstream or its config is wrong (refused credentials, a token endpoint
 * that redirects or is not there, an invalid token answer, a token the API rejects); 500 for an
 * invalid config (whose key names go to the log, not to the caller).
 */
import { secondsUntil } from '../clock';
import { problem, type ProblemError, type ProblemSlug } from '../problem';
import type { TokenKept, TokenUnavailable, UnavailableReason } from '../token/outcome';

const SLUGS: Record<UnavailableReason, ProblemSlug> = {
  budget: 'token-budget-exhausted',
  throttled: 'token-endpoint-throttling',
  outage: 'token-endpoint-unavailable',
  store_unreachable: 'token-store-unavailable',
  config_changing: 'config-changing',
  refused: 'credentials-refused',
  misconfigured: 'token-endpoint-misconfigured',
  invalid_answer: 'token-answer-invalid',
  config: 'invalid-configuration',
};

/** Seconds until `at`, at least 1 (a Retry-After of 0 invites a busy loop). */
function retryAfter(at: number | undefined, now: number): { retryAfter: number } | Record<string, never> {
  return at === undefined ? {} : { retryAfter: secondsUntil(at, now, 1) };
}

/** No token can be had. */
export function unavailableProblem(o: TokenUnavailable, now: number): ProblemError {
  const detail = o.reason === 'refused' ? `${o.detail}: check the upstream's client id, secret or login in the Worker's secrets` : o.detail;
  return problem(SLUGS[o.reason], detail, retryAfter(o.retryAt, now));
}

/** The API answered `apiStatus` (a "token rejected" status) and the token could not be replaced. */
export function rejectedProblem(o: TokenKept, apiStatus: number, now: number): ProblemError {
  // Distrusted rejections are about this request, so retrying it later will not help.
  const wait = o.why === 'rejections_ignored' ? {} : retryAfter(o.retryAt, now);
  return problem('token-rejected', `the API answered ${apiStatus} to the current token, which was not replaced: ${o.detail}`, wait);
}

/** The API rejected a token it had just been given, too. */
export function freshTokenRejectedProblem(apiStatus: number): ProblemError {
  return problem('fresh-token-rejected', `the API answered ${apiStatus} to a token it had just been given; not retrying again`);
}
