/**
 * Stand-in upstreams for the tests: token endpoints and APIs on fake hosts (`https://<name>.test`),
 * served from Node through Miniflare's `outboundService`, so every `fetch` the Worker (and its
 * Durable Objects) makes lands here. Each request is recorded; tests read the records and steer the
 * behaviour through `http://control.standin/…` (see `test/helpers.ts`).
 *
 * Egresses: `standInBinding` is the `EGRESS_TEST` service binding; `https://egress*.test` are egress
 * origins that check the secret and the host as deploy/egress/ does (403 + `X-Egress-Refused`).
 * Both record what reaches them and mark what they forward with `X-Standin-Via`.
 *
 * Turnstile: `https://challenges.cloudflare.com/turnstile/v0/siteverify` answers for the tokens a
 * test registered (`turnstileToken()` in helpers.ts), as the real one does: each token verifies
 * once (again only with the same idempotency key), then `timeout-or-duplicate`.
 * Cloudflare Access: `https://<team>.cloudflareaccess.com/cdn-cgi/access/certs` serves the key set
 * a test publishes (`POST /access-keys`), as the team's certs endpoint does; fetches are counted.
 *
 * Token endpoints: any path ending in `/token`, `/oauth2/token` or `/authorization`.
 * APIs: any other path. An API call is accepted when one of its headers carries a live token of its
 * host, and answers 200 with an echo of the method, path and JSON body (never the token).
 */
import { EGRESS_LISTED_HOSTS, SECRETS } from '../fixtures/config.ts';

import { coderAnswer, type CoderLimits, type CoderState } from './coder.ts';
import { encodeToken, type TokenEncoding } from './encodings.ts';

export interface Hit {
  host: string;
  method: string;
  path: string;
  search: string;
  headers: Record<string, string>;
  body: string;
  /** The whole URL asked for (scheme, host, port, path, query). */
  url: string;
  /** The body's exact bytes, base64 (for bodies that are not UTF-8 text). */
  bodyBase64?: string;
  /** When it arrived (ms since the epoch, Node's clock). */
  at?: number;
}

/** How a host's token endpoint answers. */
export interface TokenBehaviour {
  /** `json` (default) or `text` (a bare JWT). */
  format?: 'json' | 'text';
  tokenField?: string;
  expiresField?: string;
  /** The lifetime field's value; `null` leaves it out. Default 3600. */
  expiresIn?: number | string | null;
  /** Issue JWTs with this many seconds until `exp` (relative to `jwtNow`). */
  jwtExpSeconds?: number;
  /** Epoch seconds used as "now" for JWT `exp` (tests run on a fake clock). */
  jwtNow?: number;
  /** Answer every token request with this status and body instead of a token. */
  status?: number;
  body?: string;
  contentType?: string;
  headers?: Record<string, string>;
  /** Answer after this many ms (longer than the Worker's timeout = a timeout). */
  delayMs?: number;
  /** Send the headers at once but hold the body back this many ms (a slow-dripping answer). */
  bodyDelayMs?: number;
  /** Fail this many requests with 503 first, then succeed. */
  failNext?: number;
  /** Pad a successful JSON answer with a field of this many bytes (an oversized answer). */
  padBytes?: number;
}

/** How a host's API answers. */
export interface ApiBehaviour {
  /** Reject this many calls with `rejectStatus` (as if the token were bad), whatever the token. */
  rejectNext?: number;
  /** Status used for rejections (default 401). */
  rejectStatus?: number;
  /** Answer every accepted call with this status and body. */
  status?: number;
  body?: string;
  headers?: Record<string, string>;
  delayMs?: number;
  /**
   * Throw instead of answering. Miniflare turns that into a 500 answer (not a network error), so
   * this shows an upstream failure passing through, not the 502 for an unreachable host.
   */
  unreachable?: boolean;
  /**
   * Answer accepted calls with the request's headers (the injected credential included) in the
   * body, and the Authorization header in `ETag` and `X-Echo-Authorization`, as a careless
   * debugging API might. Status `status` (default 200).
   */
  reflectHeaders?: boolean;
  /** Paths answered with this status whatever the token (a permission error, an unknown path). */
  denyPaths?: Record<string, number>;
  /** Shape of an accepted call's answer: encodings, trickles, echoed tokens… (the block at the end). */
  answer?: AnswerShape;
  /** Answer `/v1/topics/{topic}/code` as the ABS Coding Service does, with its limits (coder.ts). */
  coder?: CoderLimits;
}

