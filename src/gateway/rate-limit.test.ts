/** rate-limit.ts on its own: a tiny app with the middleware and a binding written in the test. */
import { Hono } from 'hono';
import { describe, expect, it, vi } from 'vitest';
import { ProblemError, problemResponse } from '../problem';
import { rateLimit } from './rate-limit';
import type { GatewayEnv } from './context';

function app(limiter: { limit(o: { key: string }): Promise<{ success: boolean }> }, period: 10 | 60 = 60) {
  const a = new Hono<GatewayEnv>();
  a.use(async (c, next) => {
    c.set('requestId', 'req-1');
    await next();
  });
  a.post('/r', rateLimit('route_a', { binding: 'LIMIT', period }, { LIMIT: limiter }), (c) => c.text('passed'));
  a.onError((err, c) => {
    if (!(err instanceof ProblemError)) return c.text('bug', 500);
    return problemResponse(err.problem, c.get('requestId'));
  });
  return (headers: Record<string, string> = {}) => a.request('/r', { method: 'POST', headers });
}

describe('rateLimit', () => {
  it('asks the binding with the route and the client as key', async () => {
    const keys: string[] = [];
    const send = app({ limit: async ({ key }) => (keys.push(key), { success: true }) });
    expect(await (await send({ 'CF-Connecting-IP': '203.0.113.7' })).text()).toBe('passed');
    await send({ 'CF-Connecting-IP': '2001:db8:5:6::9', 'X-Forwarded-For': '1.2.3.4' });
    await send();
    expect(keys).toEqual(['route_a|203.0.113.7', 'route_a|2001:db8:5:6::/64', 'route_a|no-address']);
  });

  it('refused: 429 with Retry-After the period, its reason the request line\'s outcome', async () => {
    const res = await app({ limit: async () => ({ success: false }) }, 10)();
    expect(res.status).toBe(429);
    expect(res.headers.get('Retry-After')).toBe('10');
    expect(await res.json()).toMatchObject({ reason: 'rate-limited', detail: 'too many requests to this route from your address; try again in 10 s' });
  });

  it('a binding that fails lets the request through (the form stays up) and logs it', async () => {
    const error = vi.spyOn(console, 'error');
    const res = await app({ limit: async () => Promise.reject(new TypeError('boom')) })();
    expect(await res.text()).toBe('passed');
    expect(error.mock.calls.map((c) => String(c[0]))).toContain('{"event":"rate_limit_unavailable","request_id":"req-1","route":"route_a","error":"TypeError"}');
  });
});
