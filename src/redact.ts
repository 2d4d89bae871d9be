/**
 * @module Redaction: cut a secret out of text and byte streams in every spelling it travels in.
 *
 * An API that echoes a request (a debug endpoint, an error page quoting headers) hands the injected
 * token back, and not always as typed: JSON-escaped (`\/`, `\u002B`, mixed), percent-encoded (either
 * hex case, some characters or all), or base64-encoded inside a bigger value (at any of the three
 * byte alignments, either alphabet). A `Redactor` is built once per token: it matches the raw token
 * and each base64 run of it, where every character may itself be written raw, as `%XX` or as a JSON
 * escape, so mixed spellings are caught without listing them. It works on bytes, so the body's
 * charset is never touched, and as a stream it holds back only the bytes a match may still need.
 */

/**
 * Shortest token the Worker will inject: a shorter one could not be cut out of an answer without
 * mangling ordinary text, so it is refused where it is issued (token/grant.ts).
 */
export const MIN_TOKEN_LENGTH = 16;

/** Shorter values are never redacted (a 2-character client id would cut words apart). */
export const MIN_REDACTED = 4;

/** What replaces a secret. */
export const REDACTED = '[redacted]';

import { base64, concatBytes } from './bytes';

const ENCODER = new TextEncoder();
const DECODER = new TextDecoder();
const REDACTED_BYTES = ENCODER.encode(REDACTED);
const PERCENT = 0x25;
const BACKSLASH = 0x5c;
/** A JSON escape of the byte itself: `\/`, `\"`, `\\`. */
const SELF_ESCAPED = new Set([0x2f, 0x22, 0x5c]);
const NO = -1;
const MORE = -2;

const HEX = new Int8Array(256).fill(-1);
for (let i = 0; i < 16; i++) {
  HEX['0123456789abcdef'.charCodeAt(i)] = i;
  HEX['0123456789ABCDEF'.charCodeAt(i)] = i;
}

/**
 * The base64 characters that depend on `value`'s bytes only, when it is encoded behind `lead`
 * other bytes (0, 1 or 2: every alignment modulo 3). Characters shared with unknown neighbours
 * are left out, so the run is found whatever surrounds the value.
 */
function base64Core(value: Uint8Array, lead: number): string {
  const bytes = new Uint8Array(lead + value.length + 2);
  bytes.set(value, lead);
  const all = base64(bytes);
  let first = -1;
  let last = -1;
  for (let c = 0; 6 * c + 5 < 8 * bytes.length; c++) {
    const from = Math.floor((6 * c) / 8);
    const to = Math.floor((6 * c + 5) / 8);
    if (from >= lead && to < lead + value.length) {
      if (first === -1) first = c;
      last = c;
    }
  }
  return first === -1 ? '' : all.slice(first, last + 1);
}

