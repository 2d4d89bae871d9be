/**
 * @module Client signing keys: read a private key from a Worker secret (PKCS#8 PEM or a JWK),
 * check that it fits its algorithm, and import it for signing client assertions.
 *
 * Two steps, because config is checked synchronously at start and WebCrypto imports are async:
 * `checkSigningKey` reads the key's structure (PEM framing and the PKCS#8 algorithm identifier, or
 * the JWK's members) without any crypto, so a missing, malformed, public or mismatched key is
 * refused at start; `importSigningKey` does the WebCrypto import once per isolate, when upstream.ts
 * resolves the upstream. Messages say what
 * is wrong with the key, never a byte of it.
 */
import { calculateJwkThumbprint, exportJWK, importJWK, importPKCS8, type JWK } from 'jose';
import type { KeyAlg } from '../config/schema';

/** The smallest RSA modulus RFC 7518 §3.3 allows for RS256/PS256. */
const MIN_RSA_BITS = 2048;

/** A key's type as far as the algorithm cares. */
type KeyKind = 'RSA' | 'P-256' | 'Ed25519';

const KIND_OF_ALG: Record<KeyAlg, KeyKind> = { RS256: 'RSA', PS256: 'RSA', ES256: 'P-256', EdDSA: 'Ed25519' };

/** How to make a key of each kind (the message of a mismatch says it). */
const MAKE: Record<KeyKind, string> = {
  RSA: 'openssl genpkey -algorithm RSA -pkeyopt rsa_keygen_bits:2048',
  'P-256': 'openssl genpkey -algorithm EC -pkeyopt ec_paramgen_curve:P-256',
  Ed25519: 'openssl genpkey -algorithm ed25519',
};

/** A key read from its secret: PEM (PKCS#8) or JWK, and its `kid` when a JWK names one. */
export type KeyText = { format: 'pkcs8'; pem: string } | { format: 'jwk'; jwk: JWK };

/**
 * Whether `text` is a private key that `alg` can sign with: the key read, or why not (a sentence
 * about the key, never its content).
 */
export function checkSigningKey(text: string, alg: KeyAlg): { ok: true; key: KeyText; kid?: string } | { ok: false; why: string } {
  const want = KIND_OF_ALG[alg];
  // A PEM kept on one line with literal "\n"s (as in a .env file) is the same key.
  const trimmed = (text.includes('\n') ? text : text.replace(/\\n/g, '\n')).trim();
  if (trimmed.startsWith('{')) return checkJwk(trimmed, alg, want);
  const pem = /^-----BEGIN ([A-Z0-9 ]+)-----\r?\n([A-Za-z0-9+/=\r\n]+)-----END \1-----$/.exec(trimmed);
  if (pem === null) return { ok: false, why: 'is neither a PEM private key ("-----BEGIN PRIVATE KEY-----") nor a JWK (a JSON object)' };
  const label = pem[1]!;
  if (label === 'RSA PRIVATE KEY' || label === 'EC PRIVATE KEY') {
    return { ok: false, why: `is a "${label}" (PKCS#1/SEC1): convert it to PKCS#8 with: openssl pkcs8 -topk8 -nocrypt -in key.pem` };
  }
  if (label === 'ENCRYPTED PRIVATE KEY') return { ok: false, why: 'is an encrypted private key: store it unencrypted (the Worker secret is what protects it)' };
  if (label !== 'PRIVATE KEY') return { ok: false, why: `holds a "${label}", not a private key: the Worker signs, so it needs the private key` };
  let der: Uint8Array;
  try {
    der = Uint8Array.from(atob(pem[2]!.replace(/\s+/g, '')), (c) => c.charCodeAt(0));
  } catch {
    return { ok: false, why: 'is not valid base64 inside its PEM lines' };
  }
  const found = pkcs8Kind(der);
  if (typeof found !== 'object') return { ok: false, why: found };
  if (found.kind !== want) return { ok: false, why: mismatch(found.kind, alg) };
  if (found.rsaBits !== undefined && found.rsaBits < MIN_RSA_BITS) return { ok: false, why: `is a ${found.rsaBits}-bit RSA key: ${alg} needs at least ${MIN_RSA_BITS} bits` };
  return { ok: true, key: { format: 'pkcs8', pem: trimmed } };
}

