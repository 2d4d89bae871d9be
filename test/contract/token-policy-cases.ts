/**
 * Token-policy contract cases: one table, run against the engine in Node
 * (`test/node/token-contract.test.ts`, a fake token endpoint) and against the TokenStore Durable
 * Object in workerd (`test/worker/token-contract.test.ts`, the stand-in token endpoint). Both
 * runners share `run-case.ts`, so a case means the same thing to each.
 *
 * Each case names an upstream (its config keys beyond the test standard: `test/fixtures/contract.ts`
 * gives each its own host `https://<name>.test`), what the token endpoint answers, and steps on a
 * fake clock. `at` is seconds from the case's start. `answer` on a step changes what the token
 * endpoint answers from that step on. `token` in an expectation is a label: its first appearance
 * names a token that must differ from every token seen before; later appearances must be that
 * token. `tokenRequests` is the total sent so far, once every request under way has been answered
 * (background refreshes included). Times in expectations (`retryAt`, `usableUntil`) are seconds
 * from the start too. Numbers are the ones the README and issue 7 promise.
 *
 * The runners know every request is answered when the answered ones (tokens issued + failed
 * cycles) equal the requests sent: so a case whose endpoint fails transiently sets
 * `max_attempts = 1` (one request per cycle).
 *
 * Data only (type imports only): `vitest.config.ts` loads it through `test/fixtures/contract.ts`.
 */
import type { Json } from '../fixtures/config.ts';
import type { TokenKept, UnavailableReason } from '../../src/token/outcome.ts';

/** What the token endpoint answers (a subset of the stand-in's `TokenBehaviour`, same meaning). */
export interface TokenAnswer {
  /** The `expires_in` value; `null` leaves it out. Default 3600. */
  expiresIn?: number | string | null;
  /** Answer with this status (no token) instead. */
  status?: number;
  headers?: Record<string, string>;
}

export type StepExpect =
  | { kind: 'token'; token: string; usableUntil?: number; tokenRequests: number }
  | { kind: 'unavailable'; reason: UnavailableReason; retryAt?: number; tokenRequests: number }
  | { kind: 'kept'; why: TokenKept['why']; retryAt?: number; tokenRequests: number };

export type Step = { at: number; answer?: TokenAnswer } & (
  | { do: 'get'; expect: StepExpect }
  /** The API rejected the token labelled `token`. */
  | { do: 'reject'; token: string; expect: StepExpect }
  /** A request made with the token labelled `token` at `at` was answered without a rejection. */
  | { do: 'use'; token: string }
);

export interface ContractCase {
  /** Also the upstream's name and its host (`https://<name>.test`). */
  name: string;
  title: string;
  /** Upstream config keys beyond the standard test upstream. */
  config: Record<string, Json>;
  /** What the token endpoint answers at the start. */
  answer: TokenAnswer;
  steps: Step[];
}

const get = (at: number, expect: StepExpect, answer?: TokenAnswer): Step => ({ at, do: 'get', expect, ...(answer === undefined ? {} : { answer }) });
const reject = (at: number, token: string, expect: StepExpect): Step => ({ at, do: 'reject', token, expect });
const use = (at: number, token: string): Step => ({ at, do: 'use', token });

/** A 5 s token under steady load: refreshed every 4.5 s, 14 times in a minute, past the default guard's 10. */
function steadyLoadOfFiveSecondTokens(): Step[] {
  const steps: Step[] = [
    get(0, { kind: 'token', token: 'T0', usableUntil: 4.75, tokenRequests: 1 }),
    get(2.5, { kind: 'token', token: 'T0', tokenRequests: 1 }), // half-life: not refreshed
    get(4.499, { kind: 'token', token: 'T0', tokenRequests: 1 }),
  ];
  for (let k = 1; k <= 13; k++) {
    // Due at 4.5 s (5 s − 250 ms skew − 250 ms margin): the current token is handed out while the
    // next one is fetched in the background; a moment later the next one is.
    steps.push(get(4.5 * k, { kind: 'token', token: `T${k - 1}`, tokenRequests: k + 1 }));
    steps.push(get(4.5 * k + 0.001, { kind: 'token', token: `T${k}`, tokenRequests: k + 1 }));
  }
  return steps;
}

