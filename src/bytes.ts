/** @module Byte helpers shared by the modules that handle bodies and credentials as bytes. */

/** The pieces joined into one array; the one piece itself when there is only one (no copy). */
export function concatBytes(parts: readonly Uint8Array[]): Uint8Array {
  if (parts.length === 1) return parts[0]!;
  let length = 0;
  for (const p of parts) length += p.length;
  const out = new Uint8Array(length);
  let at = 0;
  for (const p of parts) {
    out.set(p, at);
    at += p.length;
  }
  return out;
}

/**
 * At most `limit` bytes of `body`, read as they arrive: undefined (and the rest cancelled) as soon
 * as there are more, so a large answer is never read to find out it was too large. A failed read
 * throws as the stream does.
 */
export async function readAtMost(body: ReadableStream<Uint8Array> | null, limit: number): Promise<Uint8Array | undefined> {
  if (body === null) return new Uint8Array(0);
  const reader = body.getReader();
  const parts: Uint8Array[] = [];
  let total = 0;
  for (;;) {
    const next = await reader.read();
    if (next.done) return concatBytes(parts);
    total += next.value.length;
    if (total > limit) {
      void reader.cancel();
      return undefined;
    }
    parts.push(next.value);
  }
}

/** Base64 of bytes, or of a string's UTF-8 bytes. */
export function base64(data: Uint8Array | string): string {
  const bytes = typeof data === 'string' ? new TextEncoder().encode(data) : data;
  let binary = '';
  for (const b of bytes) binary += String.fromCharCode(b);
  return btoa(binary);
}

/** Base64url without padding (RFC 4648 §5). */
export function base64url(data: Uint8Array | string): string {
  return base64(data).replace(/\+/g, '-').replace(/\//g, '_').replace(/=+$/, '');
}

/** SHA-256 of a string's UTF-8 bytes, as lower-case hex (`bytes` of it: the first that many). */
export async function sha256Hex(text: string, bytes = 32): Promise<string> {
  const digest = new Uint8Array(await crypto.subtle.digest('SHA-256', new TextEncoder().encode(text)));
  return Array.from(digest.subarray(0, bytes), (b) => b.toString(16).padStart(2, '0')).join('');
}

/** Refuses bytes that are not UTF-8 (JSON is UTF-8, RFC 8259) rather than replacing them. */
const STRICT_UTF8 = new TextDecoder('utf-8', { fatal: true, ignoreBOM: false });

/** `bytes` as UTF-8 text; throws a TypeError when they are not UTF-8. */
export function utf8Strict(bytes: Uint8Array): string {
  return STRICT_UTF8.decode(bytes);
}
