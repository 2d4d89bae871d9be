/**
 * How a careless or hostile API may echo a token back: each encoding written here from the
 * standards (JSON, RFC 3986 percent-encoding, RFC 4648 base64, HTML character references through
 * the `entities` library), independently of src/redact.ts, so the tests do not check the redactor
 * against its own idea of an encoding. Used by the stand-in API (Node) and by the workerd tests
 * alike: only web-platform globals and plain-JS libraries.
 */
import { decodeHTML, encodeHTML } from 'entities';

export const TOKEN_ENCODINGS = [
  'raw',
  /** JSON string content: `/` left alone (JSON.stringify's choice). */
  'json',
  /** JSON with every `/` as `\/` (PHP's json_encode, many Java encoders). */
  'json-slash',
  /** JSON with every other character as `\uXXXX` (upper-case hex), mixed with `\/`. */
  'json-u',
  /** encodeURIComponent: reserved characters as %XX (upper-case hex). */
  'percent',
  /** Every byte as %xx, lower-case hex. */
  'percent-all',
  /** Base64 of the token behind 0, 1 or 2 other bytes (the three alignments), standard alphabet. */
  'b64-0',
  'b64-1',
  'b64-2',
  /** The same in the URL-safe alphabet without padding. */
  'b64url-0',
  'b64url-1',
  'b64url-2',
  /** JSON-escaped base64 (`\/` for each `/`). */
  'b64-json',
  /** Percent-encoded base64 (`%2B`, `%2F`, `%3D`). */
  'b64-percent',
  /** HTML with named references where the standard has them (`&plus;`, `&sol;`, `&equals;`, `&lowbar;`, `&period;`, `&#45;`). */
  'html-named',
  /** Numeric references mixed with raw characters: `&#43;`, `&#x2b` (no semicolon where none is needed), leading zeros. */
  'html-numeric',
  /** Every character as `&#X00HH;`. */
  'html-hex-all',
  /** encodeURIComponent twice (`%252B`) and three times (`%25252B`). */
  'percent-2',
  'percent-3',
  /** Percent-encoding whose `%` is a JSON escape (`\u00252B`). */
  'json-of-percent',
  /** The json-u spelling percent-encoded, every byte (`%5C%75%30%30%36%35`). */
  'percent-all-of-json-u',
  /** The html-named spelling percent-encoded (`%26plus%3B`). */
  'percent-of-html',
  /** html-hex-all inside JSON with `&` as `\u0026`. */
  'json-of-html',
  /** Base64 broken into lines (CRLF every 7 characters: MIME wraps at 76, the token may fall across a break anywhere). */
  'b64-wrapped',
  /** Base64 with a line feed every 5 characters, inside a JSON string (`\n`). */
  'b64-json-wrapped',
  /** The raw token folded like a long header line (CRLF and a space every 9 characters). */
  'folded',
  /** A form decoder's reading: `+` as a space. */
  'plus-as-space',
  /** The same, percent-encoded again (`%20`). */
  'plus-as-space-percent',
  /** UTF-16LE bytes (each character followed by NUL), as an API that answers UTF-16 sends them. */
  'utf16le',
] as const;

export type TokenEncoding = (typeof TOKEN_ENCODINGS)[number];

const hex2 = (n: number) => n.toString(16).padStart(2, '0');

function base64(bytes: Uint8Array): string {
  let binary = '';
  for (const b of bytes) binary += String.fromCharCode(b);
  return btoa(binary);
}

/** Base64 of `lead` filler bytes, the token, and one trailing byte: the token inside a bigger value. */
function b64Around(token: string, lead: number): string {
  const t = new TextEncoder().encode(token);
  const bytes = new Uint8Array(lead + t.length + 1);
  bytes.fill(0x41, 0, lead); // 'A'
  bytes.set(t, lead);
  bytes[bytes.length - 1] = 0x7a; // 'z'
  return base64(bytes);
}

