/**
 * grant.ts reading a token answer that comes content-coded (the TokenStore fetches it with
 * `encodeResponseBody: 'manual'`, so the coding is grant.ts's to undo): decoded in bounds, and
 * what cannot be decoded is a failure of the right kind, never a token.
 */
import { describe, expect, it } from 'vitest';
import { upstreamSchema } from '../config/schema';
import { buildTokenRequest, MAX_TOKEN_ANSWER_BYTES, readTokenResponse } from './grant';

const u = upstreamSchema.parse({ api_origin: 'https://api.example', token_url: 'https://auth.example/token', client_id: 'c', client_secret_from: 'S' });
const TOKEN = 'tok_grant_coded_0123456789abcdef';
const ANSWER = JSON.stringify({ access_token: TOKEN, expires_in: 600 });

/** `data` compressed (web CompressionStream: this file is typechecked without Node's types). */
async function compressed(format: 'gzip' | 'deflate' | 'deflate-raw', data: string | Uint8Array): Promise<Uint8Array> {
  return new Uint8Array(await new Response(new Blob([data]).stream().pipeThrough(new CompressionStream(format))).arrayBuffer());
}

const answer = (body: Uint8Array | string, coding: string, status = 200) =>
  new Response(typeof body === 'string' ? body : new Uint8Array(body), { status, headers: { 'Content-Type': 'application/json', 'Content-Encoding': coding } });

describe('a content-coded token answer', () => {
  it('the token request asks for the codings the Worker decodes', () => {
    expect(buildTokenRequest(u, { clientId: 'c', clientSecret: 's' }, '').headers.get('Accept-Encoding')).toBe('gzip, deflate');
  });

  it('gzip, zlib-wrapped and bare deflate are decoded', async () => {
    for (const [coding, body] of [
      ['gzip', 'gzip'],
      ['deflate', 'deflate'],
      ['deflate', 'deflate-raw'],
    ] as const) {
      expect(await readTokenResponse(u, answer(await compressed(body, ANSWER), coding)), `${coding} ${body}`).toEqual({ ok: true, value: { token: TOKEN, expiresInS: 600 } });
    }
  });

  it('a bomb is refused once 1 MiB is decoded, not inflated to its end', async () => {
    // 16 MiB of spaces inside the token answer: valid JSON once whole, 16 KB on the wire.
    const spaces = new Uint8Array(16 * 1024 * 1024).fill(0x20);
    const bomb = await compressed('gzip', new Uint8Array(await new Blob([ANSWER.slice(0, -1), spaces, '}']).arrayBuffer()));
    expect(MAX_TOKEN_ANSWER_BYTES).toBe(1024 * 1024);
    let pulled = 0;
    const body = new ReadableStream<Uint8Array>({
      pull(c) {
        const at = pulled++ * 1024;
        if (at >= bomb.length) c.close();
        else c.enqueue(new Uint8Array(bomb.subarray(at, at + 1024)));
      },
    });
    const res = new Response(body, { headers: { 'Content-Encoding': 'gzip' } });
    expect(await readTokenResponse(u, res)).toEqual({ ok: false, failure: { kind: 'invalid_answer', detail: 'token endpoint answered 200 with a body over 1048576 bytes (decoded)' } });
    // About 1 KB of this bomb inflates to 1 MB: a few of its ~16 pieces read, not all.
    expect(Math.ceil(bomb.length / 1024)).toBeGreaterThan(12);
    expect(pulled).toBeLessThanOrEqual(6);
  });

  it('a body not in its coding is a transient failure (cut off on the way); an unknown coding an invalid answer', async () => {
    const gz = await compressed('gzip', ANSWER);
    expect(await readTokenResponse(u, answer(gz.subarray(0, gz.length - 4), 'gzip'))).toMatchObject({ ok: false, failure: { kind: 'transient', detail: expect.stringMatching(/not in its stated Content-Encoding/) } });
    expect(await readTokenResponse(u, answer(ANSWER, 'gzip'))).toMatchObject({ ok: false, failure: { kind: 'transient' } });
    expect(await readTokenResponse(u, answer(ANSWER, 'br'))).toMatchObject({ ok: false, failure: { kind: 'invalid_answer', detail: expect.stringMatching(/Content-Encoding the Worker does not decode/) } });
  });

  it("an error answer's OAuth code is read through its coding too, and a broken one just has no code", async () => {
    const error = JSON.stringify({ error: 'invalid_client' });
    expect(await readTokenResponse(u, answer(await compressed('gzip', error), 'gzip', 401))).toEqual({ ok: false, failure: { kind: 'refused', detail: 'token endpoint answered 401 (invalid_client)' } });
    expect(await readTokenResponse(u, answer(error, 'gzip', 401))).toEqual({ ok: false, failure: { kind: 'refused', detail: 'token endpoint answered 401' } });
  });
});
