/**
 * @module Demo coding service: a stand-in for the ABS Coding Service, so `npm start` works with no
 * real credentials.
 *
 * It behaves like the real service where the Worker can tell: an AWS Cognito style token endpoint
 * (HTTP Basic client credentials, one token per client per hour, HTTP 403 beyond that), API calls
 * that want the raw token in `Authorization` (no "Bearer "), 403 for an expired token, and the
 * coding answer's shape. The coding itself is a small keyword matcher over a sample of ANZSCO
 * occupations (see `matcher.ts` and `data/README.md`). `GET /__stats` is the demo's own addition.
 *
 * Routes:
 * - `POST /oauth2/token`               form body `grant_type=client_credentials`, Basic credentials
 * - `GET  /v1/topics`                  the topics it can code
 * - `POST /v1/topics/{topic}/code`     `{"record":{"occp_text","tasks_text"},"numberOfSuggestions"}`
 * - `GET  /__stats`                    counters, never a token
 */
import { createHash, randomBytes, randomUUID, timingSafeEqual } from 'node:crypto';
import { readFileSync } from 'node:fs';
import { createServer } from 'node:http';
import type { IncomingMessage, Server, ServerResponse } from 'node:http';
import { createMatcher, parseOccupations } from './matcher.ts';
import type { CodingInput, Matcher, Occupation } from './matcher.ts';

export interface CodingServiceOptions {
  /** The client id the token endpoint accepts. */
  clientId: string;
  /** Its secret. */
  clientSecret: string;
  /** How long a token works, from issue, in seconds. Default 3600 (ABS: 60 minutes). */
  tokenLifetimeSeconds?: number;
  /**
   * A client gets one token per this many seconds, counted from its last issued token; a request
   * sooner is answered 403 "Too many token requests". Default 3600 (ABS: one per hour).
   */
  tokenRateWindowSeconds?: number;
  /** The clock, in ms since the epoch. Default `Date.now`; tests pass their own to move time. */
  now?: () => number;
  /** The occupations to code to. Default: `demo/data/occupations.json`. */
  occupations?: readonly Occupation[];
  /** Told of every token request and how it ended (never the token itself); for logging. */
  onTokenRequest?: (event: TokenRequestEvent) => void;
}

/** What happened to one token request. Times are ms since the epoch. */
export type TokenRequestEvent =
  | { outcome: 'issued'; clientId: string; at: number; expiresAt: number }
  | { outcome: 'refused'; clientId: string; at: number; retryAfterSeconds: number }
  | { outcome: 'rejected'; error: 'invalid_client' | 'invalid_request' | 'unsupported_grant_type'; at: number };

/** The body of `GET /__stats`. */
export interface CodingServiceStats {
  /** Every request to the token endpoint, whatever its answer. */
  tokenRequests: number;
  tokensIssued: number;
  /** Token requests refused by the rate limit (403), not those with bad credentials or grant. */
  tokenRequestsRefused: number;
  /** Every request to an API path (`/v1/...`), whatever its answer. */
  apiCalls: number;
  /** When the last token was issued (ISO 8601), or null. */
  lastTokenIssuedAt: string | null;
}

/** The topics this stand-in codes. The real service has more; the Worker does not care which. */
const TOPICS = [{ topic: 'occp', name: 'Occupation (ANZSCO 2022)' }] as const;

const DEFAULT_SUGGESTIONS = 5;
const MAX_SUGGESTIONS = 10;
const MAX_BODY_BYTES = 64 * 1024;
/** Expired tokens are still recognised (403, not 401) for this long, then forgotten. */
const FORGET_EXPIRED_AFTER_MS = 24 * 60 * 60 * 1000;
const RECORD_FIELDS = new Set(['occp_text', 'tasks_text']);

/**
 * Creates the demo coding service as a `node:http` Server, not yet listening.
 *
 * - `clientId`, `clientSecret`: the only credentials the token endpoint accepts.
 * - `tokenLifetimeSeconds` (default 3600): how long a token works.
 * - `tokenRateWindowSeconds` (default 3600): one token per client per window.
 * - `now` (default `Date.now`): the clock.
 * - `occupations` (default the bundled sample): what it codes to.
 * - `onTokenRequest`: called once per token request with its outcome.
 *
 * @example
 * const server = createCodingService({ clientId: 'demo-client', clientSecret: 's3cret' });
 * server.listen(8790, '127.0.0.1');
 */
