/**
 * @module RFC 9457 problem details: the one shape every error of the Worker's own takes.
 *
 * Every refusal has a stable identity: a slug from `PROBLEM_TYPES` (`origin-not-allowed`), sent as
 * the machine-readable `reason`, and as the problem `type` URI `urn:edge-token-injector:problem:<slug>`.
 * The `title` belongs to the type and never changes from one occurrence to the next (RFC 9457
 * §3.1.3); what happened this time goes in `detail`. API clients get `application/problem+json`; the
 * gateway turns the same object into a 303 for plain HTML forms (with the `reason`). Nothing here
 * ever carries a secret or a token: callers pass only messages they wrote themselves or text that
 * went through `redact` (redact.ts).
 */

/** Prefix of every problem `type` URI; the slug follows. Documented in docs/problems.md. */
export const PROBLEM_TYPE_PREFIX = 'urn:edge-token-injector:problem:';

/** Every problem type the Worker answers with: its status and its title. */
export const PROBLEM_TYPES = {
  // The request itself (none of these reach the API).
  'not-found': { status: 404, title: 'Not found' },
  'method-not-allowed': { status: 405, title: 'Method not allowed' },
  'origin-not-allowed': { status: 403, title: 'Origin not allowed' },
  'path-not-allowed': { status: 400, title: 'Path not allowed' },
  'query-not-allowed': { status: 400, title: 'Query parameter not allowed' },
  'body-too-large': { status: 413, title: 'Body too large' },
  'body-required': { status: 415, title: 'Body required' },
  'body-not-allowed': { status: 400, title: 'Body not allowed' },
  'unsupported-content-type': { status: 415, title: 'Unsupported content type' },
  'malformed-json': { status: 400, title: 'Malformed JSON' },
  'json-object-required': { status: 400, title: 'JSON object required' },
  'malformed-form': { status: 400, title: 'Malformed form body' },
  'invalid-submission': { status: 422, title: 'Invalid submission' },
  // Abuse protection (gateway/rate-limit.ts, gateway/turnstile.ts): none of these reach the API either.
  'rate-limited': { status: 429, title: 'Too many requests' },
  'turnstile-required': { status: 403, title: 'Turnstile token required' },
  'turnstile-failed': { status: 403, title: 'Turnstile check failed' },
  'turnstile-ambiguous': { status: 400, title: 'Turnstile token sent twice' },
  'turnstile-unavailable': { status: 503, title: 'Turnstile check unavailable' },
  // The API and its answer.
  'upstream-timeout': { status: 504, title: 'Upstream timed out' },
  'upstream-unreachable': { status: 502, title: 'Upstream unreachable' },
  'upstream-answer-too-large': { status: 502, title: 'Upstream answer too large' },
  'upstream-encoding-unsupported': { status: 502, title: 'Upstream answer encoding not supported' },
  'upstream-content-type-invalid': { status: 502, title: 'Upstream answer Content-Type invalid' },
  'upstream-answer-broken': { status: 502, title: 'Upstream answer broken' },
  'active-content-refused': { status: 502, title: 'Upstream answered active content' },
  'egress-refused': { status: 502, title: 'Egress refused the request' },
  // Pacing and coalescing (pacing/): the API's own rate and quota, kept by the Worker.
  'quota-exhausted': { status: 429, title: 'Upstream daily quota spent' },
  'pacing-busy': { status: 503, title: 'Upstream pace full' },
  'pacer-unavailable': { status: 503, title: 'Pacer unavailable' },
  'record-rejected': { status: 422, title: 'Upstream refused the record' },
  'batch-answer-incomplete': { status: 502, title: 'Upstream batch answer incomplete' },
  // The token engine (token/, gateway/token-problems.ts).
  'token-rejected': { status: 502, title: 'Upstream rejected the token' },
  'fresh-token-rejected': { status: 502, title: 'Upstream rejected a fresh token' },
  'credentials-refused': { status: 502, title: 'Upstream refused the credentials' },
  'token-endpoint-misconfigured': { status: 502, title: 'Upstream token endpoint misconfigured' },
  'token-answer-invalid': { status: 502, title: 'Upstream token answer invalid' },
  'token-budget-exhausted': { status: 503, title: 'Upstream token budget exhausted' },
  'token-endpoint-throttling': { status: 503, title: 'Upstream token endpoint is throttling' },
  'token-endpoint-unavailable': { status: 503, title: 'Upstream token endpoint unavailable' },
  'token-store-unavailable': { status: 503, title: 'Token store unavailable' },
  'config-changing': { status: 503, title: 'Configuration changing' },
  // The Worker itself.
  'unauthorized': { status: 401, title: 'Unauthorized' },
  'invalid-configuration': { status: 500, title: 'Invalid configuration' },
  'internal-error': { status: 500, title: 'Internal error' },
} as const satisfies Record<string, { status: number; title: string }>;

