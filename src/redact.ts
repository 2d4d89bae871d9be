/**
 * @module Redaction: cut a secret out of text and byte streams in every spelling it travels in.
 *
 * An API that echoes a request (a debug endpoint, an error page quoting headers) hands the injected
 * token back, and not always as typed. A `Redactor` is built once per token: it looks for the raw
 * token and each base64 run of it (three byte alignments, either alphabet), where every character
 * may be written raw; percent-encoded (`%2B`, either case); as a JSON or JavaScript escape
 * (`\u002B`, `\x2B`, `\/`); as an HTML character reference (`&#43;`, `&#x2b`, `&#0043;`, `&plus;`);
 * or, for `+`, as a space (form decoding). The characters of an escape may be spelled in turn, so
 * `%252B`, `%25252B`, `\u00252B`, `%5Cu002B` and `%26%2343%3B` are found too, and between two
 * characters there may be whitespace or NUL (wrapped base64, a folded line, UTF-16 read as bytes).
 * A match spans at most `MAX_SPELLING_BYTES` per character.
 *
 * The needles run as one automaton over the bytes (a set of live states, each a needle position
 * plus the escapes open there), so the work is linear in the text's length whatever the token: no
 * backtracking. It works on bytes, so the body's charset is never touched, and as a stream it
 * holds back only bytes where a match may have begun: at most `maxMatchBytes`.
 */
import { characterEntities } from 'character-entities';
import { characterEntitiesLegacy } from 'character-entities-legacy';
import { base64, concatBytes } from './bytes';

/**
 * Shortest token the Worker will inject: a shorter one could not be cut out of an answer without
 * mangling ordinary text, so it is refused where it is issued (token/grant.ts).
 */
export const MIN_TOKEN_LENGTH = 16;

/** Shorter values are never redacted (a 2-character client id would cut words apart). */
export const MIN_REDACTED = 4;

/** What replaces a secret. */
export const REDACTED = '[redacted]';

/**
 * Most bytes a match may span per character of what it spells (escapes within escapes and
 * whitespace between characters included). Every realistic stack of encoders fits
 * (`%2526%252343%253B`, a percent-encoded, percent-encoded HTML reference, is 17 bytes for one
 * character); it bounds how much a stream holds back, and how long a state lives.
 */
export const MAX_SPELLING_BYTES = 20;

const ENCODER = new TextEncoder();
const DECODER = new TextDecoder();
const REDACTED_BYTES = ENCODER.encode(REDACTED);

const PERCENT = 0x25;
const BACKSLASH = 0x5c;
const AMPERSAND = 0x26;
const PLUS = 0x2b;
const SPACE = 0x20;
const SEMICOLON = 0x3b;
const HASH = 0x23;

/** Bytes that begin an escape: `%XX`, `\…`, `&…;`. */
const ESCAPE_START = new Uint8Array(256);
ESCAPE_START[PERCENT] = ESCAPE_START[BACKSLASH] = ESCAPE_START[AMPERSAND] = 1;

const HEX = new Int8Array(256).fill(-1);
for (let i = 0; i < 16; i++) {
  HEX['0123456789abcdef'.charCodeAt(i)] = i;
  HEX['0123456789ABCDEF'.charCodeAt(i)] = i;
}
const isDigit = (c: number) => c >= 0x30 && c <= 0x39;

/** JSON and JavaScript one-character escapes: `\/` is `/`, `\n` a line feed. */
const SHORT_ESCAPE = new Int16Array(256).fill(-1);
for (const [c, v] of [['/', 0x2f], ['"', 0x22], ['\\', 0x5c], ["'", 0x27], ['n', 0x0a], ['r', 0x0d], ['t', 0x09], ['f', 0x0c], ['b', 0x08]] as const) {
  SHORT_ESCAPE[c.charCodeAt(0)] = v;
}

/**
 * What may come between two characters of a value: whitespace (a base64 decoder skips it, as
 * atob does; MIME and PEM wrap lines; a long header line is folded) and NUL (the high bytes of
 * UTF-16 or UTF-32 text). Each may be spelled, like any character (`\r\n` in JSON).
 */