/** A request that reached a stand-in egress. */
export interface EgressHit {
  via: 'binding' | 'origin';
  /** The egress origin's host (`binding` for the binding). */
  egress: string;
  /** The upstream host it was for (the URL's host, or the origin egress's X-Egress-Host). */
  target: string;
  path: string;
  /** Why the egress refused it; null when forwarded. */
  refused: 'key' | 'host' | null;
}

const egressHits: EgressHit[] = [];
const egressKeys = new Map<string, Set<string>>();
/** Until told otherwise, an egress origin accepts the test Worker's TEST_EGRESS_SECRET. */
const keysOf = (egress: string) => egressKeys.get(egress) ?? new Set<string>([SECRETS.TEST_EGRESS_SECRET]);

interface HostState {
  token: TokenBehaviour;
  api: ApiBehaviour;
  issued: string[];
  revoked: Set<string>;
  /** The coding stand-in's calls, once `api.coder` is set. */
  coder?: CoderState;
}

const hits: Hit[] = [];
const hosts = new Map<string, HostState>();
/**
 * Every token issued (or accepted) and every Turnstile token registered, in order, never cleared:
 * the leak check (test/leak-check.ts) asks only for what it has not seen (`/leak-watch`).
 */
const watched = { tokens: [] as string[], turnstile: [] as string[] };
/** The JWK set the Access certs endpoint serves, and how often it was fetched. */
let accessKeys: unknown = { keys: [] };
let accessCertFetches = 0;
let counter = 0;

function host(name: string): HostState {
  let h = hosts.get(name);
  if (h === undefined) {
    h = { token: {}, api: {}, issued: [], revoked: new Set() };
    hosts.set(name, h);
  }
  return h;
}

const json = (v: unknown, status = 200, headers: Record<string, string> = {}) =>
  new Response(JSON.stringify(v), { status, headers: { 'Content-Type': 'application/json', ...headers } });

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

function b64url(s: string): string {
  return Buffer.from(s).toString('base64url');
}

function isTokenPath(path: string): boolean {
  return /\/(oauth2\/)?token$|\/authorization$/.test(path);
}

/** The outboundService handler. */
export async function standIn(request: Request): Promise<Response> {
  const url = new URL(request.url);
  if (url.hostname === 'control.standin') return control(url, request);
  if (/^egress[\w-]*\.test$/.test(url.hostname)) return egressOrigin(request, url);
  if (url.hostname === 'challenges.cloudflare.com') return siteverify(request, url);
  if (url.hostname.endsWith('.cloudflareaccess.com') && url.pathname === '/cdn-cgi/access/certs') {
    accessCertFetches++;
    return json(accessKeys);
  }

  const bytes = Buffer.from(await request.arrayBuffer());
  const body = bytes.toString('utf8');
  const headers: Record<string, string> = {};
  request.headers.forEach((v, k) => (headers[k] = v));
  hits.push({ host: url.hostname, method: request.method, path: url.pathname, search: url.search, headers, body, url: request.url, bodyBase64: bytes.toString('base64'), at: Date.now() });
  const h = host(url.hostname);
  return isTokenPath(url.pathname) ? tokenAnswer(url.hostname, h) : apiAnswer(h, request, body, url);
}

/** The `EGRESS_TEST` service binding: records the request, then sends it on, marked. */
export async function standInBinding(request: Request): Promise<Response> {
  const url = new URL(request.url);
  egressHits.push({ via: 'binding', egress: 'binding', target: url.host, path: url.pathname, refused: null });
  return standIn(await marked(request, url.href, 'binding'));
}

/** An egress origin: the secret and the host are checked against fixed lists, as nginx does. */
async function egressOrigin(request: Request, url: URL): Promise<Response> {
  const target = request.headers.get('x-egress-host') ?? '';
  const key = request.headers.get('x-egress-secret');
  const refused = key === null || !keysOf(url.hostname).has(key) ? 'key' : !EGRESS_LISTED_HOSTS.includes(target) ? 'host' : null;
  egressHits.push({ via: 'origin', egress: url.hostname, target, path: url.pathname, refused });
  if (refused !== null) {
    await request.body?.cancel();
    return new Response('<html>403 Forbidden</html>', { status: 403, headers: { 'Content-Type': 'text/html', 'X-Egress-Refused': refused } });
  }
  return standIn(await marked(request, `https://${target}${url.pathname}${url.search}`, 'origin'));
}

