/** problem.ts on its own: the one place a problem becomes an HTTP answer, and its Retry-After. */
import { describe, expect, it } from 'vitest';
import { problem, problemResponse } from './problem';

const retryAfterOf = (retryAfter: number) => problemResponse(problem('token-endpoint-unavailable', 'x', { retryAfter }).problem).headers.get('Retry-After');

describe('problemResponse: Retry-After', () => {
  // Mutation: the header written without its floor of 1 (`String(Math.ceil(p.retryAfter))`).
  it('is never below 1, whatever a caller computed: 0, a fraction, or a moment already past', () => {
    expect([0, 0.004, 0.5, -0.3, -5].map(retryAfterOf)).toEqual(['1', '1', '1', '1', '1']);
  });

  it('whole seconds, rounded up, so a client never comes back too early', () => {
    expect([1, 1.001, 29.5, 120].map(retryAfterOf)).toEqual(['1', '2', '30', '120']);
  });

  it('absent when the problem names no wait', () => {
    expect(problemResponse(problem('credentials-refused', 'x').problem).headers.has('Retry-After')).toBe(false);
  });
});
