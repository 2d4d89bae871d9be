/**
 * @module The API's answer, made safe for the browser: bounded, decoded, redacted, inert.
 *
 * Status and body pass through (errors too), with allowlisted headers and `Cache-Control:
 * no-store`. The body is never buffered past `BUFFERED_ANSWER_BYTES` of *decoded* bytes: an answer
 * that ends within that is read whole (so a stall there is still a 504 and the token is cut out in
 * one pass); a longer one streams, holding back only what the redactor may still need, and is cut
 * off at the route's `max_answer_bytes`. Content codings are decoded (decode.ts: gzip, deflate), never
 * passed on; others are a 502. The token is cut out in every spelling (redact.ts), and a header
 * carrying it is dropped. `Location` and `Content-Location` come back only rewritten onto a public
 * route. Every answer carries a CSP sandbox, so HTML or SVG from the API never runs as a page of
 * the Worker's origin (or, per route, is refused).
 */
import { concatBytes, readAtMost } from '../bytes';
import { decodedBody } from '../decode';
import { problem, ProblemError } from '../problem';
import { asciiIncompatible, parseMediaType } from '../media-type';
import { redactorFor, type RedactingCursor, type Redactor } from '../redact';

/** Response headers the API may pass back to the browser (no Set-Cookie, no auth challenges). */
export const FORWARDED_RESPONSE_HEADERS = [
  'content-type',
  'content-language',
  'content-disposition',
  'retry-after',
  'etag',
  'last-modified',
  'location',
  'content-location',
] as const;

/** Most decoded bytes of an answer read before the Worker answers the browser (docs/configuration.md promises 64 KiB). */
export const BUFFERED_ANSWER_BYTES = 64 * 1024;

/** Served with every API answer: a page the API sends can neither run script nor load anything. */
export const ANSWER_CSP = "sandbox; default-src 'none'";

/** The headers every answer passed back carries (and the honeypot's, which must look the same). */
export const ANSWER_HEADERS: Readonly<Record<string, string>> = { 'Cache-Control': 'no-store', 'Content-Security-Policy': ANSWER_CSP, 'X-Content-Type-Options': 'nosniff' };

/** Media types a browser would render as an active document. */
const ACTIVE = /^(text\/html|text\/xml|application\/xml|text\/xsl|[a-z0-9.-]+\/[a-z0-9.+-]*\+xml|multipart\/x-mixed-replace)$/;

/** Observes the answer's memory use (tests assert it is bounded). */
export interface AnswerMeter {
  /** Decoded bytes read from the API. */
  decodedBytes: number;
  /** Largest decoded piece read at once. */
  maxChunkBytes: number;
  /** Most decoded bytes the Worker held at one time (buffered answer, or pieces in flight plus the redactor's hold-back). */
  maxHeldBytes: number;
}

/** How one route's answers are handled (decided once per route, except the rewriter's origin). */
export interface AnswerOptions {
  /** Decoded bytes after which a streamed answer is cut off (the browser sees a broken stream). */
  maxAnswerBytes: number;
  /** `sandbox`: active content gets the CSP sandbox like everything else; `refuse`: a 502 instead. */
  activeContent: 'sandbox' | 'refuse';
  /** The public URL for an API URL (`Location`), or undefined to drop the header. */
  rewriteLocation?: (apiUrl: URL) => string | undefined;
  meter?: AnswerMeter;
}

/** For callers with no route at hand: 10 MiB, sandbox, no Location. */
export const DEFAULT_ANSWER: AnswerOptions = { maxAnswerBytes: 10 * 1024 * 1024, activeContent: 'sandbox' };

const NULL_BODY = new Set([101, 103, 204, 205, 304]);

/**
 * The API's answer `res` (to a call to `calledUrl` carrying `token`, and `alsoSecret`: what the
 * egress added) for the browser, none of them in it. Throws
 * `ProblemError`: 504 when the answer stalls past the API timeout before its first 64 KiB are in,
 * 502 for an encoding the Worker cannot decode, a broken or oversized body, or refused active content.
 */