/** `request` sent on to `url`, without the egress's headers, marked with the way it came. */
async function marked(request: Request, url: string, via: EgressHit['via']): Promise<Request> {
  const headers = new Headers(request.headers);
  headers.delete('x-egress-host');
  headers.delete('x-egress-secret');
  headers.set('X-Standin-Via', via);
  const body = request.method === 'GET' || request.method === 'HEAD' ? undefined : await request.arrayBuffer();
  return new Request(url, { method: request.method, headers, body });
}

async function tokenAnswer(name: string, h: HostState): Promise<Response> {
  const t = h.token;
  if (t.delayMs !== undefined) await sleep(t.delayMs);
  if (t.failNext !== undefined && t.failNext > 0) {
    t.failNext--;
    return new Response('<html>Service Unavailable</html>', { status: 503, headers: { 'Content-Type': 'text/html' } });
  }
  if (t.status !== undefined && t.status !== 200) {
    return new Response(t.body ?? '', { status: t.status, headers: { 'Content-Type': t.contentType ?? 'application/json', ...t.headers } });
  }
  if (t.body !== undefined) return new Response(t.body, { status: 200, headers: { 'Content-Type': t.contentType ?? 'application/json' } });

  counter++;
  let token = `tok_${name.replace(/\W/g, '_')}_${counter}_${Math.random().toString(36).slice(2, 10)}`;
  if (t.jwtExpSeconds !== undefined || t.format === 'text') {
    const now = t.jwtNow ?? Math.floor(Date.now() / 1000);
    const claims: Record<string, unknown> = { sub: token, iat: now };
    if (t.jwtExpSeconds !== undefined) claims.exp = now + t.jwtExpSeconds;
    token = `${b64url('{"alg":"HS256","typ":"JWT"}')}.${b64url(JSON.stringify(claims))}.${b64url(`sig${counter}`)}`;
  }
  h.issued.push(token);
  watched.tokens.push(token);
  if (t.bodyDelayMs !== undefined) {
    const body = JSON.stringify({ access_token: token, expires_in: 3600 });
    const stream = new ReadableStream<Uint8Array>({
      async start(controller) {
        await sleep(t.bodyDelayMs!);
        controller.enqueue(new TextEncoder().encode(body));
        controller.close();
      },
    });
    return new Response(stream, { status: 200, headers: { 'Content-Type': 'application/json' } });
  }
  if (t.format === 'text') return new Response(token, { status: 200, headers: { 'Content-Type': 'application/jwt' } });
  const answer: Record<string, unknown> = { [t.tokenField ?? 'access_token']: token, token_type: 'bearer' };
  const expiresIn = t.expiresIn === undefined ? 3600 : t.expiresIn;
  if (expiresIn !== null) answer[t.expiresField ?? 'expires_in'] = expiresIn;
  if (t.padBytes !== undefined) answer.padding = 'x'.repeat(t.padBytes);
  return json(answer);
}