export function createCodingService(options: CodingServiceOptions): Server {
  const settings = {
    clientId: options.clientId,
    clientSecret: options.clientSecret,
    tokenLifetimeSeconds: options.tokenLifetimeSeconds ?? 3600,
    tokenRateWindowSeconds: options.tokenRateWindowSeconds ?? 3600,
    now: options.now ?? Date.now,
    onTokenRequest: options.onTokenRequest ?? (() => {}),
  };
  for (const key of ['tokenLifetimeSeconds', 'tokenRateWindowSeconds'] as const) {
    const v = settings[key];
    if (!(Number.isFinite(v) && v > 0)) throw new Error(`createCodingService: ${key} must be a positive number`);
  }
  if (settings.clientId === '' || settings.clientSecret === '') {
    throw new Error('createCodingService: clientId and clientSecret must not be empty');
  }

  const matcher = createMatcher(options.occupations ?? loadBundledOccupations());
  const clientIs = credentialsCheck(settings.clientId, settings.clientSecret);
  const lifetimeMs = settings.tokenLifetimeSeconds * 1000;
  const windowMs = settings.tokenRateWindowSeconds * 1000;

  const tokens = new Map<string, { clientId: string; expiresAt: number }>();
  const lastIssued = new Map<string, number>();
  const stats = { tokenRequests: 0, tokensIssued: 0, tokenRequestsRefused: 0, apiCalls: 0, lastTokenIssuedAt: null as number | null };

  async function token(req: IncomingMessage, res: ServerResponse): Promise<void> {
    stats.tokenRequests++;
    const at = settings.now();
    const reject = (status: number, error: 'invalid_client' | 'invalid_request' | 'unsupported_grant_type', headers: Record<string, string> = {}) => {
      settings.onTokenRequest({ outcome: 'rejected', error, at });
      send(res, status, { error }, headers);
    };

    const client = basicCredentials(req.headers.authorization);
    if (client === undefined || !clientIs(client)) {
      return reject(401, 'invalid_client', { 'WWW-Authenticate': 'Basic realm="demo-coding-service", charset="UTF-8"' });
    }
    if (mediaType(req.headers['content-type']) !== 'application/x-www-form-urlencoded') return reject(400, 'invalid_request');
    const body = await readBody(req);
    if (body === undefined) return reject(400, 'invalid_request');
    const grant = new URLSearchParams(body).get('grant_type');
    if (grant === null) return reject(400, 'invalid_request');
    if (grant !== 'client_credentials') return reject(400, 'unsupported_grant_type');

    const clientId = settings.clientId;
    const last = lastIssued.get(clientId);
    if (last !== undefined && at - last < windowMs) {
      stats.tokenRequestsRefused++;
      const retryAfterSeconds = Math.max(1, Math.ceil((last + windowMs - at) / 1000));
      settings.onTokenRequest({ outcome: 'refused', clientId, at, retryAfterSeconds });
      return send(res, 403, { message: 'Too many token requests' }, { 'Retry-After': String(retryAfterSeconds) });
    }

    for (const [t, info] of tokens) if (at - info.expiresAt > FORGET_EXPIRED_AFTER_MS) tokens.delete(t);
    const accessToken = randomBytes(32).toString('base64url');
    const expiresAt = at + lifetimeMs;
    tokens.set(accessToken, { clientId, expiresAt });
    lastIssued.set(clientId, at);
    stats.tokensIssued++;
    stats.lastTokenIssuedAt = at;
    settings.onTokenRequest({ outcome: 'issued', clientId, at, expiresAt });
    send(
      res,
      200,
      { access_token: accessToken, expires_in: settings.tokenLifetimeSeconds, token_type: 'Bearer' },
      { 'Cache-Control': 'no-store', Pragma: 'no-cache' },
    );
  }

  /** The raw token in `Authorization`, as API Gateway's Cognito authorizer wants it; `true` when it may pass. */
  function authorised(req: IncomingMessage, res: ServerResponse): boolean {
    const presented = req.headers.authorization?.trim() ?? '';
    // A "Bearer " prefix is not stripped: the real API rejects it, so the Worker must not send it.
    const info = presented === '' ? undefined : tokens.get(presented);
    if (info === undefined) {
      send(res, 401, { message: 'Unauthorized' });
      return false;
    }
    if (settings.now() >= info.expiresAt) {
      send(res, 403, { message: 'The incoming token has expired' });
      return false;
    }
    return true;
  }

  async function code(topic: string, req: IncomingMessage, res: ServerResponse): Promise<void> {
    if (!TOPICS.some((t) => t.topic === topic)) {
      return send(res, 404, { message: `Unknown topic "${topic}"; known topics: ${TOPICS.map((t) => t.topic).join(', ')}` });
    }
    const text = await readBody(req);
    if (text === undefined) return send(res, 413, { message: `Request body is larger than ${MAX_BODY_BYTES} bytes` });
    const parsed = parseCodeRequest(text);
    if (typeof parsed === 'string') return send(res, 400, { message: parsed });

    const result = matcher.code(parsed.record, parsed.numberOfSuggestions);
    send(res, 200, {
      recordId: randomUUID(),
      codeStatus: result.length > 0 ? 'Coded' : 'Uncoded',
      input: parsed.record,
      result,
    });
  }

  async function handle(req: IncomingMessage, res: ServerResponse): Promise<void> {
    const path = (req.url ?? '/').split('?')[0] ?? '/';
    const method = req.method ?? 'GET';

    if (path === '/oauth2/token') {
      if (method !== 'POST') return methodNotAllowed(res, 'POST');
      return token(req, res);
    }
    if (path === '/__stats') {
      if (method !== 'GET') return methodNotAllowed(res, 'GET');
      const { lastTokenIssuedAt, ...counts } = stats;
      const body: CodingServiceStats = { ...counts, lastTokenIssuedAt: lastTokenIssuedAt === null ? null : new Date(lastTokenIssuedAt).toISOString() };
      return send(res, 200, body, { 'Cache-Control': 'no-store' });
    }
    if (path === '/v1/topics') {
      stats.apiCalls++;
      if (method !== 'GET') return methodNotAllowed(res, 'GET');
      if (authorised(req, res)) send(res, 200, TOPICS);
      return;
    }
    const codePath = /^\/v1\/topics\/([^/]+)\/code$/.exec(path);
    if (codePath !== null) {
      stats.apiCalls++;
      if (method !== 'POST') return methodNotAllowed(res, 'POST');
      if (authorised(req, res)) await code(safeDecode(codePath[1] ?? ''), req, res);
      return;
    }
    if (path.startsWith('/v1/')) stats.apiCalls++;
    send(res, 404, { message: 'Not Found' });
  }

  return createServer((req, res) => {
    handle(req, res).catch((err: unknown) => {
      console.error('demo coding service: request failed:', err instanceof Error ? err.message : err);
      if (!res.headersSent) send(res, 500, { message: 'Internal server error' });
      else res.destroy();
    });
  });
}