/** A problem type's slug: the `reason` clients and the HTML flow act on. */
export type ProblemSlug = keyof typeof PROBLEM_TYPES;

export interface Problem {
  /** The problem type's slug (`type` is derived from it). */
  reason: ProblemSlug;
  /** HTTP status of the answer. */
  status: number;
  /** The problem type's title (RFC 9457 `title`), the same for every occurrence. */
  title: string;
  /** What went wrong this time, for a human (RFC 9457 `detail`). */
  detail?: string;
  /** Seconds after which a retry may succeed; sent as `Retry-After` too. */
  retryAfter?: number;
  /** Extra headers the status needs (e.g. `Allow` on 405). */
  headers?: Record<string, string>;
  /** Extension members (e.g. `errors` for field validation). */
  extensions?: Record<string, unknown>;
}

/** What a call site may add to a problem besides its slug and detail. */
export type ProblemExtras = Omit<Problem, 'reason' | 'status' | 'title' | 'detail'>;

/** Thrown inside the Worker to end a request with a problem answer. */
export class ProblemError extends Error {
  constructor(readonly problem: Problem) {
    super(problem.detail ?? problem.title);
    this.name = 'ProblemError';
  }
}

/** The problem `type` URI of a slug. */
export function problemType(reason: ProblemSlug): string {
  return PROBLEM_TYPE_PREFIX + reason;
}

/** Whether `s` names a problem type (e.g. a `reason` read back from a URL). */
export function isProblemSlug(s: unknown): s is ProblemSlug {
  return typeof s === 'string' && Object.hasOwn(PROBLEM_TYPES, s);
}

/** A `ProblemError` of type `reason`; its status and title come from `PROBLEM_TYPES`. */
export function problem(reason: ProblemSlug, detail?: string, more: ProblemExtras = {}): ProblemError {
  return new ProblemError({ reason, status: PROBLEM_TYPES[reason].status, title: PROBLEM_TYPES[reason].title, ...(detail === undefined ? {} : { detail }), ...more });
}

/** Render a problem as an RFC 9457 response. `instance` is the request id, so logs and users agree. */
export function problemResponse(p: Problem, requestId?: string): Response {
  const body: Record<string, unknown> = {
    type: problemType(p.reason),
    title: p.title,
    status: p.status,
    reason: p.reason,
    ...(p.detail === undefined ? {} : { detail: p.detail }),
    ...(requestId === undefined ? {} : { instance: `urn:request:${requestId}`, request_id: requestId }),
    ...p.extensions,
  };
  const headers = new Headers({
    'Content-Type': 'application/problem+json; charset=utf-8',
    'Cache-Control': 'no-store',
    ...p.headers,
  });
  if (p.retryAfter !== undefined) headers.set('Retry-After', String(Math.max(1, Math.ceil(p.retryAfter))));
  if (requestId !== undefined) headers.set('X-Request-Id', requestId);
  return new Response(JSON.stringify(body), { status: p.status, headers });
}
