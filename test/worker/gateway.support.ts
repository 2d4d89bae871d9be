/**
 * Shared assertions and body builders for the gateway tests (not a test file itself).
 */
import { expect } from 'vitest';
import type { Answer } from '../helpers';

export interface ProblemBody {
  type: string;
  title: string;
  status: number;
  detail?: string;
  instance?: string;
  request_id?: string;
  errors?: Array<{ field: string; message: string }>;
}

/** Assert an RFC 9457 problem answer with this status whose detail matches `detail`. */
export function expectProblem(res: Answer, status: number, detail?: RegExp): ProblemBody {
  expect(res.status, res.text).toBe(status);
  expect(res.headers.get('Content-Type')).toMatch(/^application\/problem\+json/);
  expect(res.headers.get('Cache-Control')).toBe('no-store');
  const p = res.json() as ProblemBody;
  expect(p).toMatchObject({ type: 'about:blank', status, title: expect.any(String), detail: expect.any(String), request_id: expect.any(String) });
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
