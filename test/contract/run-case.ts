/**
 * Runs one token-policy contract case against a driver: the engine in Node or the TokenStore in
 * workerd. Every check lives here, so both runners pass or fail the same table for the same reasons.
 */
import { expect } from 'vitest';
import type { RejectionOutcome, TokenOutcome } from '../../src/token/outcome.ts';
import type { ContractCase, StepExpect, TokenAnswer } from './token-policy-cases.ts';

/** What a runner must provide. Times are epoch ms on the runner's fake clock. */
export interface ContractDriver {
  /** The case's time 0. */
  readonly start: number;
  setTime(ms: number): void;
  /** What the token endpoint answers from now on. */
  setAnswer(answer: TokenAnswer): Promise<void>;
  get(): Promise<TokenOutcome>;
  reject(token: string): Promise<RejectionOutcome>;
  use(token: string, usedAt: number): Promise<void>;
  /**
   * Wait (deterministically, bounded) until exactly `n` token requests were sent and each was
   * answered and recorded; fail with what was seen if that does not happen.
   */
  settle(n: number): Promise<void>;
}

const ms = (seconds: number) => Math.round(seconds * 1000);

export async function runCase(c: ContractCase, d: ContractDriver): Promise<void> {
  await d.setAnswer(c.answer);
  /** Token labels as the case names them → the token each stands for. */
  const labels = new Map<string, string>();
  const labelOf = (token: string) => [...labels].find(([, t]) => t === token)?.[0];
  const since = (at: number | undefined) => (at === undefined ? undefined : (at - d.start) / 1000);

  /** The outcome in the case's terms, with only the fields the expectation names. */
  const view = (o: TokenOutcome | RejectionOutcome, e: StepExpect): Record<string, unknown> => {
    const v: Record<string, unknown> = { kind: o.kind };
    if (o.kind === 'token') {
      let label = labelOf(o.token);
      if (label === undefined && e.kind === 'token' && !labels.has(e.token)) {
        labels.set(e.token, o.token);
        label = e.token;
      }
      v.token = label ?? '(a token not seen before)';
      if (e.kind === 'token' && e.usableUntil !== undefined) v.usableUntil = since(o.usableUntil);
    } else {
      if (o.kind === 'unavailable') v.reason = o.reason;
      else v.why = o.why;
      v.detail = o.detail;
      if ('retryAt' in e && e.retryAt !== undefined) v.retryAt = since(o.retryAt);
    }
    return v;
  };

  for (const [i, step] of c.steps.entries()) {
    const where = `${c.name}, step ${i} (at ${step.at} s: ${step.do})`;
    d.setTime(d.start + ms(step.at));
    if (step.answer !== undefined) await d.setAnswer(step.answer);
    let outcome: TokenOutcome | RejectionOutcome;
    if (step.do === 'use') {
      const token = labels.get(step.token);
      if (token === undefined) throw new Error(`${where}: no token labelled ${step.token} yet`);
      await d.use(token, d.start + ms(step.at));
      continue;
    } else if (step.do === 'reject') {
      const token = labels.get(step.token);
      if (token === undefined) throw new Error(`${where}: no token labelled ${step.token} yet`);
      outcome = await d.reject(token);
    } else {
      outcome = await d.get();
    }
    const { tokenRequests, ...expected } = step.expect;
    const seen = view(outcome, step.expect);
    expect(seen, where).toEqual({ ...expected, ...('detail' in seen ? { detail: seen.detail } : {}) });
    try {
      await d.settle(tokenRequests);
    } catch (e) {
      throw new Error(`${where}: ${e instanceof Error ? e.message : String(e)}`);
    }
  }
}