export async function passBack(res: Response, token: string, calledUrl: URL, options: AnswerOptions, alsoSecret: readonly string[] = []): Promise<Response> {
  const redactor = redactorFor(token, alsoSecret);
  const init = { status: res.status, headers: answerHeaders(res, redactor, calledUrl, options) };
  if (res.body === null || NULL_BODY.has(res.status)) {
    void res.body?.cancel();
    return new Response(null, init);
  }
  // Strictly one media type: a browser reads a list or a malformed type its own way (the last of
  // `application/json, text/html` is HTML), so what is checked here must be what it reads.
  const contentType = (res.headers.get('Content-Type') ?? '').trim();
  const type = contentType === '' ? undefined : parseMediaType(contentType);
  // Never the API's own header text in a detail: it is not ours, and may carry the token.
  if (contentType !== '' && type === undefined) {
    void res.body.cancel();
    throw problem('upstream-content-type-invalid', 'the API answered a Content-Type that is not exactly one media type (a list, a malformed type or a parameter given twice)');
  }
  if (options.activeContent === 'refuse' && (type === undefined || ACTIVE.test(type.essence))) {
    void res.body.cancel();
    throw problem('active-content-refused', 'the API answered HTML, SVG or XML (or no Content-Type), which this route does not pass to browsers');
  }
  const charset = type?.params.get('charset');
  if (charset !== undefined && asciiIncompatible(charset)) {
    void res.body.cancel();
    throw wideCharset();
  }
  const length = Number(res.headers.get('Content-Length') ?? NaN);
  const body = decoded(res);
  if (body === res.body && length > options.maxAnswerBytes) {
    void res.body.cancel();
    throw problem('upstream-answer-too-large', `the API answered ${length} bytes; this route passes at most ${options.maxAnswerBytes}`);
  }
  const meter = options.meter ?? { decodedBytes: 0, maxChunkBytes: 0, maxHeldBytes: 0 };
  // The usual answer: unencoded, its length known and small. One native read, one pass.
  if (body === res.body && length <= BUFFERED_ANSWER_BYTES) {
    const bytes = new Uint8Array(await res.arrayBuffer().catch((e: unknown): never => {
      throw readFailure(e);
    }));
    meter.decodedBytes = meter.maxChunkBytes = meter.maxHeldBytes = bytes.length;
    if (wideBom(bytes)) throw wideCharset();
    return new Response(redactor.redactBytes(bytes), init);
  }
  // Otherwise read up to BUFFERED_ANSWER_BYTES: most answers end within it and are answered whole.
  const reader = body.getReader();
  const buffered: Uint8Array[] = [];
  let done = false;
  for (;;) {
    const next = await readNext(reader);
    if (next.done) {
      done = true;
      break;
    }
    buffered.push(next.value);
    count(meter, next.value, meter.decodedBytes + next.value.length);
    if (meter.decodedBytes > BUFFERED_ANSWER_BYTES) break;
  }
  const first = concatBytes(buffered);
  if (wideBom(first)) {
    void reader.cancel();
    throw wideCharset();
  }
  if (done) return new Response(redactor.redactBytes(first), init);
  return new Response(streamOn(reader, redactor.cursor(), first, meter, options.maxAnswerBytes), init);
}

/**
 * The allowlisted headers, none carrying the token, Locations rewritten; no-store, CSP sandbox,
 * nosniff. A header carrying the token in any reading is dropped, never edited.
 */
function answerHeaders(res: Response, redactor: Redactor, calledUrl: URL, options: AnswerOptions): Headers {
  const headers = new Headers(ANSWER_HEADERS);
  for (const name of FORWARDED_RESPONSE_HEADERS) {
    const sent = res.headers.get(name);
    if (sent === null || carries(redactor, sent, calledUrl)) continue;
    if (name !== 'location' && name !== 'content-location') {
      headers.set(name, sent);
      continue;
    }
    // The rewrite reads the URL (percent-decoding, `+` as a space, tabs dropped) and writes it
    // anew: a token must be found before (above), and in what it wrote (a `+` became `%20`).
    const rewritten = rewrite(sent, calledUrl, options);
    if (rewritten !== undefined && !carries(redactor, rewritten, calledUrl)) headers.set(name, rewritten);
  }
  return headers;
}

/**
 * Whether a header value gives the token away: as sent (the redactor reads every spelling:
 * percent, `+` as a space, JSON, HTML…), with quoted-pairs undone (`filename="\t\o\k…"` is the
 * token to a browser), and as the URL parser reads it (it turns `\` into `/`, drops tabs and
 * newlines), which is what a browser follows.
 */
