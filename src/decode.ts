/**
 * @module Content codings undone in bounded memory: gzip and deflate inflated only as fast as the
 * reader takes the output.
 *
 * Every body the Worker reads from outside (API answers, token answers, siteverify) is fetched with
 * `encodeResponseBody: 'manual'` and decoded here, never by the runtime. workerd's
 * `DecompressionStream` inflates each input piece whole and is pumped whatever the reader takes:
 * a 1 MB gzip bomb became 1 GiB in the process before anyone read a byte (issue 13). Here zlib's
 * own state machine (pako, a line-for-line port) gets room for one output piece per read and
 * stops when it is full, and the compressed body is read from the network only when the last
 * piece of input is used up. What one decoding holds: one compressed piece as the network gave it,
 * zlib's 32 KiB window and one output piece, however far the data would inflate.
 */
import { ZStream, Z_BUF_ERROR, Z_NO_FLUSH, Z_OK, Z_STREAM_END, zlibInflate, zlibInflateEnd, zlibInflateInit2 } from 'pako';
import { concatBytes } from './bytes';

/** The codings decoded here, as an `Accept-Encoding` value: the Worker asks for these only (never br or zstd). */
export const ACCEPT_ENCODING = 'gzip, deflate';

/** Largest decoded piece handed to the reader: the most one read makes the inflater produce. */
export const DECODED_PIECE_BYTES = 64 * 1024;

/** A body that is not in the coding its header names: corrupt, cut off, or with bytes after its end. */
export class CodingError extends TypeError {
  override name = 'CodingError';
}

/**
 * `body` with the content coding `contentEncoding` names removed: `body` itself when there is none
 * (or `identity`), an inflating stream for `gzip`/`x-gzip`/`deflate`, undefined for anything else
 * (`br`, `zstd`, stacked codings: the caller refuses it and cancels the body). The inflating stream
 * errors with a `CodingError` for data not in its coding, and with the body's own error (a
 * `TimeoutError`…) when reading the body fails.
 */
export function decodedBody(body: ReadableStream<Uint8Array>, contentEncoding: string | null): ReadableStream<Uint8Array> | undefined {
  if (contentEncoding === null || contentEncoding === '') return body;
  const codings = contentEncoding
    .split(',')
    .map((c) => c.trim().toLowerCase())
    .filter((c) => c !== '' && c !== 'identity');
  if (codings.length === 0) return body;
  if (codings.length > 1) return undefined;
  if (codings[0] === 'gzip' || codings[0] === 'x-gzip') return inflating(body, 'gzip');
  if (codings[0] === 'deflate') return inflating(body, 'deflate');
  return undefined;
}

/** zlib's windowBits: gzip wrapper only; zlib wrapper only (RFC 1950); bare deflate (RFC 1951). */
const GZIP_WINDOW = 15 + 16;
const ZLIB_WINDOW = 15;
const RAW_WINDOW = -15;

/** RFC 9110 `deflate` is zlib-wrapped; some servers send bare deflate, told apart by the two header bytes. */
function isZlibHeader(cmf: number, flg: number): boolean {
  return (cmf & 0x0f) === 8 && ((cmf << 8) | flg) % 31 === 0;
}

/**
 * The decoded body, one piece per read. Nothing is inflated ahead of a read (`highWaterMark: 0`),
 * and a read inflates at most `DECODED_PIECE_BYTES`. Bytes after the end of the compressed data
 * (a second gzip member too, as the runtime's decoder had it) are a `CodingError`; an empty body is
 * an empty answer.
 */
function inflating(body: ReadableStream<Uint8Array>, format: 'gzip' | 'deflate'): ReadableStream<Uint8Array> {
  const reader = body.getReader();
  let strm: ZStream | undefined;
  /** zlib reported the end of the compressed data: only the end of the body may follow. */
  let dataEnded = false;
  /** Room for the next piece, kept while nothing was handed on from it. */
  let out: Uint8Array<ArrayBuffer> | undefined;

  const fail = (e: unknown): never => {
    reader.cancel(e).catch(() => undefined);
    if (strm !== undefined) zlibInflateEnd(strm);
    throw e;
  };
  const feed = (s: ZStream, bytes: Uint8Array) => {
    s.input = bytes;
    s.next_in = 0;
    s.avail_in = bytes.length;
  };
  /** Start zlib once the format is known: for `deflate`, when its first two bytes are in (a trickling API may send one). */
  const start = async (): Promise<ZStream | undefined> => {
    let first: Uint8Array = new Uint8Array(0);
    while (format === 'deflate' ? first.length < 2 : first.length === 0) {
      const next = await reader.read();
      if (next.done) break;
      first = concatBytes(first.length === 0 ? [next.value] : [first, next.value]);
    }
    if (first.length === 0) return undefined;
    const s = new ZStream();
    const window = format === 'gzip' ? GZIP_WINDOW : first.length >= 2 && isZlibHeader(first[0]!, first[1]!) ? ZLIB_WINDOW : RAW_WINDOW;
    if (zlibInflateInit2(s, window) !== Z_OK) throw new CodingError('the inflater could not start');
    feed(s, first);
    return s;
  };

  return new ReadableStream<Uint8Array>(
    {
      async pull(controller) {
        try {
          if (strm === undefined) {
            strm = await start();
            if (strm === undefined) return controller.close();
          }
          for (;;) {
            if (dataEnded) {
              if (strm.avail_in > 0) throw new CodingError('bytes after the end of the compressed data');
              const next = await reader.read();
              if (next.done) {
                zlibInflateEnd(strm);
                return controller.close();
              }
              feed(strm, next.value);
              continue;
            }
            if (strm.avail_in === 0) {
              const next = await reader.read();
              if (next.done) throw new CodingError('the compressed data was cut off');
              feed(strm, next.value);
              continue;
            }
            out ??= new Uint8Array(DECODED_PIECE_BYTES);
            strm.output = out;
            strm.next_out = 0;
            strm.avail_out = out.length;
            const status = zlibInflate(strm, Z_NO_FLUSH);
            const made = strm.next_out;
            if (status === Z_STREAM_END) dataEnded = true;
            // Z_BUF_ERROR: no progress possible, which with input and room left means broken data.
            else if (status !== Z_OK && !(status === Z_BUF_ERROR && strm.avail_in === 0)) throw new CodingError(`not in its stated coding (${strm.msg || status})`);
            if (made > 0) {
              // A full piece goes as it is; a partial one is copied, so the 64 KiB is not kept alive for a few bytes.
              const piece = made === out.length ? out : out.slice(0, made);
              if (piece === out) out = undefined;
              controller.enqueue(piece);
              return;
            }
          }
        } catch (e) {
          fail(e);
        }
      },
      cancel: (reason) => {
        if (strm !== undefined) zlibInflateEnd(strm);
        return reader.cancel(reason);
      },
    },
    { highWaterMark: 0 },
  );
}
