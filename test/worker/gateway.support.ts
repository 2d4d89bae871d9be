/**
 * Shared assertions and body builders for the gateway tests (not a test file itself).
 */
import { expect } from 'vitest';
import type { Answer } from '../helpers';

export interface ProblemBody {
  type: string;
  reason: string;
  title: string;
  status: number;
  detail?: string;
  instance?: string;
  request_id?: string;
  errors?: Array<{ field: string; message: string }>;
}

/** Assert an RFC 9457 problem answer with this status whose detail matches `detail`; `reason`, when given, is its slug. */
export function expectProblem(res: Answer, status: number, detail?: RegExp, reason?: string): ProblemBody {
  expect(res.status, res.text).toBe(status);
  expect(res.headers.get('Content-Type')).toMatch(/^application\/problem\+json/);
  expect(res.headers.get('Cache-Control')).toBe('no-store');
  const p = res.json() as ProblemBody;
  expect(p).toMatchObject({ status, title: expect.any(String), reason: expect.stringMatching(/^[a-z]+(-[a-z]+)*$/), detail: expect.any(String), request_id: expect.any(String) });
  // A stable type per reason: the documented URN, never about:blank.
  expect(p.type).toBe(`urn:edge-token-injector:problem:${p.reason}`);
  if (reason !== undefined) expect(p.reason).toBe(reason);
  expect(p.instance).toBe(`urn:request:${p.request_id}`);
  expect(res.headers.get('X-Request-Id')).toBe(p.request_id);
  if (detail !== undefined) expect(p.detail).toMatch(detail);
  return p;
}

/** A urlencoded form post. */
export function formBody(fields: Record<string, string>, init: RequestInit = {}): RequestInit {
  return {
    method: 'POST',
    body: new URLSearchParams(fields).toString(),
    ...init,
    headers: { 'Content-Type': 'application/x-www-form-urlencoded', ...(init.headers as Record<string, string> | undefined) },
  };
}

/** A multipart form post, with the boundary the runtime chose. */
export async function multipartBody(fd: FormData, init: RequestInit = {}): Promise<RequestInit> {
  const r = new Response(fd);
  return {
    method: 'POST',
    body: await r.arrayBuffer(),
    ...init,
    headers: { 'Content-Type': r.headers.get('Content-Type')!, ...(init.headers as Record<string, string> | undefined) },
  };
}