async function apiAnswer(h: HostState, request: Request, body: string, url: URL): Promise<Response> {
  const a = h.api;
  if (a.delayMs !== undefined) await sleep(a.delayMs);
  if (a.unreachable) throw new Error('connection refused');
  const denied = a.denyPaths?.[url.pathname];
  if (denied !== undefined) return json({ message: 'Forbidden' }, denied);
  const rejectStatus = a.rejectStatus ?? 401;
  const reject = () => json({ error: 'invalid_token' }, rejectStatus, { 'WWW-Authenticate': 'Bearer error="invalid_token"' });
  if (a.rejectNext !== undefined && a.rejectNext > 0) {
    a.rejectNext--;
    return reject();
  }
  const presented = [...request.headers.values()].join('\n');
  const live = h.issued.some((t) => !h.revoked.has(t) && presented.includes(t));
  if (!live) return reject();
  if (a.answer !== undefined) return shapedAnswer(a.answer, request, h.issued.find((t) => presented.includes(t))!);
  if (a.coder !== undefined && /^\/v1\/topics\/[^/]+\/code$/.test(url.pathname) && request.method === 'POST') {
    h.coder ??= { limits: a.coder, calls: [], accepted: [] };
    h.coder.limits = a.coder;
    return coderAnswer(h.coder, body, h.issued.find((t) => presented.includes(t)));
  }
  if (a.reflectHeaders) {
    const echo: Record<string, string> = {};
    request.headers.forEach((v, k) => (echo[k] = v));
    const auth = request.headers.get('authorization') ?? '';
    return json({ headers: echo, body }, a.status ?? 200, { ETag: `"${auth}"`, 'X-Echo-Authorization': auth });
  }
  if (a.status !== undefined) return new Response(a.body ?? '', { status: a.status, headers: { 'Content-Type': 'application/json', ...a.headers } });
  let parsed: unknown = null;
  try {
    parsed = body === '' ? null : JSON.parse(body);
  } catch {
    parsed = body;
  }
  return json({ ok: true, method: request.method, path: url.pathname, body: parsed }, 200, { 'Set-Cookie': 'upstream=1', 'X-Upstream-Internal': 'yes', ...a.headers });
}

async function control(url: URL, request: Request): Promise<Response> {
  const name = url.searchParams.get('host') ?? '';
  switch (url.pathname) {
    case '/hits': {
      // `from`: only hits recorded from that position on; `X-Hits-Total` tells the next position.
      const from = Number(url.searchParams.get('from') ?? 0);
      return json(
        hits.slice(from).filter((h) => name === '' || h.host === name),
        200,
        { 'X-Hits-Total': String(hits.length) },
      );
    }
    case '/access-keys':
      // POST: the key set the Access certs endpoint serves from now on; GET: how often it was fetched.
      if (request.method === 'POST') accessKeys = await request.json();
      return json({ fetches: accessCertFetches });
    case '/egress-hits':
      return json(egressHits.filter((h) => name === '' || h.target === name));
    case '/egress-keys':
      // The secrets an egress origin (`?egress=`) accepts from now on, as during a rotation.
      egressKeys.set(url.searchParams.get('egress') ?? '', new Set((await request.json()) as string[]));
      return json({ ok: true });
    case '/tokens':
      return json(name === '' ? [...hosts.values()].flatMap((h) => h.issued) : host(name).issued);
    case '/token':
      host(name).token = (await request.json()) as TokenBehaviour;
      return json({ ok: true });
    case '/api':
      host(name).api = (await request.json()) as ApiBehaviour;
      return json({ ok: true });
    case '/coder':
      // The coding stand-in's calls (arrival times, records, status); DELETE forgets them.
      if (request.method === 'DELETE') delete host(name).coder;
      return json(host(name).coder?.calls ?? []);
    case '/issue': {
      // A token issued before the test began (e.g. written by an earlier version of the Worker).
      const token = await request.text();
      host(name).issued.push(token);
      watched.tokens.push(token);
      return json({ ok: true });
    }
    case '/revoke': {
      const h = host(name);
      for (const t of h.issued) h.revoked.add(t);
      return json({ ok: true });
    }
    case '/siteverify-token': {
      const { token, behaviour } = (await request.json()) as { token: string; behaviour: SiteverifyBehaviour };
      siteverifyTokens.set(token, behaviour);
      watched.turnstile.push(token);
      if (behaviour.spent) consumed.set(token, 'used elsewhere');
      return json({ ok: true });
    }
    case '/siteverify-hits':
      return json(siteverifyHits);
    case '/siteverify-tokens':
      return json([...siteverifyTokens.keys()]);
    case '/leak-watch':
      // The tokens and Turnstile tokens after the first `tokens` and `turnstile` ones.
      return json({
        tokens: watched.tokens.slice(Number(url.searchParams.get('tokens') ?? 0)),
        turnstile: watched.turnstile.slice(Number(url.searchParams.get('turnstile') ?? 0)),
      });
    case '/reset':
      siteverifyHits.length = 0;
      siteverifyTokens.clear();
      consumed.clear();
      hits.length = 0;
      hosts.clear();
      egressHits.length = 0;
      egressKeys.clear();
      return json({ ok: true });
    default:
      return json({ error: 'unknown control path' }, 404);
  }
}