const GAP = new Uint8Array(256);
for (const c of [0x09, 0x0a, 0x0c, 0x0d, 0x20, 0x00]) GAP[c] = 1;

/**
 * HTML named character references that stand for an ASCII character (`&plus;`, `&sol;`, `&amp;`…),
 * from the WHATWG list, as a trie: node 0 is the root; `next[node * 128 + c]` the child for `c`;
 * `value[node]` the character when the name ends there (with `;`), `legacy[node]` when it may also
 * end without one (`&amp`, `&lt`…).
 */
const NAMES = (() => {
  const ascii = Object.entries(characterEntities).filter(([, v]) => v.length === 1 && v.charCodeAt(0) < 0x80);
  const legacySet = new Set(characterEntitiesLegacy);
  const next: number[] = [];
  const value: number[] = [-1];
  const legacy: boolean[] = [false];
  for (const [name, v] of ascii) {
    let node = 0;
    for (const ch of name) {
      const c = ch.charCodeAt(0);
      let child = next[node * 128 + c];
      if (child === undefined) {
        child = value.length;
        value.push(-1);
        legacy.push(false);
        next[node * 128 + c] = child;
      }
      node = child;
    }
    value[node] = v.charCodeAt(0);
    if (legacySet.has(name)) legacy[node] = true;
  }
  return { next, value, legacy };
})();

/**
 * An escape being read is a *frame*, coded as one integer (no allocation per byte): its kind (what
 * has been read of it so far) in bits 0–3, `n` in bits 4–5, the value read so far (or, for a name,
 * its trie node) in bits 6–13.
 */
const enum Kind {
  /** `%`, then `n` hex digits (0 or 1). */
  Percent,
  /** `\`, nothing more yet. */
  Backslash,
  /** `\u`, then `n` hex digits (0–3). */
  JsonU,
  /** `\x`, then `n` hex digits (0 or 1). */
  JsX,
  /** `&`, nothing more yet. */
  Amp,
  /** `&#`. */
  Numeric,
  /** `&#` and decimal digits (any number: leading zeros). */
  Decimal,
  /** `&#x`, then hex digits (`n` = 1: at least one). */
  HexRef,
  /** `&` and the letters of a name (the value field is the trie node). */
  Named,
}
const FRAME_CODES = 1 << 14;
const frame = (kind: Kind, n: number, v: number) => kind | (n << 4) | (v << 6);
const kindOf = (f: number): Kind => f & 15;
const nOf = (f: number) => (f >> 4) & 3;
const vOf = (f: number) => f >> 6;
if (NAMES.value.length > 256) throw new Error('the HTML name trie no longer fits a frame');

/** `advance`: the character cannot come next. */
const NONE = -1;

/**
 * The frame after frame `f` reads character `x`: the new frame (≥ 0) if it goes on; if it is
 * complete, `-2 - c` where `c` is the character it stands for; NONE if `x` cannot come next.
 */