function carries(redactor: Redactor, value: string, base: URL): boolean {
  if (redactor.foundIn(value) || redactor.foundIn(value.replace(/\\(.)/g, '$1'))) return true;
  let href: string;
  try {
    href = new URL(value, base).href;
  } catch {
    return false;
  }
  return redactor.foundIn(href);
}

/** A UTF-16 or UTF-32 byte-order mark, which a browser obeys whatever the header says. */
function wideBom(b: Uint8Array): boolean {
  return (b[0] === 0xff && b[1] === 0xfe) || (b[0] === 0xfe && b[1] === 0xff) || (b[0] === 0 && b[1] === 0 && b[2] === 0xfe && b[3] === 0xff);
}

function wideCharset(): ProblemError {
  return problem('upstream-encoding-unsupported', 'the API answered in UTF-16 or UTF-32 (or another charset in which ASCII bytes are not ASCII), where the Worker cannot find the token to cut it out');
}

/** Account for one decoded piece read while `held` bytes are in the Worker's hands. */
function count(meter: AnswerMeter, chunk: Uint8Array, held: number): void {
  meter.decodedBytes += chunk.length;
  meter.maxChunkBytes = Math.max(meter.maxChunkBytes, chunk.length);
  meter.maxHeldBytes = Math.max(meter.maxHeldBytes, held);
}

/**
 * The rest of a long answer as a stream: `first` (what was buffered), then one piece at a time as
 * the browser takes it, redacted, cut off past `maxBytes`. A failure (the API timeout, a broken
 * coding, the limit) errors the stream: the browser sees an answer that broke off, never one that
 * looks complete.
 */
function streamOn(reader: ReadableStreamDefaultReader<Uint8Array>, cursor: RedactingCursor, first: Uint8Array, meter: AnswerMeter, maxBytes: number): ReadableStream<Uint8Array> {
  let pending = cursor.push(first);
  return new ReadableStream<Uint8Array>(
    {
      async pull(controller) {
        try {
          while (pending.length === 0) {
            const next = await reader.read();
            if (next.done) {
              for (const part of cursor.end()) controller.enqueue(part);
              controller.close();
              return;
            }
            count(meter, next.value, next.value.length + cursor.held);
            if (meter.decodedBytes > maxBytes) {
              void reader.cancel();
              throw new RangeError(`the answer is longer than ${maxBytes} bytes`);
            }
            pending = cursor.push(next.value);
          }
          for (const part of pending) controller.enqueue(part);
          pending = [];
        } catch (e) {
          controller.error(e);
        }
      },
      cancel: (reason) => reader.cancel(reason),
    },
    { highWaterMark: 0 },
  );
}

/** The answer's body with its content coding removed (decode.ts); a ProblemError for a coding the Worker cannot decode. */
function decoded(res: Response): ReadableStream<Uint8Array> {
  const body = decodedBody(res.body!, res.headers.get('Content-Encoding'));
  if (body !== undefined) return body;
  void res.body!.cancel();
  throw problem('upstream-encoding-unsupported', 'the API answered with a Content-Encoding the Worker does not decode (it decodes gzip and deflate)');
}

/** A failed read of an answer: the API timeout is a 504, anything else a broken answer. */
export function readFailure(e: unknown): ProblemError {
  if (e instanceof Error && e.name === 'TimeoutError') return problem('upstream-timeout', 'the API did not finish its answer within the API timeout');
  return problem('upstream-answer-broken', 'the API answer could not be read (cut off, or not in its stated encoding)');
}

/** A `Location` value for the browser: the API URL it names, rewritten onto a public route, or none. */
function rewrite(value: string, calledUrl: URL, options: AnswerOptions): string | undefined {
  let url: URL;
  try {
    url = new URL(value, calledUrl);
  } catch {
    return undefined;
  }
  return options.rewriteLocation?.(url);
}

/** The next piece of an answer; a failure while reading becomes the problem it is (readFailure). */
async function readNext(reader: ReadableStreamDefaultReader<Uint8Array>): Promise<ReadableStreamReadResult<Uint8Array>> {
  try {
    return await reader.read();
  } catch (e) {
    throw readFailure(e);
  }
}

/** `readAtMost` (bytes.ts) for an API answer: a failed read is the gateway's problem (readFailure), not a TypeError. */
export async function readAnswerAtMost(body: ReadableStream<Uint8Array> | null, limit: number): Promise<Uint8Array | undefined> {
  try {
    return await readAtMost(body, limit);
  } catch (e) {
    throw readFailure(e);
  }
}