function checkJwk(text: string, alg: KeyAlg, want: KeyKind): { ok: true; key: KeyText; kid?: string } | { ok: false; why: string } {
  let jwk: unknown;
  try {
    jwk = JSON.parse(text);
  } catch {
    return { ok: false, why: 'starts like a JWK but is not valid JSON' };
  }
  if (typeof jwk !== 'object' || jwk === null || Array.isArray(jwk)) return { ok: false, why: 'is not a JWK (a JSON object)' };
  const j = jwk as Record<string, unknown>;
  if (Array.isArray(j.keys)) return { ok: false, why: 'is a JWK Set: store the one private key (a JWK object) the Worker signs with' };
  const kind: KeyKind | undefined = j.kty === 'RSA' ? 'RSA' : j.kty === 'EC' && j.crv === 'P-256' ? 'P-256' : j.kty === 'OKP' && j.crv === 'Ed25519' ? 'Ed25519' : undefined;
  if (kind === undefined) return { ok: false, why: `is a JWK of a kind no supported algorithm uses (kty ${String(j.kty).slice(0, 10)}${j.crv === undefined ? '' : `, crv ${String(j.crv).slice(0, 10)}`})` };
  if (kind !== want) return { ok: false, why: mismatch(kind, alg) };
  if (typeof j.d !== 'string') return { ok: false, why: 'is a public JWK (no "d"): the Worker signs, so it needs the private key' };
  if (j.alg !== undefined && j.alg !== alg) return { ok: false, why: `says alg ${String(j.alg).slice(0, 10)}, but the config says ${alg}` };
  if (kind === 'RSA') {
    const bits = typeof j.n === 'string' ? Math.floor((j.n.replace(/=+$/, '').length * 6) / 8) * 8 : 0;
    if (bits < MIN_RSA_BITS) return { ok: false, why: `is an RSA JWK under ${MIN_RSA_BITS} bits: ${alg} needs at least ${MIN_RSA_BITS}` };
  }
  const kid = typeof j.kid === 'string' && j.kid !== '' ? j.kid : undefined;
  return { ok: true, key: { format: 'jwk', jwk: j as JWK }, ...(kid === undefined ? {} : { kid }) };
}

function mismatch(kind: KeyKind, alg: KeyAlg): string {
  const want = KIND_OF_ALG[alg];
  return `is ${kind === 'RSA' ? 'an RSA' : `a ${kind}`} key, but ${alg} needs ${want === 'RSA' ? 'an RSA' : `a ${want}`} key (make one with: ${MAKE[want]})`;
}

// ---------------------------------------------------------------------------------------------
// Just enough DER to read a PKCS#8 PrivateKeyInfo's algorithm (RFC 5208 §5, RFC 8410 §7)
// ---------------------------------------------------------------------------------------------

const OID_RSA = '2a864886f70d010101'; // 1.2.840.113549.1.1.1 rsaEncryption
const OID_RSA_PSS = '2a864886f70d01010a'; // 1.2.840.113549.1.1.10 id-RSASSA-PSS
const OID_EC = '2a8648ce3d0201'; // 1.2.840.10045.2.1 id-ecPublicKey
const OID_P256 = '2a8648ce3d030107'; // 1.2.840.10045.3.1.7 prime256v1
const OID_ED25519 = '2b6570'; // 1.3.101.112

interface Tlv {
  tag: number;
  start: number;
  end: number;
}

/** The DER element at `at` within `[at, limit)`, or undefined when it does not fit. */
function tlv(der: Uint8Array, at: number, limit: number): Tlv | undefined {
  if (at + 2 > limit) return undefined;
  const tag = der[at]!;
  let len = der[at + 1]!;
  let start = at + 2;
  if (len & 0x80) {
    const n = len & 0x7f;
    if (n === 0 || n > 3 || start + n > limit) return undefined;
    len = 0;
    for (let i = 0; i < n; i++) len = len * 256 + der[start + i]!;
    start += n;
  }
  return start + len <= limit ? { tag, start, end: start + len } : undefined;
}

const hex = (der: Uint8Array, t: Tlv) => Array.from(der.subarray(t.start, t.end), (b) => b.toString(16).padStart(2, '0')).join('');