function advance(f: number, x: number): number {
  const v = vOf(f);
  switch (kindOf(f)) {
    case Kind.Percent: {
      const h = HEX[x]!;
      if (h < 0) return NONE;
      return nOf(f) === 0 ? frame(Kind.Percent, 1, h) : -2 - ((v << 4) | h);
    }
    case Kind.Backslash: {
      if (x === 0x75) return frame(Kind.JsonU, 0, 0); // \u
      if (x === 0x78) return frame(Kind.JsX, 0, 0); // \x
      const c = SHORT_ESCAPE[x]!;
      return c >= 0 ? -2 - c : NONE;
    }
    case Kind.JsonU: {
      const h = HEX[x]!;
      const w = (v << 4) | h;
      // JSON escapes code points: past ASCII it is no byte of the needle (UTF-8 bytes are looked for raw or %-encoded).
      if (h < 0 || w >= 0x80) return NONE;
      return nOf(f) === 3 ? -2 - w : frame(Kind.JsonU, nOf(f) + 1, w);
    }
    case Kind.JsX: {
      const h = HEX[x]!;
      if (h < 0) return NONE;
      return nOf(f) === 0 ? frame(Kind.JsX, 1, h) : -2 - ((v << 4) | h);
    }
    case Kind.Amp: {
      if (x === HASH) return frame(Kind.Numeric, 0, 0);
      const child = x < 0x80 ? NAMES.next[x] : undefined;
      return child === undefined ? NONE : frame(Kind.Named, 0, child);
    }
    case Kind.Numeric: {
      if (x === 0x78 || x === 0x58) return frame(Kind.HexRef, 0, 0); // &#x, &#X
      return isDigit(x) ? frame(Kind.Decimal, 0, x - 0x30) : NONE;
    }
    case Kind.Decimal: {
      if (x === SEMICOLON) return -2 - v;
      const w = v * 10 + (x - 0x30);
      return isDigit(x) && w < 0x80 ? frame(Kind.Decimal, 0, w) : NONE;
    }
    case Kind.HexRef: {
      if (x === SEMICOLON) return nOf(f) === 1 ? -2 - v : NONE;
      const h = HEX[x]!;
      const w = (v << 4) | h;
      return h >= 0 && w < 0x80 ? frame(Kind.HexRef, 1, w) : NONE;
    }
    case Kind.Named: {
      if (x === SEMICOLON) return NAMES.value[v]! >= 0 ? -2 - NAMES.value[v]! : NONE;
      const child = x < 0x80 ? NAMES.next[v * 128 + x] : undefined;
      return child === undefined ? NONE : frame(Kind.Named, 0, child);
    }
  }
}

/**
 * The character frame `f` stands for if it may end here without a `;` (a numeric reference, whose
 * semicolon browsers do not require, or a legacy name such as `&amp`), else NONE.
 */
function closesWithoutSemicolon(f: number): number {
  const kind = kindOf(f);
  if (kind === Kind.Decimal || (kind === Kind.HexRef && nOf(f) === 1)) return vOf(f);
  if (kind === Kind.Named && NAMES.legacy[vOf(f)]) return NAMES.value[vOf(f)]!;
  return NONE;
}

/** The frame an escape-start byte opens. */
const opening = (x: number) => frame(x === PERCENT ? Kind.Percent : x === BACKSLASH ? Kind.Backslash : Kind.Amp, 0, 0);

/**
 * The escapes a state is inside, as one integer: 0 none; one frame `f`: `f + 1`; an escape inside
 * it, `g`: `f + 1 + (g + 1) * FRAME_CODES`. No deeper: an escape inside an escape is enough for
 * every encoder applied over another (`%5C%75%30%30%32%42`, each character of `\u002B`
 * percent-encoded), and a third level costs more than `MAX_SPELLING_BYTES` per character.
 */
const EMPTY = 0;
const depthOf = (stack: number) => (stack === EMPTY ? 0 : stack <= FRAME_CODES ? 1 : 2);
const topOf = (stack: number) => (stack <= FRAME_CODES ? stack - 1 : Math.floor(stack / FRAME_CODES) - 1);
const popped = (stack: number) => (stack <= FRAME_CODES ? EMPTY : stack % FRAME_CODES);
const pushed = (stack: number, f: number) => (stack === EMPTY ? f + 1 : stack + (f + 1) * FRAME_CODES);

/** A state before any character of a needle is spelled: it may still become any of them. */
const ANY = -1;

/** A match: `[start, end)` in absolute offsets. */
interface Match {
  readonly start: number;
  readonly end: number;
}

/**
 * Finds and cuts out a fixed set of secret values (see the module comment for what it matches).
 * Build one per token (`redactorFor`): all the work that does not depend on the text is done here.
 */