// ---- Turnstile siteverify (issue 10) ------------------------------------------------------------

/** How siteverify answers for one token (registered by the test). */
export interface SiteverifyBehaviour {
  /** `false`: refused with `errorCodes` (default `invalid-input-response`). Default: accepted. */
  success?: boolean;
  errorCodes?: string[];
  /** The host the widget ran on, as reported on success. Default: forms.example.org. */
  hostname?: string;
  /** The widget's action, reported on success when set. */
  action?: string;
  /** Already verified elsewhere on the edge: `timeout-or-duplicate`. */
  spent?: boolean;
  /** Answer every attempt with this status and raw body instead (garbage, an outage). */
  status?: number;
  body?: string;
  /** Answer the first this many attempts with 500, then normally. */
  failFirst?: number;
  /** Answer after this many ms. */
  delayMs?: number;
  /** Content-Encoding of the answer (gzip, deflate, br: encoded on the way, see wireBody). */
  encoding?: string;
}

/** One siteverify request, as the stand-in received it (the form fields). */
export interface SiteverifyHit {
  contentType: string;
  secret: string;
  response: string;
  remoteip: string | null;
  idempotency_key: string | null;
  /** Any other field sent. */
  others: string[];
}

/** The Worker's Turnstile secret in the tests; any other gets `invalid-input-secret`. */
const TURNSTILE_SECRET = SECRETS.TEST_TURNSTILE_SECRET;
const siteverifyHits: SiteverifyHit[] = [];
const siteverifyTokens = new Map<string, SiteverifyBehaviour>();
/** Tokens verified, by the idempotency key that did it. */
const consumed = new Map<string, string>();

async function siteverify(request: Request, url: URL): Promise<Response> {
  if (url.pathname !== '/turnstile/v0/siteverify' || request.method !== 'POST') return json({ error: 'not siteverify' }, 404);
  const form = new URLSearchParams(await request.text());
  const response = form.get('response') ?? '';
  const key = form.get('idempotency_key');
  siteverifyHits.push({
    contentType: request.headers.get('Content-Type') ?? '',
    secret: form.get('secret') ?? '',
    response,
    remoteip: form.get('remoteip'),
    idempotency_key: key,
    others: [...form.keys()].filter((k) => !['secret', 'response', 'remoteip', 'idempotency_key'].includes(k)),
  });
  const refuse = (codes: string[]) => json({ success: false, 'error-codes': codes, messages: [] });
  if (form.get('secret') !== TURNSTILE_SECRET) return refuse(['invalid-input-secret']);
  const b = siteverifyTokens.get(response);
  if (b === undefined) return refuse(['invalid-input-response']);
  if (b.delayMs !== undefined) await sleep(b.delayMs);
  if (b.failFirst !== undefined && b.failFirst > 0) {
    b.failFirst--;
    return new Response('<html>500 Internal Server Error</html>', { status: 500, headers: { 'Content-Type': 'text/html' } });
  }
  if (b.status !== undefined) return new Response(b.body ?? '', { status: b.status, headers: { 'Content-Type': 'application/json' } });
  if (b.success === false) return refuse(b.errorCodes ?? ['invalid-input-response']);
  const by = consumed.get(response);
  if (by !== undefined && by !== key) return refuse(['timeout-or-duplicate']);
  consumed.set(response, key ?? '');
  return json(
    {
      success: true,
      challenge_ts: new Date().toISOString(),
      hostname: b.hostname ?? 'forms.example.org',
      'error-codes': [],
      ...(b.action === undefined ? {} : { action: b.action }),
      cdata: '',
    },
    200,
    b.encoding === undefined ? {} : { 'Content-Encoding': b.encoding },
  );
}

// ---- Gateway answer shapes (issue 9): what a real or hostile API may send back ------------------

