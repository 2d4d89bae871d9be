/**
 * decode.ts unit by unit, in workerd: what each coding decodes to, what is refused, and that the
 * inflater runs only as fast as its reader (the memory bound itself, measured on the workerd
 * process, is test/node/inflate-memory.test.ts).
 */
import { describe, expect, it } from 'vitest';
import { CodingError, decodedBody } from './decode';

type Format = 'gzip' | 'deflate' | 'deflate-raw';
const TEXT = JSON.stringify({ codes: Array.from({ length: 40 }, (_, i) => ({ code: 261300 + i, label: `Occupation ${i}` })) });

async function compressed(format: Format, data: string | Uint8Array): Promise<Uint8Array> {
  return new Uint8Array(await new Response(new Blob([data]).stream().pipeThrough(new CompressionStream(format))).arrayBuffer());
}

function join(...parts: Uint8Array[]): Uint8Array {
  const out = new Uint8Array(parts.reduce((n, p) => n + p.length, 0));
  let at = 0;
  for (const p of parts) out.set(p, (at += p.length) - p.length);
  return out;
}

/** A body giving `bytes` in pieces of `piece` bytes, counting how many pieces were taken and whether it was cancelled. */
function source(bytes: Uint8Array, piece = bytes.length) {
  const seen = { pulled: 0, cancelled: false };
  let at = 0;
  const body = new ReadableStream<Uint8Array>(
    {
      pull(c) {
        if (at >= bytes.length) return c.close();
        seen.pulled++;
        c.enqueue(bytes.slice(at, (at += piece)));
      },
      cancel() {
        seen.cancelled = true;
      },
    },
    { highWaterMark: 0 },
  );
  return { body, seen };
}

async function text(body: ReadableStream<Uint8Array> | undefined): Promise<string> {
  return await new Response(body).text();
}

async function failure(body: ReadableStream<Uint8Array> | undefined): Promise<unknown> {
  return await new Response(body).arrayBuffer().then(
    () => undefined,
    (e: unknown) => e,
  );
}

describe('codings', () => {
  it('gzip, x-gzip, zlib-wrapped and bare deflate decode to the same text, in one piece or byte by byte', async () => {
    const cases: [string, Format][] = [
      ['gzip', 'gzip'],
      ['x-gzip', 'gzip'],
      ['GZip', 'gzip'],
      ['deflate', 'deflate'],
      ['deflate', 'deflate-raw'],
      ['identity, gzip', 'gzip'],
    ];
    for (const [label, format] of cases) {
      const bytes = await compressed(format, TEXT);
      expect(await text(decodedBody(source(bytes).body, label)), `${label} ${format}`).toBe(TEXT);
      expect(await text(decodedBody(source(bytes, 1).body, label)), `${label} ${format} byte by byte`).toBe(TEXT);
    }
  });

  it('no coding (or identity): the body itself, untouched', () => {
    const { body } = source(new Uint8Array([1, 2, 3]));
    for (const label of [null, '', 'identity', ' Identity ']) expect(decodedBody(body, label)).toBe(body);
  });

  it('a coding not decoded here, or two stacked, is undefined (the caller refuses it)', () => {
    for (const label of ['br', 'zstd', 'compress', 'gzip, gzip', 'deflate, gzip', 'gzip;q=1']) expect(decodedBody(source(new Uint8Array(1)).body, label), label).toBeUndefined();
  });

  it('an empty body is an empty answer, whatever its coding says', async () => {
    for (const label of ['gzip', 'deflate']) expect(await text(decodedBody(source(new Uint8Array(0)).body, label))).toBe('');
  });
});

