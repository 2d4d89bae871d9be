/**
 * The redactor's CPU time, measured where a clock can measure it (in workerd the clock stands still
 * between I/O, so src/redact.test.ts bounds the automaton's step count instead). Tokens built to
 * make a matcher work hard (repeated backslashes, percents, ampersands, repeated prefixes: the old
 * matcher tried both readings of every `\` and `%` and took about 2^n for n backslashes) are
 * redacted from 64 KiB of their own near misses in every encoding; a random token of the same
 * length from an answer built the same way. The bound is a ratio with generous headroom (the
 * fastest of five runs each, so load on the machine cancels out): work linear in the answer costs
 * a small multiple; exponential work costs thousands.
 */
import { describe, expect, it } from 'vitest';
import { Redactor } from '../../src/redact.ts';
import { ADVERSARIAL_SHAPES, adversarialAnswer, adversarialToken, randomToken } from '../standin/adversarial.ts';

/** Token length: 24 characters, where the old matcher already took seconds on such an answer. */
const LENGTH = 24;
const ANSWER_BYTES = 64 * 1024;
/** What the README promises: at most 20 times a random token's time. */
const RATIO = 20;

/** The fastest of five runs of redacting `answer` for `token`, in ms. */
function cpu(token: string, answer: Uint8Array): number {
  let best = Infinity;
  for (let i = 0; i < 5; i++) {
    const t0 = performance.now();
    new Redactor([token]).redactBytes(answer);
    best = Math.min(best, performance.now() - t0);
  }
  return best;
}

describe('redactor CPU time: adversarial tokens against random ones of the same length', () => {
  it.each(ADVERSARIAL_SHAPES.map((s) => [s]))(`%s: at most ${RATIO}× a random token's time on 64 KiB of near misses`, (shape) => {
    const adversarial = adversarialToken(shape, LENGTH);
    const random = randomToken(LENGTH);
    const answers = [adversarialAnswer(adversarial, ANSWER_BYTES), adversarialAnswer(random, ANSWER_BYTES)] as const;
    cpu(random, answers[1]); // warm the JIT for both
    const slow = cpu(adversarial, answers[0]);
    const fast = cpu(random, answers[1]);
    console.info(JSON.stringify({ redactor_cpu: shape, length: LENGTH, adversarial_ms: +slow.toFixed(2), random_ms: +fast.toFixed(2), ratio: +(slow / fast).toFixed(1) }));
    expect(slow / fast).toBeLessThanOrEqual(RATIO);
  }, 60_000);
});
