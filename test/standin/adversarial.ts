/**
 * Tokens built to make a matcher work hard, and answers built to keep it busy: repeated escape
 * characters (each may begin an escape or be itself), repeated prefixes (every position may begin
 * a match), and for each token an answer of its near misses in every encoding the tests know.
 * Shared by the redactor's step-count tests (workerd) and its CPU-time test (Node).
 */
import { TOKEN_ENCODINGS, encodeToken } from './encodings';

export const ADVERSARIAL_SHAPES = ['backslashes', 'percents', 'ampersands', 'percent-25', 'escape-mix', 'repeated-prefix', 'periodic', 'json-u-prefix'] as const;
export type AdversarialShape = (typeof ADVERSARIAL_SHAPES)[number];

const UNITS: Record<AdversarialShape, string> = {
  backslashes: '\\',
  percents: '%',
  ampersands: '&',
  'percent-25': '%25',
  'escape-mix': '%\\&#;x2',
  'repeated-prefix': 'a',
  periodic: 'ab',
  'json-u-prefix': '\\u00',
};

/** A token of `length` characters in `shape` (a repeated prefix ends in another character). */
export function adversarialToken(shape: AdversarialShape, length: number): string {
  const t = UNITS[shape].repeat(length).slice(0, length);
  return shape === 'repeated-prefix' ? `${t.slice(0, -1)}b` : t;
}

/** A random token of `length` characters, as token endpoints issue them. */
export function randomToken(length: number): string {
  const alphabet = 'ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-._~+/';
  return Array.from({ length }, () => alphabet[Math.floor(Math.random() * alphabet.length)]).join('');
}

/** `bytes` bytes of `token`'s near misses (its last character changed) in every encoding, repeated. */
export function adversarialAnswer(token: string, bytes: number): Uint8Array {
  const near = token.slice(0, -1) + (token.endsWith('X') ? 'Y' : 'X');
  const unit = TOKEN_ENCODINGS.map((e) => encodeToken(near, e)).join(' ');
  return new TextEncoder().encode(unit.repeat(Math.ceil(bytes / unit.length))).slice(0, bytes);
}
