/**
 * @module Content-Type, read strictly: exactly one RFC 9110 media type, or nothing.
 *
 * Browsers read a Content-Type leniently (Fetch's "extract a MIME type" takes the last of a comma
 * list, and skips what it cannot parse), so `application/json, text/html` is rendered as HTML and
 * `text/plain;, text/html` too. A check that reads only the first type would let such a header
 * past: the one parser here, used for requests (gateway/body.ts), answers (gateway/answer.ts) and token answers (token/grant.ts), accepts one
 * `type/subtype` with parameters in RFC 9110's grammar (§8.3.1, §5.6.6) and nothing else: a list,
 * a malformed type or a parameter given twice is `undefined`, which callers refuse.
 */

/** A parsed media type: `essence` is `type/subtype` lower-cased; parameter names are lower-cased. */
export interface MediaType {
  readonly essence: string;
  readonly params: ReadonlyMap<string, string>;
}

const TOKEN = "[!#$%&'*+.^_`|~0-9A-Za-z-]+";
const OWS = '[ \\t]*';
/** quoted-string: qdtext (HTAB, SP, VCHAR but `"` and `\`, obs-text) or a quoted-pair. */
const QUOTED = '"(?:[\\t \\x21\\x23-\\x5b\\x5d-\\x7e\\x80-\\xff]|\\\\[\\t \\x21-\\x7e\\x80-\\xff])*"';
const TYPE = new RegExp(`^(${TOKEN})/(${TOKEN})`, 'y');
/** One `OWS ";" OWS [ name "=" value ]` (RFC 9110 allows an empty parameter). */
const PARAM = new RegExp(`${OWS};${OWS}(?:(${TOKEN})=(${TOKEN}|${QUOTED}))?`, 'y');

/** The media type `value` names, or undefined unless it is exactly one well-formed media type. */
export function parseMediaType(value: string): MediaType | undefined {
  TYPE.lastIndex = 0;
  const m = TYPE.exec(value);
  if (m === null) return undefined;
  const params = new Map<string, string>();
  let at = TYPE.lastIndex;
  while (at < value.length) {
    PARAM.lastIndex = at;
    const p = PARAM.exec(value);
    if (p === null || PARAM.lastIndex === at) return undefined;
    at = PARAM.lastIndex;
    if (p[1] === undefined) continue;
    const name = p[1].toLowerCase();
    if (params.has(name)) return undefined; // which one counts is up to the reader: neither does
    const raw = p[2]!;
    params.set(name, raw.startsWith('"') ? raw.slice(1, -1).replace(/\\(.)/g, '$1') : raw);
  }
  return { essence: `${m[1]}/${m[2]}`.toLowerCase(), params };
}

/**
 * WHATWG Encoding Standard labels of the encodings in which ASCII bytes do not stand for ASCII
 * text (https://encoding.spec.whatwg.org/#names-and-labels): UTF-16BE, UTF-16LE (a token is
 * spelled with NULs between its bytes), ISO-2022-JP (escape sequences a browser does not show can
 * split it) and `replacement`; and UTF-32 labels, which the standard does not know but an API may
 * still write its bytes in.
 */
const NOT_ASCII_LABELS = new Set([
  // UTF-16BE
  'unicodefffe',
  'utf-16be',
  // UTF-16LE
  'csunicode',
  'iso-10646-ucs-2',
  'ucs-2',
  'unicode',
  'unicodefeff',
  'utf-16',
  'utf-16le',
  // ISO-2022-JP
  'csiso2022jp',
  'iso-2022-jp',
  // replacement
  'csiso2022kr',
  'hz-gb-2312',
  'iso-2022-cn',
  'iso-2022-cn-ext',
  'iso-2022-kr',
  'replacement',
  // UTF-32 (no browser decodes it; its bytes still hide a token from a byte search)
  'utf-32',
  'utf-32be',
  'utf-32le',
  'utf32',
  'ucs-4',
  'iso-10646-ucs-4',
  'csucs4',
  'utf16',
  'utf-16-le',
  'utf-16-be',
]);

/** Whether a `charset` label names an encoding in which ASCII bytes are not ASCII (WHATWG trimming and case). */
export function asciiIncompatible(label: string): boolean {
  return NOT_ASCII_LABELS.has(label.replace(/^[\t\n\f\r ]+|[\t\n\f\r ]+$/g, '').toLowerCase());
}