/** The token as `encoding` writes it. */
export function encodeToken(token: string, encoding: TokenEncoding): string {
  switch (encoding) {
    case 'raw':
      return token;
    case 'json':
      return JSON.stringify(token).slice(1, -1);
    case 'json-slash':
      return JSON.stringify(token).slice(1, -1).replace(/\//g, '\\/');
    case 'json-u':
      return [...token].map((c, i) => (i % 2 === 0 ? `\\u${c.charCodeAt(0).toString(16).toUpperCase().padStart(4, '0')}` : c === '/' ? '\\/' : JSON.stringify(c).slice(1, -1))).join('');
    case 'percent':
      return encodeURIComponent(token);
    case 'percent-all':
      return [...new TextEncoder().encode(token)].map((b) => `%${hex2(b)}`).join('');
    case 'b64-0':
    case 'b64-1':
    case 'b64-2':
      return b64Around(token, Number(encoding.slice(-1)));
    case 'b64url-0':
    case 'b64url-1':
    case 'b64url-2':
      return b64Around(token, Number(encoding.slice(-1))).replace(/\+/g, '-').replace(/\//g, '_').replace(/=+$/, '');
    case 'b64-json':
      return b64Around(token, 1).replace(/\//g, '\\/');
    case 'b64-percent':
      return encodeURIComponent(b64Around(token, 2));
    case 'html-named':
      return encodeHTML(token);
    case 'html-numeric':
      return htmlNumeric(token);
    case 'html-hex-all':
      return [...token].map((c) => `&#X00${c.charCodeAt(0).toString(16).toUpperCase()};`).join('');
    case 'percent-2':
      return encodeURIComponent(encodeURIComponent(token));
    case 'percent-3':
      return encodeURIComponent(encodeURIComponent(encodeURIComponent(token)));
    case 'json-of-percent':
      return encodeURIComponent(token).replace(/%/g, '\\u0025');
    case 'percent-all-of-json-u':
      return [...new TextEncoder().encode(encodeToken(token, 'json-u'))].map((b) => `%${hex2(b)}`).join('');
    case 'percent-of-html':
      return encodeURIComponent(encodeHTML(token));
    case 'json-of-html':
      return encodeToken(token, 'html-hex-all').replace(/&/g, '\\u0026');
    case 'b64-wrapped':
      return b64Around(token, 1).replace(/(.{7})/g, '$1\r\n');
    case 'b64-json-wrapped':
      return JSON.stringify(b64Around(token, 2).replace(/(.{5})/g, '$1\n')).slice(1, -1);
    case 'folded':
      return token.replace(/(.{9})/g, '$1\r\n ');
    case 'plus-as-space':
      return token.replace(/\+/g, ' ');
    case 'plus-as-space-percent':
      return encodeURIComponent(token.replace(/\+/g, ' '));
    case 'utf16le':
      return [...token].map((c) => `${c}\u0000`).join('');
  }
}

/** Numeric references mixed with raw characters: decimal, hex with leading zeros, some without `;`. */
function htmlNumeric(token: string): string {
  const chars = [...token];
  return chars
    .map((c, i) => {
      const code = c.charCodeAt(0);
      if (i % 3 === 0) return c;
      if (i % 3 === 1) return `&#${code};`;
      // Browsers take `&#x2b` without `;` unless a hex digit (or the end, where the next byte is unknown) follows.
      const next = chars[i + 1];
      return `&#x00${code.toString(16)}${next === undefined || /[0-9a-fA-F;]/.test(next) ? ';' : ''}`;
    })
    .join('');
}

/** Encodings a header value cannot carry (control characters): body-only. */
export const BODY_ONLY_ENCODINGS: readonly TokenEncoding[] = TOKEN_ENCODINGS.filter((e) => /[\0\r\n]/.test(encodeToken('abcdefghijklmnopqrst', e)));

/**
 * Whether `text` still gives the token away: its core (all but two characters at each end, which
 * base64 may share with neighbouring bytes) found by decoding `text` the way each encoding would
 * be read: as is; percent-decoded, JSON-unescaped and HTML-decoded, up to three layers in any
 * order; with whitespace and NUL taken out, or spaces read as `+`; and base64-decoded at every offset.
 */
export function revealsToken(text: string, token: string): boolean {
  return revealed(decodedViews(text), token);
}

/**
 * `text` read each way a token may be spelled in it (compute once, then ask `revealed` per token).
 * Decodings are stacked up to three deep (JSON-unescaped twice as well: a log line is JSON, so a
 * spelling with escapes inside one of its string fields (`\\u0074`) is escaped once more).
 */
export function decodedViews(text: string): string[] {
  const decoded = new Set([text]);
  let layer = [text];
  for (let depth = 0; depth < 3; depth++) {
    const next: string[] = [];
    for (const view of layer) {
      for (const decode of [percentDecode, jsonUnescape, decodeHTML]) {
        const d = decode(view);
        if (!decoded.has(d)) {
          decoded.add(d);
          next.push(d);
        }
      }
    }
    layer = next;
  }
  const views = [...decoded];
  for (const view of [...views]) {
    views.push(view.replace(/[\t\n\f\r \0]/g, ''));
    if (view.includes(' ')) views.push(view.replace(/ /g, '+'));
  }
  for (const view of [...views]) views.push(...base64Views(view));
  return views;
}

/** Whether any view carries the token's core. */
export function revealed(views: string[], token: string): boolean {
  const core = tokenCore(token);
  return views.some((v) => v.includes(core));
}

/** What `revealed` looks for: all but two characters at each end, which base64 may share with neighbouring bytes. */
export function tokenCore(token: string): string {
  return token.slice(2, -2);
}

/** Needles are filed under a hash of their first KEY characters; shorter ones are searched one by one. */
const KEY = 8;
const BASE = 31;
/** BASE^(KEY-1) mod 2^32: what the character leaving the window weighs in the rolling hash. */
const OUT_WEIGHT = Array.from({ length: KEY - 1 }).reduce<number>((w) => Math.imul(w, BASE), 1);
/** Map keys kept in V8's small-integer range. */
const slot = (h: number) => h & 0x3fffffff;

function hashAt(s: string, at: number): number {
  let h = 0;
  for (let i = at; i < at + KEY; i++) h = (Math.imul(h, BASE) + s.charCodeAt(i)) | 0;
  return h;
}

/**
 * Many needles (every token ever issued, every secret) found in a text in one pass, whatever their
 * number: each needle is hashed once, when added; a text is scanned once with a rolling hash, and
 * only a position whose hash matches is compared. `foundIn(text)` is exactly the needles `n` with
 * `text.includes(n)`.
 */
export class NeedleIndex {
  readonly #bySlot = new Map<number, string[]>();
  readonly #short: string[] = [];
  readonly #all = new Set<string>();

  /** How many distinct needles the index holds. */
  get size(): number {
    return this.#all.size;
  }

  add(needle: string): void {
    if (this.#all.has(needle)) return;
    this.#all.add(needle);
    if (needle.length < KEY) {
      this.#short.push(needle);
      return;
    }
    const key = slot(hashAt(needle, 0));
    const list = this.#bySlot.get(key);
    if (list === undefined) this.#bySlot.set(key, [needle]);
    else list.push(needle);
  }

  /** The needles that occur in `text`, added to `found`. */
  foundIn(text: string, found: Set<string> = new Set()): Set<string> {
    for (const n of this.#short) if (text.includes(n)) found.add(n);
    if (this.#bySlot.size === 0 || text.length < KEY) return found;
    let h = hashAt(text, 0);
    for (let i = 0; ; i++) {
      const list = this.#bySlot.get(slot(h));
      if (list !== undefined) for (const n of list) if (text.startsWith(n, i)) found.add(n);
      if (i + KEY >= text.length) return found;
      h = (Math.imul(h - Math.imul(text.charCodeAt(i), OUT_WEIGHT), BASE) + text.charCodeAt(i + KEY)) | 0;
    }
  }
}

function percentDecode(s: string): string {
  return s.replace(/%([0-9a-fA-F]{2})/g, (_, h: string) => String.fromCharCode(parseInt(h, 16)));
}

const JSON_SHORT: Record<string, string> = { '"': '"', '\\': '\\', '/': '/', b: '\b', f: '\f', n: '\n', r: '\r', t: '\t' };

function jsonUnescape(s: string): string {
  return s.replace(/\\u([0-9a-fA-F]{4})|\\(["\\/bfnrt])/g, (_, h: string | undefined, c: string | undefined) => (h !== undefined ? String.fromCharCode(parseInt(h, 16)) : JSON_SHORT[c!]!));
}

/** Every run of base64 characters (either alphabet), decoded from each of its first four offsets. */
function base64Views(s: string): string[] {
  const out: string[] = [];
  for (const m of s.matchAll(/[A-Za-z0-9+/_-]{8,}/g)) {
    const run = m[0].replace(/-/g, '+').replace(/_/g, '/');
    for (let o = 0; o < 4; o++) {
      const part = run.slice(o);
      try {
        out.push(atob(part.slice(0, part.length - (part.length % 4))));
      } catch {
        // not base64 from here
      }
    }
  }
  return out;
}
