/**
 * Token-policy contract cases (test/contract/) against the token engine itself, in Node: a fake
 * token endpoint answering real HTTP responses (read by the same `readTokenResponse` the
 * TokenStore uses), a fake clock through `setClock`. The same table runs against the TokenStore
 * in workerd (test/worker/token-contract.test.ts).
 */
import { afterEach, describe, expect, it, vi } from 'vitest';
import { setClock } from '../../src/clock.ts';
import { upstreamSchema } from '../../src/config/schema.ts';
import { TokenEngine } from '../../src/token/engine.ts';
import { readTokenResponse } from '../../src/token/grant.ts';
import { emptyState, policyOf } from '../../src/token/policy.ts';
import { runCase } from '../contract/run-case.ts';
import { TOKEN_POLICY_CASES, type TokenAnswer } from '../contract/token-policy-cases.ts';
import { contractUpstream } from '../fixtures/contract.ts';

const START = Date.UTC(2026, 10, 22, 12);

/** What the stand-in token endpoint (test/standin/upstreams.ts) answers for `a`. */
function respond(name: string, a: TokenAnswer, n: number): Response {
  if (a.status !== undefined && a.status !== 200) {
    return new Response('', { status: a.status, headers: { 'Content-Type': 'application/json', ...a.headers } });
  }
  const answer: Record<string, unknown> = { access_token: `tok_${name.replace(/\W/g, '_')}_${n}_${Math.random().toString(36).slice(2, 10)}`, token_type: 'bearer' };
  const expiresIn = a.expiresIn === undefined ? 3600 : a.expiresIn;
  if (expiresIn !== null) answer.expires_in = expiresIn;
  return new Response(JSON.stringify(answer), { status: 200, headers: { 'Content-Type': 'application/json' } });
}

afterEach(() => setClock(undefined));

describe('token-policy contract: TokenEngine (Node, fake endpoint)', () => {
  for (const c of TOKEN_POLICY_CASES) {
    it(`${c.name}: ${c.title}`, async () => {
      let now = START;
      setClock({ now: () => now });
      const u = upstreamSchema.parse(contractUpstream(c.name, c.config));
      let answer: TokenAnswer = {};
      let sent = 0;
      const engine = new TokenEngine(emptyState(), policyOf(u), { maxAttempts: u.max_attempts, timeoutMs: u.token_timeout_ms }, {
        request: async () => readTokenResponse(u, respond(c.name, answer, ++sent), now),
        save: () => {},
        log: () => {},
      });
      await runCase(c, {
        start: START,
        setTime: (ms) => {
          now = ms;
        },
        setAnswer: async (a) => {
          answer = a;
        },
        get: () => engine.getToken(''),
        reject: (token) => engine.reportRejected('', token),
        use: async (token, usedAt) => engine.reportUse('', token, usedAt),
        settle: (n) =>
          vi.waitFor(
            () => {
              const { issued, failedCycles } = engine.state.counts;
              expect({ tokenRequests: sent, answered: issued + failedCycles }).toEqual({ tokenRequests: n, answered: n });
            },
            { timeout: 2000, interval: 1 },
          ),
      });
    });
  }
});
