/** token-problems.ts on its own: the wait a token outcome turns into, in whole seconds, never 0. */
import { describe, expect, it } from 'vitest';
import type { TokenKept, TokenUnavailable } from '../token/outcome';
import { rejectedProblem, unavailableProblem } from './token-problems';

const NOW = Date.UTC(2026, 11, 1, 12);
const unavailable = (retryAt?: number): TokenUnavailable => ({ kind: 'unavailable', reason: 'throttled', detail: 'token endpoint answered 429', ...(retryAt === undefined ? {} : { retryAt }) });
const kept = (retryAt: number, why: TokenKept['why'] = 'budget'): TokenKept => ({ kind: 'kept', why, detail: 'the token budget is spent', retryAt });

describe('the wait of a token problem', () => {
  // Mutation: `Math.ceil((at - now) / 1000)` without `Math.max(1, …)` (or floor for ceil): a
  // retryAt this moment, or already past by the time the answer is built, said 0 or less.
  it('no token: at least 1 s, for a retryAt a few ms ahead, now, or just past', () => {
    expect([NOW + 5, NOW, NOW - 250].map((at) => unavailableProblem(unavailable(at), NOW).problem.retryAfter)).toEqual([1, 1, 1]);
  });

  it('no token: whole seconds rounded up (1000 ms → 1, 1001 ms → 2); none when waiting will not help', () => {
    expect(unavailableProblem(unavailable(NOW + 1000), NOW).problem.retryAfter).toBe(1);
    expect(unavailableProblem(unavailable(NOW + 1001), NOW).problem.retryAfter).toBe(2);
    expect(unavailableProblem(unavailable(), NOW).problem.retryAfter).toBeUndefined();
  });

  it('a kept token: at least 1 s too; none when the API\'s rejections are ignored (retrying will not help)', () => {
    expect([NOW + 5, NOW, NOW - 250].map((at) => rejectedProblem(kept(at), 401, NOW).problem.retryAfter)).toEqual([1, 1, 1]);
    expect(rejectedProblem(kept(NOW + 60_000, 'rejections_ignored'), 401, NOW).problem.retryAfter).toBeUndefined();
  });
});
