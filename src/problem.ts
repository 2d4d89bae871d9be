/**
 * @module RFC 9457 problem details: the one shape every error of the Worker's own takes.
 *
 * API clients get `application/problem+json`; the gateway turns the same object into a 303 for
 * plain HTML forms. Nothing here ever carries a secret or a token: callers pass only messages they
 * wrote themselves or text that went through `redact`.
 */

export interface Problem {
  /** HTTP status of the answer. */
  status: number;
  /** Short, stable summary of the problem type (RFC 9457 `title`). */
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

/** Thrown inside the Worker to end a request with a problem answer. */
export class ProblemError extends Error {
  constructor(readonly problem: Problem) {
    super(problem.detail ?? problem.title);
    this.name = 'ProblemError';
  }
}

/** A `ProblemError` with the common fields, for brevity at call sites. */
export function problem(status: number, title: string, detail?: string, more: Omit<Problem, 'status' | 'title' | 'detail'> = {}): ProblemError {
  return new ProblemError({ status, title, ...(detail === undefined ? {} : { detail }), ...more });
}

/** Render a problem as an RFC 9457 response. `instance` is the request id, so logs and users agree. */
export function problemResponse(p: Problem, requestId?: string): Response {
  const body: Record<string, unknown> = {
    type: 'about:blank',
    title: p.title,
    status: p.status,
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

/**
 * Replace every occurrence of each sensitive value in `text` by `[redacted]`. Used on any text that
 * came from outside (a token endpoint's error body) before it reaches a log or a problem detail.
 */
export function redact(text: string, sensitive: readonly string[]): string {
  let out = text;
  for (const value of sensitive) {
    if (value.length >= MIN_REDACTED && out.includes(value)) out = out.split(value).join('[redacted]');
  }
  return out;
}

/** Shorter values are not redacted: cutting them out would mangle ordinary text. */
export const MIN_REDACTED = 4;