/** The bundled sample occupations, checked. */
function loadBundledOccupations(): Occupation[] {
  const url = new URL('./data/occupations.json', import.meta.url);
  return parseOccupations(JSON.parse(readFileSync(url, 'utf8')));
}

/**
 * Compares presented client credentials with the configured ones in constant time (digests first,
 * so lengths do not leak either).
 */
function credentialsCheck(clientId: string, clientSecret: string): (presented: { id: string; secret: string }[]) => boolean {
  const digest = (s: string) => createHash('sha256').update(s).digest();
  const wantId = digest(clientId);
  const wantSecret = digest(clientSecret);
  return (candidates) => {
    let ok = false;
    for (const c of candidates) {
      // Both compared every time; `&&` would skip the secret when the id is wrong.
      const idOk = timingSafeEqual(digest(c.id), wantId);
      const secretOk = timingSafeEqual(digest(c.secret), wantSecret);
      ok = (idOk && secretOk) || ok;
    }
    return ok;
  };
}

/**
 * The client credentials in an HTTP Basic `Authorization` header, as the ways a client may have
 * written them: form-urlencoded per RFC 6749 §2.3.1 (`+` is a space, `%XX` a byte) and, for
 * clients that skip that step, as sent. Undefined when the header is missing or not Basic.
 */