/** How an accepted API call is answered, instead of the echo. */
export interface AnswerShape {
  status?: number;
  headers?: Record<string, string>;
  /** The body; `{token:ENCODING}` is replaced by the presented token in that encoding (encodings.ts). */
  body?: string;
  /** The body's exact bytes instead (base64), e.g. a windows-1252 text. */
  bodyBase64?: string;
  /** Content-Encoding of the answer, the body encoded so (gzip, x-gzip, deflate, br, zstd; other labels: the body as is). */
  encoding?: string;
  /** A gzip bomb instead of `body`: this many bytes of JSON-like filler, gzip-encoded on the way (about 1000:1). */
  bombBytes?: number;
  /** Send the body in pieces of these byte lengths (the rest in one last piece). */
  split?: number[];
  /** Send the headers and the first `afterBytes` at once, then hold the rest back `ms` (a stalled body). */
  stall?: { afterBytes: number; ms: number };
  /** Conditional GET: 304 without a body when If-None-Match carries this ETag; else the answer with it. */
  etag?: string;
}

/** The part of Node's zlib used here, loaded where the stand-in runs (Node) without making this file Node-only for the workerd type check. */
interface Zlib {
  zstdCompressSync?(b: Uint8Array): Uint8Array;
}
const zlib = (globalThis as unknown as { process: { getBuiltinModule(id: string): unknown } }).process.getBuiltinModule('node:zlib') as Zlib;


/**
 * `bytes` bytes of JSON-like filler, made as they are read (never held whole): sent with
 * `Content-Encoding: gzip`, the outbound layer compresses it on the way (about 1000:1), so the
 * Worker receives a gzip bomb, and a reader that stops early stops its making.
 */
function fillerStream(bytes: number): ReadableStream<Uint8Array> {
  const piece = new TextEncoder().encode(`{"filler":"${'x'.repeat(1000)}"},`.repeat(64));
  let left = bytes;
  return new ReadableStream<Uint8Array>({
    pull(controller) {
      if (left <= 0) return controller.close();
      const chunk = left >= piece.length ? piece : piece.subarray(0, left);
      left -= chunk.length;
      controller.enqueue(chunk.slice());
    },
  });
}

/**
 * The body as it must leave the stand-in so that the Worker's `fetch` (with `encodeResponseBody:
 * 'manual'`, as the gateway asks) receives it encoded once, as from a real server. Miniflare hands
 * an outbound answer to the Worker through a Response of its own, which workerd encodes for the
 * codings it can produce (gzip, x-gzip, deflate, br): those leave plain and are encoded on the way;
 * anything else (zstd, unknown labels) leaves encoded as it is.
 */
function wireBody(bytes: Uint8Array, coding: string | undefined): Uint8Array {
  return coding === 'zstd' ? zlib.zstdCompressSync!(bytes) : bytes;
}

function shapedAnswer(shape: AnswerShape, request: Request, token: string): Response {
  const headers: Record<string, string> = { 'Content-Type': 'application/json', ...shape.headers };
  if (shape.etag !== undefined) {
    headers.ETag = shape.etag;
    if (request.headers.get('If-None-Match') === shape.etag) return new Response(null, { status: 304, headers: { ETag: shape.etag } });
  }
  const status = shape.status ?? 200;
  if (shape.bombBytes !== undefined) {
    return new Response(fillerStream(shape.bombBytes), { status, headers: { ...headers, 'Content-Encoding': 'gzip' } });
  }
  let wire: Uint8Array;
  {
    const text = (shape.body ?? '').replace(/\{token:([a-z0-9-]+)\}/g, (_, enc: string) => encodeToken(token, enc as TokenEncoding));
    wire = wireBody(shape.bodyBase64 !== undefined ? Buffer.from(shape.bodyBase64, 'base64') : Buffer.from(text), shape.encoding);
    if (shape.encoding !== undefined) headers['Content-Encoding'] = shape.encoding;
  }
  if (shape.split === undefined && shape.stall === undefined) return new Response(new Uint8Array(wire), { status, headers });
  const pieces: Uint8Array[] = [];
  let at = 0;
  for (const n of shape.split ?? [shape.stall!.afterBytes]) pieces.push(wire.subarray(at, (at += n)));
  pieces.push(wire.subarray(at));
  const stream = new ReadableStream<Uint8Array>({
    async pull(controller) {
      const next = pieces.shift();
      if (next === undefined) return controller.close();
      // A stall holds back the last piece: the rest of the body.
      if (shape.stall !== undefined && pieces.length === 0) await sleep(shape.stall.ms);
      controller.enqueue(new Uint8Array(next));
    },
  });
  return new Response(stream, { status, headers });
}