export class Redactor {
  /** The byte sequences looked for: each value and its base64 runs. */
  readonly needles: readonly Uint8Array[];
  /** Per needle: the most bytes a match of it may span (`MAX_SPELLING_BYTES` per character). */
  readonly spans: readonly number[];
  /** Bytes a match can start with: the needles' first bytes, escape starts, a space for a leading `+`. */
  readonly starts = new Uint8Array(256);
  /** For each character, the needles whose first character it is. */
  readonly firsts: readonly number[][];
  /** Most bytes a match can span (`MAX_SPELLING_BYTES` per character of the longest needle): the most a stream ever holds back. */
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
    this.spans = this.needles.map((n) => n.length * MAX_SPELLING_BYTES);
    const firsts: number[][] = Array.from({ length: 256 }, () => []);
    this.needles.forEach((n, i) => {
      firsts[n[0]!]!.push(i);
      if (n[0] === PLUS) firsts[SPACE]!.push(i);
    });
    this.firsts = firsts;
    for (let c = 0; c < 256; c++) if (firsts[c]!.length > 0) this.starts[c] = 1;
    if (this.needles.length > 0) for (let c = 0; c < 256; c++) if (ESCAPE_START[c]) this.starts[c] = 1;
    this.maxMatchBytes = Math.max(0, ...this.spans);
  }

  /** Whether there is nothing to look for (every value was too short). */
  get empty(): boolean {
    return this.needles.length === 0;
  }

  /** `buf` with every match replaced by `[redacted]`; `buf` itself (no copy) when there is none. */
  redactBytes(buf: Uint8Array): Uint8Array {
    if (this.empty) return buf;
    const cursor = this.cursor();
    const parts = [...cursor.push(buf), ...cursor.end()];
    return cursor.matches === 0 ? buf : concatBytes(parts);
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
    if (this.empty) return false;
    const cursor = this.cursor();
    cursor.push(ENCODER.encode(text));
    cursor.end();
    return cursor.matches > 0;
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
 * A set of states, stored in typed arrays (no object per state per byte: a token of backslashes
 * keeps dozens alive at every byte), with an open-addressing index so that equal states merge.
 */
class StateSet {
  needle = new Int32Array(64);
  j = new Int32Array(64);
  stack = new Int32Array(64);
  start = new Float64Array(64);
  size = 0;
  private slots = new Int32Array(256);
  private stamps = new Uint32Array(256);
  private generation = 1;

  clear(): void {
    this.size = 0;
    this.generation++;
  }

  /** Add a state; of two equal states (needle, position, escapes) the later-begun one stays. */
  add(needle: number, j: number, stack: number, start: number): void {
    if (2 * (this.size + 1) > this.slots.length) this.grow();
    const mask = this.slots.length - 1;
    let h = (Math.imul(needle + 1, 0x9e3779b1) ^ Math.imul(j, 0x85ebca6b) ^ Math.imul(stack, 0xc2b2ae35)) & mask;
    for (; this.stamps[h] === this.generation; h = (h + 1) & mask) {
      const i = this.slots[h]!;
      if (this.needle[i] === needle && this.j[i] === j && this.stack[i] === stack) {
        if (start > this.start[i]!) this.start[i] = start;
        return;
      }
    }
    const i = this.size++;
    if (i === this.needle.length) this.growStates();
    this.stamps[h] = this.generation;
    this.slots[h] = i;
    this.needle[i] = needle;
    this.j[i] = j;
    this.stack[i] = stack;
    this.start[i] = start;
  }

  private growStates(): void {
    const n = this.needle.length * 2;
    const copy = <T extends Int32Array | Float64Array>(a: T, b: T) => (b.set(a), b);
    this.needle = copy(this.needle, new Int32Array(n));
    this.j = copy(this.j, new Int32Array(n));
    this.stack = copy(this.stack, new Int32Array(n));
    this.start = copy(this.start, new Float64Array(n));
  }

  /** Double the index and put the states back in it. */
  private grow(): void {
    this.slots = new Int32Array(this.slots.length * 2);
    this.stamps = new Uint32Array(this.stamps.length * 2);
    this.generation = 1;
    const mask = this.slots.length - 1;
    for (let i = 0; i < this.size; i++) {
      let h = (Math.imul(this.needle[i]! + 1, 0x9e3779b1) ^ Math.imul(this.j[i]!, 0x85ebca6b) ^ Math.imul(this.stack[i]!, 0xc2b2ae35)) & mask;
      while (this.stamps[h] === 1) h = (h + 1) & mask;
      this.stamps[h] = 1;
      this.slots[h] = i;
    }
  }
}

/**
 * The automaton over one text: the live states after each byte. Every match is reported, also
 * overlapping ones (the caller cuts out their union, so two echoes sharing a byte are both
 * gone). Two ways of reaching the same state are one state, kept with the later start: it has the
 * most of its span left, so it ends in a match whenever either would. The work per byte is bounded
 * by the number of distinct states (needle positions times the few escapes open there), never by
 * the number of ways to reach them.
 */
class Scanner {
  private live = new StateSet();
  private next = new StateSet();
  /** Matches completed by the last step (`[start, end)`, absolute). */
  readonly found: Match[] = [];
  /** State steps taken: the work done, for tests to bound (linear in the text's length). */
  steps = 0;

  constructor(private readonly r: Redactor) {}

  /** Whether no match is in progress. */
  get idle(): boolean {
    return this.live.size === 0;
  }

  /** Where the earliest match in progress began (absolute), or `at` when none is. */
  earliest(at: number): number {
    let min = at;
    const { start, size } = this.live;
    for (let i = 0; i < size; i++) if (start[i]! < min) min = start[i]!;
    return min;
  }

  /** Read byte `c` at absolute offset `at`; matches it completes are in `found`. */
  step(c: number, at: number): void {
    const { r, live } = this;
    this.found.length = 0;
    const fresh = r.starts[c] === 1;
    if (live.size === 0 && !fresh) return;
    this.next.clear();
    for (let i = 0; i < live.size; i++) {
      this.steps++;
      const needle = live.needle[i]!;
      const start = live.start[i]!;
      // A match spans at most `spans` bytes: past that the state is dropped (this bounds the hold-back).
      if (at - start < (needle === ANY ? r.maxMatchBytes : r.spans[needle]!)) this.arrive(needle, live.j[i]!, start, live.stack[i]!, c, at);
    }
    if (fresh) {
      this.steps++;
      this.arrive(ANY, 0, at, EMPTY, c, at);
    }
    this.live = this.next;
    this.next = live;
  }

  /**
   * Character `x` (a byte, or what an inner escape stood for) arrives at the innermost open escape
   * of `stack` (or at the needle when none is open), in the state (`needle`, `j`, begun at
   * `start`): it is the next character there, or it begins an escape of its own.
   */
  private arrive(needle: number, j: number, start: number, stack: number, x: number, at: number): void {
    const next = this.next;
    if (stack === EMPTY) {
      if (needle === ANY) {
        for (const n of this.r.firsts[x]!) next.add(n, 1, EMPTY, start);
      } else {
        const bytes = this.r.needles[needle]!;
        const want = bytes[j]!;
        if (x === want || (want === PLUS && x === SPACE)) {
          if (j + 1 === bytes.length) this.found.push({ start, end: at + 1 });
          else next.add(needle, j + 1, EMPTY, start);
        }
        // Whitespace or NUL between two characters (a space before a `+` may be either).
        if (j > 0 && GAP[x] === 1) next.add(needle, j, EMPTY, start);
      }
    } else {
      const rest = popped(stack);
      const after = advance(topOf(stack), x);
      if (after >= 0) {
        next.add(needle, j, pushed(rest, after), start);
        const early = closesWithoutSemicolon(after);
        if (early !== NONE) this.arrive(needle, j, start, rest, early, at);
      } else if (after !== NONE) {
        this.arrive(needle, j, start, rest, -2 - after, at);
      }
    }
    if (ESCAPE_START[x] === 1 && depthOf(stack) < 2) next.add(needle, j, pushed(stack, opening(x)), start);
  }
}

/**
 * Redaction of a byte stream chunk by chunk: `push` returns what can be passed on now, holding
 * back only bytes where a match may have begun (never more than `maxMatchBytes`), so a token
 * split across chunks is still caught; `end` returns the rest. Overlapping matches are cut out as
 * one: their union becomes one `[redacted]`.
 */
export class RedactingCursor {
  /** Bytes neither passed on nor cut yet: from absolute offset `from`. */
  private pending: Uint8Array = new Uint8Array(0);
  private from = 0;
  /** Absolute offset of the next byte to scan. */
  private scanned = 0;
  /** Bytes before this offset that are not passed on are cut (a `[redacted]` already stands for them). */
  private cutTo = 0;
  /** A union of matches found but not yet cut (another match may still overlap it on the left). */
  private group: Match | undefined;
  private readonly scanner: Scanner;
  /** `[redacted]`s written so far. */
  matches = 0;

  constructor(private readonly redactor: Redactor) {
    this.scanner = new Scanner(redactor);
  }

  /** Bytes held back for the next chunk. */
  get held(): number {
    return this.pending.length;
  }

  /** The automaton's steps so far: linear in the bytes pushed, whatever the token (tests bound it). */
  get steps(): number {
    return this.scanner.steps;
  }

  push(chunk: Uint8Array): Uint8Array[] {
    this.pending = this.pending.length === 0 ? chunk : concatBytes([this.pending, chunk]);
    const out: Uint8Array[] = [];
    const { scanner } = this;
    const starts = this.redactor.starts;
    const end = this.from + this.pending.length;
    while (this.scanned < end) {
      // Nothing in progress: skip to the next byte a match can start with.
      if (scanner.idle) {
        const base = this.from;
        const bytes = this.pending;
        while (this.scanned < end && starts[bytes[this.scanned - base]!] === 0) this.scanned++;
        if (this.scanned === end) break;
      }
      scanner.step(this.pending[this.scanned - this.from]!, this.scanned);
      this.scanned++;
      for (const m of scanner.found) this.add(m, out);
      if (this.group !== undefined && this.group.start < scanner.earliest(this.scanned)) this.cut(out);
    }
    this.pass(Math.min(scanner.earliest(this.scanned), this.group?.start ?? Infinity), out);
    // Keep a copy of what is held, not a view that would keep the whole chunk alive.
    if (this.pending.length > 0) this.pending = this.pending.slice();
    return out;
  }

  end(): Uint8Array[] {
    const out: Uint8Array[] = [];
    if (this.group !== undefined) this.cut(out);
    this.pass(this.from + this.pending.length, out);
    return out;
  }

  /** A match: it extends what is cut already, or joins (or begins) the group waiting to be cut. */
  private add(m: Match, out: Uint8Array[]): void {
    if (m.start < this.cutTo) {
      this.drop(Math.max(this.cutTo, m.end));
    } else if (this.group !== undefined && m.start < this.group.end && m.end > this.group.start) {
      this.group = { start: Math.min(this.group.start, m.start), end: Math.max(this.group.end, m.end) };
    } else {
      if (this.group !== undefined) this.cut(out); // a later match, apart from it: the group is complete
      this.group = { ...m };
    }
  }

  /** Write the group as one `[redacted]` (the bytes before it first). */
  private cut(out: Uint8Array[]): void {
    const g = this.group!;
    this.group = undefined;
    this.pass(g.start, out);
    out.push(REDACTED_BYTES.slice());
    this.matches++;
    this.drop(g.end);
  }

  /** Pass on the bytes before absolute offset `to`. */
  private pass(to: number, out: Uint8Array[]): void {
    if (to <= this.from) return;
    out.push(this.pending.slice(0, to - this.from));
    this.pending = this.pending.subarray(to - this.from);
    this.from = to;
  }

  /** Cut the bytes before absolute offset `to` (a `[redacted]` already stands for them). */
  private drop(to: number): void {
    this.cutTo = to;
    if (to <= this.from) return;
    this.pending = this.pending.subarray(to - this.from);
    this.from = to;
  }
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
