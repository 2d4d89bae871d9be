/**
 * Token-policy contract cases (test/contract/) against the real TokenStore Durable Object in
 * workerd: its storage, its egress to the stand-in token endpoint, its grant reading. The same
 * table runs against the engine alone in Node (test/node/token-contract.test.ts). Background
 * refreshes finish after the call that started them returns: each step waits until the stand-in
 * has seen the expected token requests and the store has recorded every answer.
 */
import { describe, expect, it, vi } from 'vitest';
import { runCase } from '../contract/run-case';
import { TOKEN_POLICY_CASES } from '../contract/token-policy-cases';
import { setToken, tokenHits } from '../helpers';
import { fakeClock, scopeStatus, store } from './token-helpers';

describe('token-policy contract: TokenStore (workerd, stand-in endpoint)', () => {
  for (const c of TOKEN_POLICY_CASES) {
    it(`${c.name}: ${c.title}`, async () => {
      const clock = fakeClock();
      const { key, stub } = await store(c.name);
      await runCase(c, {
        start: clock.now(),
        setTime: (ms) => clock.set(ms),
        setAnswer: (a) => setToken(c.name, a),
        get: () => stub.getToken(key),
        reject: (token) => stub.reportRejected({ ...key, token }),
        use: (token, usedAt) => stub.reportUse({ ...key, token, usedAt }),
        settle: (n) =>
          vi.waitFor(
            async () => {
              const sent = (await tokenHits(c.name)).length;
              const { issued, failedCycles } = (await scopeStatus(c.name)).counts;
              expect({ tokenRequests: sent, answered: issued + failedCycles }).toEqual({ tokenRequests: n, answered: n });
            },
            { timeout: 5000, interval: 10 },
          ),
      });
    });
  }
});