describe('data not in its coding', () => {
  it('garbage after the end, a second gzip member, a cut-off stream, a bad checksum or no gzip at all: CodingError', async () => {
    const gz = await compressed('gzip', TEXT);
    const zl = await compressed('deflate', TEXT);
    const raw = await compressed('deflate-raw', TEXT);
    const flipped = (b: Uint8Array, at: number) => {
      const c = b.slice();
      c[at]! ^= 1;
      return c;
    };
    const cases: [string, string, Uint8Array][] = [
      ['gzip + garbage', 'gzip', join(gz, new Uint8Array([1, 2, 3]))],
      ['gzip + zeros', 'gzip', join(gz, new Uint8Array(8))],
      ['two gzip members', 'gzip', join(gz, gz)],
      ['gzip cut off', 'gzip', gz.subarray(0, gz.length - 3)],
      ['gzip, CRC flipped', 'gzip', flipped(gz, gz.length - 6)],
      ['gzip, length flipped', 'gzip', flipped(gz, gz.length - 2)],
      ['plain text as gzip', 'gzip', new TextEncoder().encode('plain text')],
      ['zlib + garbage', 'deflate', join(zl, new Uint8Array([1]))],
      ['zlib, Adler-32 flipped', 'deflate', flipped(zl, zl.length - 1)],
      ['bare deflate cut off', 'deflate', raw.subarray(0, raw.length - 2)],
      ['bare deflate + garbage', 'deflate', join(raw, new Uint8Array([7, 7]))],
    ];
    for (const [name, label, bytes] of cases) {
      for (const piece of [bytes.length, 1]) {
        const e = await failure(decodedBody(source(bytes, piece).body, label));
        expect(e, `${name}, pieces of ${piece}`).toBeInstanceOf(CodingError);
      }
    }
  });

  it('garbage after the end is refused without reading the rest of the body, which is cancelled', async () => {
    const gz = await compressed('gzip', TEXT);
    const { body, seen } = source(join(gz, new Uint8Array(1024 * 1024)), gz.length + 16);
    expect(await failure(decodedBody(body, 'gzip'))).toBeInstanceOf(CodingError);
    expect(seen.pulled).toBe(1);
    expect(seen.cancelled).toBe(true);
  });

  it("the body's own failure (the API timeout) comes through as it is, not as a coding error", async () => {
    const gz = await compressed('gzip', TEXT);
    let sent = false;
    const body = new ReadableStream<Uint8Array>({
      pull(c) {
        if (sent) return c.error(new DOMException('timed out', 'TimeoutError'));
        sent = true;
        c.enqueue(gz.subarray(0, 20));
      },
    });
    const e = await failure(decodedBody(body, 'gzip'));
    expect(e).toBeInstanceOf(DOMException);
    expect((e as DOMException).name).toBe('TimeoutError');
  });
});

describe('inflating only as fast as the reader', () => {
  // 64 MiB of zeros: about 64 KB of gzip, each KB inflating to about 1 MB.
  const bomb = compressed('gzip', new Uint8Array(64 * 1024 * 1024));

  it('nothing is read from the body, nor inflated, before the reader asks', async () => {
    const { body, seen } = source(await bomb, 1024);
    const decoded = decodedBody(body, 'gzip')!;
    await new Promise((r) => setTimeout(r, 50));
    expect(seen.pulled).toBe(0);
    await decoded.cancel();
    expect(seen.cancelled).toBe(true);
  });

  it('a read makes at most 64 KiB, and takes compressed input only as that needs', async () => {
    const bytes = await bomb;
    const { body, seen } = source(bytes, 1024);
    const reader = decodedBody(body, 'gzip')!.getReader();
    let decoded = 0;
    while (decoded < 2 * 1024 * 1024) {
      const next = await reader.read();
      expect(next.done).toBe(false);
      expect(next.value!.length).toBeLessThanOrEqual(64 * 1024);
      decoded += next.value!.length;
    }
    // 2 MiB out; a 1 KB piece of this bomb makes about 1 MB, so a few pieces in, not the 64 there are.
    expect(seen.pulled).toBeLessThanOrEqual(4);
    await reader.cancel();
    expect(seen.cancelled).toBe(true);
  });

  it('the whole bomb in one input piece still comes out 64 KiB per read', async () => {
    const { body, seen } = source(await bomb);
    const reader = decodedBody(body, 'gzip')!.getReader();
    const first = await reader.read();
    expect(first.value!.length).toBe(64 * 1024);
    expect(seen.pulled).toBe(1);
    let total = first.value!.length;
    for (let r = await reader.read(); !r.done; r = await reader.read()) {
      expect(r.value.length).toBeLessThanOrEqual(64 * 1024);
      total += r.value.length;
    }
    expect(total).toBe(64 * 1024 * 1024);
  });
});