/** The key kind of a PKCS#8 PrivateKeyInfo (and an RSA key's size), or why it cannot be read. */
function pkcs8Kind(der: Uint8Array): { kind: KeyKind; rsaBits?: number } | string {
  const bad = 'is not a readable PKCS#8 private key';
  const info = tlv(der, 0, der.length);
  if (info?.tag !== 0x30) return bad;
  const version = tlv(der, info.start, info.end);
  if (version?.tag !== 0x02) return bad;
  const algId = tlv(der, version.end, info.end);
  if (algId?.tag !== 0x30) return bad;
  const oid = tlv(der, algId.start, algId.end);
  if (oid?.tag !== 0x06) return bad;
  const privateKey = tlv(der, algId.end, info.end);
  if (privateKey?.tag !== 0x04) return bad;
  const o = hex(der, oid);
  if (o === OID_ED25519) return { kind: 'Ed25519' };
  if (o === OID_EC) {
    const curve = tlv(der, oid.end, algId.end);
    if (curve?.tag === 0x06 && hex(der, curve) === OID_P256) return { kind: 'P-256' };
    return 'is an EC key on a curve other than P-256 (ES256 needs P-256)';
  }
  if (o === OID_RSA_PSS) return 'is an RSASSA-PSS-only key: use a plain RSA key (openssl genpkey -algorithm RSA), which PS256 signs with too';
  if (o === OID_RSA) {
    // RSAPrivateKey ::= SEQUENCE { version, modulus INTEGER, ... } inside the OCTET STRING.
    const rsa = tlv(der, privateKey.start, privateKey.end);
    const v = rsa?.tag === 0x30 ? tlv(der, rsa.start, rsa.end) : undefined;
    const n = v !== undefined && rsa !== undefined ? tlv(der, v.end, rsa.end) : undefined;
    if (n?.tag !== 0x02) return bad;
    let first = n.start;
    while (first < n.end && der[first] === 0) first++;
    const top = der[first] ?? 0;
    return { kind: 'RSA', rsaBits: (n.end - first - 1) * 8 + (top === 0 ? 0 : Math.floor(Math.log2(top)) + 1) };
  }
  return 'is a private key of a kind no supported algorithm uses (RSA, P-256 or Ed25519)';
}

// ---------------------------------------------------------------------------------------------
// Import (WebCrypto, async): once per isolate
// ---------------------------------------------------------------------------------------------

/** A private key ready to sign, and the RFC 7638 thumbprint of its public key (its identity). */
export interface SigningKey {
  alg: KeyAlg;
  kid?: string;
  key: CryptoKey;
  /** Base64url SHA-256 JWK thumbprint of the public key: names the key without showing it. */
  thumbprint: string;
}

/** Import a checked key for `alg`. Throws (a plain Error with no key content) when WebCrypto will not take it. */
export async function importSigningKey(key: KeyText, alg: KeyAlg, kid: string | undefined): Promise<SigningKey> {
  let signing: CryptoKey;
  let publicJwk: JWK;
  try {
    if (key.format === 'pkcs8') {
      signing = await importPKCS8(key.pem, alg);
      // A second, extractable import only to compute the public key's thumbprint; then dropped.
      publicJwk = publicPart(await exportJWK(await importPKCS8(key.pem, alg, { extractable: true })));
    } else {
      const { kid: _kid, alg: _alg, use: _use, key_ops: _ops, ext: _ext, ...material } = key.jwk;
      signing = (await importJWK({ ...material }, alg)) as CryptoKey;
      publicJwk = publicPart(key.jwk);
    }
  } catch {
    throw new Error(`the key could not be imported for ${alg}`);
  }
  return { alg, key: signing, thumbprint: await calculateJwkThumbprint(publicJwk, 'sha256'), ...(kid === undefined ? {} : { kid }) };
}

/** The public members of a JWK (what a thumbprint covers: RFC 7638 §3.2). */
function publicPart(jwk: JWK): JWK {
  if (jwk.kty === 'RSA') return { kty: 'RSA', n: jwk.n!, e: jwk.e! };
  if (jwk.kty === 'EC') return { kty: 'EC', crv: jwk.crv!, x: jwk.x!, y: jwk.y! };
  return { kty: jwk.kty!, crv: jwk.crv!, x: jwk.x! };
}