export function basicCredentials(header: string | undefined): { id: string; secret: string }[] | undefined {
  const match = /^Basic\s+([A-Za-z0-9+/=_-]+)\s*$/i.exec(header ?? '');
  if (match === null) return undefined;
  const decoded = Buffer.from(match[1] ?? '', 'base64').toString('utf8');
  const colon = decoded.indexOf(':');
  if (colon < 0) return undefined;
  const raw = { id: decoded.slice(0, colon), secret: decoded.slice(colon + 1) };
  const candidates = [raw];
  const id = formDecode(raw.id);
  const secret = formDecode(raw.secret);
  if (id !== undefined && secret !== undefined && (id !== raw.id || secret !== raw.secret)) candidates.push({ id, secret });
  return candidates;
}

/** `application/x-www-form-urlencoded` decoding of one value; undefined when it is not valid. */
function formDecode(s: string): string | undefined {
  try {
    return decodeURIComponent(s.replace(/\+/g, ' '));
  } catch {
    return undefined;
  }
}

function safeDecode(s: string): string {
  try {
    return decodeURIComponent(s);
  } catch {
    return s;
  }
}

/** What a valid `POST /v1/topics/{topic}/code` body holds. */
interface CodeRequest {
  record: CodingInput;
  numberOfSuggestions: number;
}

/** The request, or a message saying what is wrong with it. */
export function parseCodeRequest(text: string): CodeRequest | string {
  let body: unknown;
  try {
    body = JSON.parse(text);
  } catch {
    return 'Request body must be JSON: {"record":{"occp_text":"...","tasks_text":"..."},"numberOfSuggestions":5}';
  }
  if (!isObject(body)) return 'Request body must be a JSON object with a "record" object';
  const { record, numberOfSuggestions } = body;
  if (record === undefined) return 'Missing "record": expected {"record":{"occp_text":"...","tasks_text":"..."}}';
  if (!isObject(record)) return '"record" must be an object with "occp_text" and optionally "tasks_text"';
  const unknown = Object.keys(record).filter((k) => !RECORD_FIELDS.has(k));
  if (unknown.length > 0) return `"record" has unknown field(s) ${unknown.map((k) => `"${k}"`).join(', ')}; expected "occp_text" and "tasks_text"`;
  const { occp_text, tasks_text } = record;
  if (typeof occp_text !== 'string') return '"record.occp_text" must be a string';
  if (tasks_text !== undefined && typeof tasks_text !== 'string') return '"record.tasks_text" must be a string when given';
  if (occp_text.trim() === '' && (tasks_text ?? '').trim() === '') return '"record.occp_text" and "record.tasks_text" are both empty: nothing to code';

  let n = DEFAULT_SUGGESTIONS;
  if (numberOfSuggestions !== undefined) {
    if (typeof numberOfSuggestions !== 'number' || !Number.isFinite(numberOfSuggestions)) return '"numberOfSuggestions" must be a number';
    n = Math.min(MAX_SUGGESTIONS, Math.max(1, Math.trunc(numberOfSuggestions)));
  }
  return { record: tasks_text === undefined ? { occp_text } : { occp_text, tasks_text }, numberOfSuggestions: n };
}

function isObject(v: unknown): v is Record<string, unknown> {
  return typeof v === 'object' && v !== null && !Array.isArray(v);
}

/** The media type of a Content-Type header, lower-cased, without parameters. */
function mediaType(header: string | undefined): string {
  return (header ?? '').split(';')[0]?.trim().toLowerCase() ?? '';
}

/**
 * The body as UTF-8 text, or undefined when it is over MAX_BODY_BYTES. An oversized body is still
 * read to its end (and dropped), so the connection stays usable for the answer.
 */
function readBody(req: IncomingMessage): Promise<string | undefined> {
  return new Promise((resolve, reject) => {
    const chunks: Buffer[] = [];
    let size = 0;
    req.on('data', (chunk: Buffer) => {
      size += chunk.length;
      if (size <= MAX_BODY_BYTES) chunks.push(chunk);
    });
    req.on('end', () => resolve(size > MAX_BODY_BYTES ? undefined : Buffer.concat(chunks).toString('utf8')));
    req.on('error', reject);
  });
}

function methodNotAllowed(res: ServerResponse, allow: string): void {
  send(res, 405, { message: 'Method Not Allowed' }, { Allow: allow });
}

function send(res: ServerResponse, status: number, body: unknown, headers: Record<string, string> = {}): void {
  const text = JSON.stringify(body);
  res.writeHead(status, {
    'Content-Type': 'application/json; charset=utf-8',
    'Content-Length': String(Buffer.byteLength(text)),
    ...headers,
  });
  res.end(text);
}