/** Base64 runs of `value` at the three alignments, standard and URL-safe alphabets. */
function base64Runs(value: Uint8Array): string[] {
  const runs = new Set<string>();
  for (let lead = 0; lead < 3; lead++) {
    const core = base64Core(value, lead);
    if (core.length < MIN_REDACTED) continue;
    runs.add(core);
    runs.add(core.replace(/\+/g, '-').replace(/\//g, '_'));
  }
  return [...runs];
}

/** A match in a buffer: `[start, end)`, or `more`: a match may start at `start` and need bytes not yet seen. */
type Found = { start: number; end: number; more?: undefined } | { start: number; more: true; end?: undefined };

/**
 * Finds and cuts out a fixed set of secret values (see the module comment for what it matches).
 * Build one per token (`redactorFor`): all the work that does not depend on the text is done here.
 */
export class Redactor {
  /** The byte sequences looked for: each value and its base64 runs. */
  private readonly needles: Uint8Array[];
  /** Bytes a match can start with: the needles' first bytes, `%` and `\`. */
  private readonly starts = new Uint8Array(256);
  /** Longest spelling of any needle (every byte as `\u00XX`): the most a stream ever holds back. */
  readonly maxMatchBytes: number;

  constructor(values: readonly string[]) {
    const needles = new Map<string, Uint8Array>();
    for (const value of values) {
      if (value.length < MIN_REDACTED) continue;
      const utf8 = ENCODER.encode(value);
      needles.set(value, utf8);
      for (const run of base64Runs(utf8)) needles.set(run, ENCODER.encode(run));
    }
    this.needles = [...needles.values()];
    for (const n of this.needles) this.starts[n[0]!] = 1;
    if (this.needles.length > 0) this.starts[PERCENT] = this.starts[BACKSLASH] = 1;
    this.maxMatchBytes = Math.max(0, ...this.needles.map((n) => n.length * 6));
  }

  /** Whether there is nothing to look for (every value was too short). */
  get empty(): boolean {
    return this.needles.length === 0;
  }

  /**
   * The first match in `buf` at or after `from`. Unless `final`, a match cut short by the end of
   * `buf` is reported as `more` (the caller keeps the bytes from there for the next chunk).
   */
  find(buf: Uint8Array, from: number, final: boolean): Found | undefined {
    const { starts, needles } = this;
    for (let i = from; i < buf.length; i++) {
      if (starts[buf[i]!] === 0) continue;
      let more = false;
      for (const needle of needles) {
        const end = matchAt(buf, i, needle, 0, final);
        if (end >= 0) return { start: i, end };
        if (end === MORE) more = true;
      }
      if (more) return { start: i, more: true };
    }
    return undefined;
  }

  /** `buf` with every match replaced by `[redacted]`; `buf` itself (no copy) when there is none. */
  redactBytes(buf: Uint8Array): Uint8Array {
    let m = this.find(buf, 0, true);
    if (m === undefined) return buf;
    const parts: Uint8Array[] = [];
    let from = 0;
    for (; m !== undefined; m = this.find(buf, from, true)) {
      parts.push(buf.subarray(from, m.start), REDACTED_BYTES);
      from = m.end!;
    }
    parts.push(buf.subarray(from));
    return concatBytes(parts);
  }

  /** `text` with every match replaced by `[redacted]`. */
  redactText(text: string): string {
    if (this.empty) return text;
    const bytes = ENCODER.encode(text);
    const out = this.redactBytes(bytes);
    return out === bytes ? text : DECODER.decode(out);
  }

  /** Whether `text` carries any value in any spelling (headers are dropped, not edited). */
  foundIn(text: string): boolean {
    return !this.empty && this.find(ENCODER.encode(text), 0, true) !== undefined;
  }

  /** Incremental redaction of one byte stream (see `RedactingCursor`). */
  cursor(): RedactingCursor {
    return new RedactingCursor(this);
  }

  /** A byte stream with every match replaced (a `RedactingCursor` as a TransformStream). */
  stream(): TransformStream<Uint8Array, Uint8Array> {
    const cursor = this.cursor();
    const pass = (parts: Uint8Array[], out: TransformStreamDefaultController<Uint8Array>) => {
      for (const p of parts) out.enqueue(p);
    };
    return new TransformStream({
      transform: (chunk, out) => pass(cursor.push(chunk), out),
      flush: (out) => pass(cursor.end(), out),
    });
  }
}

/**
 * Redaction of a byte stream chunk by chunk: `push` returns what can be passed on now, holding
 * back only bytes where a match may have begun (never more than `maxMatchBytes`), so a token
 * split across chunks is still caught; `end` returns the rest.
 */
export class RedactingCursor {
  private carry: Uint8Array = new Uint8Array(0);

  constructor(private readonly redactor: Redactor) {}

  /** Bytes held back for the next chunk. */
  get held(): number {
    return this.carry.length;
  }

  push(chunk: Uint8Array): Uint8Array[] {
    return this.run(this.carry.length === 0 ? chunk : concatBytes([this.carry, chunk]), false);
  }

  end(): Uint8Array[] {
    return this.run(this.carry, true);
  }

  private run(buf: Uint8Array, final: boolean): Uint8Array[] {
    const out: Uint8Array[] = [];
    let from = 0;
    for (let m = this.redactor.find(buf, 0, final); ; m = this.redactor.find(buf, from, final)) {
      if (m === undefined || m.more) {
        const keep = m === undefined ? buf.length : m.start;
        if (keep > from) out.push(buf.slice(from, keep));
        this.carry = buf.slice(keep);
        return out;
      }
      if (m.start > from) out.push(buf.slice(from, m.start));
      out.push(REDACTED_BYTES.slice());
      from = m.end;
    }
  }
}

/**
 * Where a match of `needle` (from its byte `j` on) starting at `p` ends, or NO, or MORE (the
 * buffer ends inside a possible match). Each byte may be written raw, `%XX` (either case), as a
 * JSON `\u00XX`, or `\/`, `\"`, `\\`. A raw `%` or `\` in the needle may also be an escape's first
 * byte, so both readings are tried there (bounded: only such bytes branch).
 */
function matchAt(buf: Uint8Array, p: number, needle: Uint8Array, j: number, final: boolean): number {
  for (; j < needle.length; j++) {
    if (p >= buf.length) return final ? NO : MORE;
    const want = needle[j]!;
    const c = buf[p]!;
    const escape = c === PERCENT || c === BACKSLASH ? escapedByte(buf, p, want, final) : NO;
    if (c === want) {
      if (escape >= 0 || escape === MORE) {
        const asEscape = escape === MORE ? MORE : matchAt(buf, escape, needle, j + 1, final);
        if (asEscape >= 0) return asEscape;
        const raw = matchAt(buf, p + 1, needle, j + 1, final);
        return raw === NO ? asEscape : raw;
      }
      p++;
    } else if (escape >= 0) {
      p = escape;
    } else {
      return escape;
    }
  }
  return p;
}

/** The end of an escape at `p` that stands for byte `want`, or NO, or MORE (cut short). */
function escapedByte(buf: Uint8Array, p: number, want: number, final: boolean): number {
  const short = final ? NO : MORE;
  if (buf[p] === PERCENT) {
    if (p + 2 >= buf.length) return short;
    const v = (HEX[buf[p + 1]!]! << 4) | HEX[buf[p + 2]!]!;
    return HEX[buf[p + 1]!]! >= 0 && HEX[buf[p + 2]!]! >= 0 && v === want ? p + 3 : NO;
  }
  if (p + 1 >= buf.length) return short;
  const kind = buf[p + 1]!;
  if (kind === want && SELF_ESCAPED.has(want)) return p + 2;
  if (kind !== 0x75 || want >= 0x80) return NO; // \u, for ASCII only (JSON escapes code points, not bytes)
  if (p + 5 >= buf.length) return short;
  let v = 0;
  for (let k = 2; k < 6; k++) {
    const h = HEX[buf[p + k]!]!;
    if (h < 0) return NO;
    v = (v << 4) | h;
  }
  return v === want ? p + 6 : NO;
}

/** Redactors of recent tokens: a token is used for many requests, its redactor is built once. */
const recent = new Map<string, Redactor>();
const RECENT_MAX = 16;

/** The redactor for one token, built on its first use and reused while the token is recent. */
export function redactorFor(token: string, also: readonly string[] = []): Redactor {
  const key = also.length === 0 ? token : [token, ...also].join('\u0000');
  let r = recent.get(key);
  if (r === undefined) {
    r = new Redactor([token, ...also]);
    if (recent.size >= RECENT_MAX) recent.delete(recent.keys().next().value!);
    recent.set(key, r);
  }
  return r;
}

/**
 * Replace every occurrence of each sensitive value in `text`, in any spelling the Redactor knows,
 * by `[redacted]`. For text from outside (a token endpoint's error body) before it reaches a log or
 * a problem detail.
 */
export function redact(text: string, sensitive: readonly string[]): string {
  return new Redactor(sensitive).redactText(text);
}