/** A sliding 60 s token used every 45 s for 6 minutes, then left alone. */
function slidingKeptAliveByUse(): Step[] {
  const steps: Step[] = [get(0, { kind: 'token', token: 'A', usableUntil: 57, tokenRequests: 1 })];
  for (let t = 45; t <= 360; t += 45) {
    steps.push(get(t, { kind: 'token', token: 'A', usableUntil: t - 45 + 57, tokenRequests: 1 }));
    steps.push(use(t, 'A'));
  }
  // Last use at 360 s: usable until 360 + 60 − 3 (skew, 1/20 of 60 s).
  steps.push(get(416.999, { kind: 'token', token: 'A', usableUntil: 417, tokenRequests: 1 }));
  steps.push(get(417, { kind: 'token', token: 'B', tokenRequests: 2 }));
  return steps;
}

export const TOKEN_POLICY_CASES: ContractCase[] = [
  {
    name: 'ct-fixed-ahead',
    title: 'fixed 600 s token: usable until 10 s before expiry, refreshed in the background 30 s before that',
    config: { refresh_margin_seconds: 30 },
    answer: { expiresIn: 600 },
    steps: [
      get(0, { kind: 'token', token: 'A', usableUntil: 590, tokenRequests: 1 }),
      get(559.999, { kind: 'token', token: 'A', tokenRequests: 1 }),
      get(560, { kind: 'token', token: 'A', tokenRequests: 2 }),
      get(560.001, { kind: 'token', token: 'B', usableUntil: 1150, tokenRequests: 2 }),
      get(1119.999, { kind: 'token', token: 'B', tokenRequests: 2 }),
      get(1120, { kind: 'token', token: 'B', tokenRequests: 3 }),
      get(1120.001, { kind: 'token', token: 'C', tokenRequests: 3 }),
    ],
  },
  {
    name: 'ct-fixed-budget',
    title: 'budget 1 per hour: the refresh waits, the token is used until expiry − 10 s, then none until 3600 s + 2 s slack',
    config: { refresh_margin_seconds: 30, token_budget: { max_requests: 1, window_seconds: 3600 } },
    answer: { expiresIn: 600 },
    steps: [
      get(0, { kind: 'token', token: 'A', usableUntil: 590, tokenRequests: 1 }),
      get(560, { kind: 'token', token: 'A', tokenRequests: 1 }),
      get(589.999, { kind: 'token', token: 'A', tokenRequests: 1 }),
      get(590, { kind: 'unavailable', reason: 'budget', retryAt: 3602, tokenRequests: 1 }),
      get(3601.999, { kind: 'unavailable', reason: 'budget', retryAt: 3602, tokenRequests: 1 }),
      get(3602, { kind: 'token', token: 'B', tokenRequests: 2 }),
    ],
  },
  {
    name: 'ct-short5',
    title: '5 s tokens, default config: refreshed at 4.5 s (not half-life), and the default guard never stops it',
    config: {},
    answer: { expiresIn: 5 },
    steps: steadyLoadOfFiveSecondTokens(),
  },
  {
    name: 'ct-sliding',
    title: 'sliding 60 s token: kept alive by reported uses every 45 s, refreshed only once unused',
    config: { expiry: 'sliding', refresh_margin_seconds: 30 },
    answer: { expiresIn: 60 },
    steps: slidingKeptAliveByUse(),
  },
  {
    name: 'ct-throttled',
    title: 'throttled: 429 with Retry-After 120 s, then a 429 without it (cooldown_seconds 45)',
    config: { cooldown_seconds: 45 },
    answer: { status: 429, headers: { 'Retry-After': '120' } },
    steps: [
      get(0, { kind: 'unavailable', reason: 'throttled', retryAt: 120, tokenRequests: 1 }),
      get(60, { kind: 'unavailable', reason: 'throttled', retryAt: 120, tokenRequests: 1 }),
      get(119.999, { kind: 'unavailable', reason: 'throttled', retryAt: 120, tokenRequests: 1 }),
      get(120, { kind: 'unavailable', reason: 'throttled', retryAt: 165, tokenRequests: 2 }, { status: 429 }),
      get(164.999, { kind: 'unavailable', reason: 'throttled', retryAt: 165, tokenRequests: 2 }, { expiresIn: 3600 }),
      get(165, { kind: 'token', token: 'A', tokenRequests: 3 }),
    ],
  },
  {
    name: 'ct-outage',
    title: 'token endpoint down (503): failed cycles back off 1 s, 2 s, 4 s; nothing is sent in between',
    config: { max_attempts: 1 },
    answer: { status: 503 },
    steps: [
      get(0, { kind: 'unavailable', reason: 'outage', retryAt: 1, tokenRequests: 1 }),
      get(0.999, { kind: 'unavailable', reason: 'outage', retryAt: 1, tokenRequests: 1 }),
      get(1, { kind: 'unavailable', reason: 'outage', retryAt: 3, tokenRequests: 2 }),
      get(2.999, { kind: 'unavailable', reason: 'outage', retryAt: 3, tokenRequests: 2 }),
      get(3, { kind: 'unavailable', reason: 'outage', retryAt: 7, tokenRequests: 3 }),
      get(6.999, { kind: 'unavailable', reason: 'outage', retryAt: 7, tokenRequests: 3 }, { expiresIn: 3600 }),
      get(7, { kind: 'token', token: 'A', tokenRequests: 4 }),
      get(8, { kind: 'token', token: 'A', tokenRequests: 4 }),
    ],
  },
  {
    name: 'ct-reject-distrust',
    title: 'a rejected token is replaced; the replacement rejected too: kept, rejections ignored 10 min, then 20 min',
    config: {},
    answer: { expiresIn: 3600 },
    steps: [
      get(0, { kind: 'token', token: 'A', tokenRequests: 1 }),
      use(10, 'A'),
      reject(20, 'A', { kind: 'token', token: 'B', tokenRequests: 2 }),
      reject(30, 'B', { kind: 'kept', why: 'rejections_ignored', retryAt: 630, tokenRequests: 2 }),
      get(40, { kind: 'token', token: 'B', tokenRequests: 2 }),
      reject(50, 'B', { kind: 'kept', why: 'rejections_ignored', retryAt: 630, tokenRequests: 2 }),
      reject(630, 'B', { kind: 'kept', why: 'rejections_ignored', retryAt: 1830, tokenRequests: 2 }),
      get(640, { kind: 'token', token: 'B', tokenRequests: 2 }),
    ],
  },
  {
    name: 'ct-reject-budget',
    title: 'budget 1 per hour spent: a rejected token is kept (no token request), and still handed out',
    config: { token_budget: { max_requests: 1, window_seconds: 3600 } },
    answer: { expiresIn: 3600 },
    steps: [
      get(0, { kind: 'token', token: 'A', tokenRequests: 1 }),
      reject(10, 'A', { kind: 'kept', why: 'budget', retryAt: 3602, tokenRequests: 1 }),
      get(20, { kind: 'token', token: 'A', tokenRequests: 1 }),
      reject(3000, 'A', { kind: 'kept', why: 'budget', retryAt: 3602, tokenRequests: 1 }),
      get(3589.999, { kind: 'token', token: 'A', tokenRequests: 1 }),
    ],
  },
  {
    name: 'ct-reject-stale',
    title: 'a rejection of a token already replaced gets the current token, no token request',
    config: {},
    answer: { expiresIn: 3600 },
    steps: [
      get(0, { kind: 'token', token: 'A', tokenRequests: 1 }),
      reject(10, 'A', { kind: 'token', token: 'B', tokenRequests: 2 }),
      reject(11, 'A', { kind: 'token', token: 'B', tokenRequests: 2 }),
      get(12, { kind: 'token', token: 'B', tokenRequests: 2 }),
    ],
  },
  {
    name: 'ct-invalid-expires',
    title: 'expires_in "1h", 0 or negative: invalid_answer (never a default lifetime); "3600" as a string is fine',
    config: {},
    answer: { expiresIn: '1h' },
    steps: [
      get(0, { kind: 'unavailable', reason: 'invalid_answer', retryAt: 1, tokenRequests: 1 }),
      get(0.5, { kind: 'unavailable', reason: 'invalid_answer', retryAt: 1, tokenRequests: 1 }),
      get(1, { kind: 'unavailable', reason: 'invalid_answer', retryAt: 3, tokenRequests: 2 }, { expiresIn: 0 }),
      get(3, { kind: 'unavailable', reason: 'invalid_answer', retryAt: 7, tokenRequests: 3 }, { expiresIn: -60 }),
      get(7, { kind: 'token', token: 'A', usableUntil: 3597, tokenRequests: 4 }, { expiresIn: '3600' }),
    ],
  },
];
