/**
 * @module Demo coding service: a stand-in for the ABS Coding Service, so `npm start` works with no
 * real credentials.
 *
 * It behaves like the real service where the Worker can tell: an AWS Cognito style token endpoint
 * (HTTP Basic client credentials, one token per client per hour, HTTP 403 beyond that), API calls
 * that want the raw token in `Authorization` (no "Bearer "), 403 for an expired token, the public
 * tier's limits (1 API call per second and 1,000 per day per client, HTTP 429 beyond either; see
 * `api-limits.ts`), single records and small batches of up to 300 with at most 100 characters a
 * record (`code-request.ts`), and the coding answer's shape. The coding itself is a small keyword
 * matcher over a sample of ANZSCO occupations (see `matcher.ts` and `data/README.md`).
 * `GET /__stats` is the demo's own addition.
 *
 * An API call to a known route and method is charged to the client whose token it carries, expired
 * or not, by its arrival time and before its expiry, topic or body are looked at, so a call the
 * Worker should not have made (a 403, a 400) still spends the second and the day. A call with no token or one the service never issued is answered 401 and charged to no one
 * (there is no client to charge, and a stranger cannot spend a client's quota).
 *
 * Routes:
 * - `POST /oauth2/token`               form body `grant_type=client_credentials`, Basic credentials
 * - `GET  /v1/topics`                  the topics it can code
 * - `POST /v1/topics/{topic}/code`     `{"record":{...}}` → one answer; `{"records":[...]}` → an array
 * - `GET  /__stats`                    counters, never a token
 */
import { createHash, randomBytes, randomUUID, timingSafeEqual } from 'node:crypto';
import { readFileSync } from 'node:fs';
import { createServer } from 'node:http';
import type { IncomingMessage, Server, ServerResponse } from 'node:http';
import { createApiLimits } from './api-limits.ts';
import type { ApiLimits } from './api-limits.ts';
import { parseCodeRequest } from './code-request.ts';
import type { CodeRequest } from './code-request.ts';
import { createMatcher, parseOccupations } from './matcher.ts';
import type { CodingInput, Occupation, Suggestion } from './matcher.ts';

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
  /**
   * API calls per second a client may make, counted from its last accepted call; one sooner is
   * answered 429. Default 1 (ABS public and partner tiers). Tests of the Worker use more, e.g. 20.
   */
  requestsPerSecond?: number;
  /** API calls a client may make per day; beyond, 429 until the day ends. Default 1000 (ABS public tier; partners 10,000). */
  dailyQuota?: number;
  /**
   * The zone whose midnight ends the quota's day: an IANA name or an offset such as "+10:00".
   * Default "UTC" (API Gateway resets quotas at 00:00 UTC).
   */
  quotaTimeZone?: string;
  /** How many arrival times of accepted API calls `GET /__stats` lists (the latest). Default 1000. */
  keepCallTimes?: number;
  /** The clock, in ms since the epoch. Default `Date.now`; tests pass their own to move time. */
  now?: () => number;
  /** The occupations to code to. Default: `demo/data/occupations.json`. */
  occupations?: readonly Occupation[];
  /** Told of every token request and how it ended (never the token itself); for logging. */
  onTokenRequest?: (event: TokenRequestEvent) => void;
  /** Told of every API call refused by the rate or the quota; for logging. */
  onApiLimit?: (event: ApiLimitEvent) => void;
}

/** What happened to one token request. Times are ms since the epoch. */
export type TokenRequestEvent =
  | { outcome: 'issued'; clientId: string; at: number; expiresAt: number }
  | { outcome: 'refused'; clientId: string; at: number; retryAfterSeconds: number }
  | { outcome: 'rejected'; error: 'invalid_client' | 'invalid_request' | 'unsupported_grant_type'; at: number };

/** An API call refused with 429, and by which limit. Times are ms since the epoch. */
export type ApiLimitEvent =
  | { limit: 'rate'; clientId: string; at: number; requestsPerSecond: number; nextAllowedAt: number }
  | { limit: 'quota'; clientId: string; at: number; dailyQuota: number; resetsAt: number };

/** The body of `GET /__stats`. */
export interface CodingServiceStats {
  /** Every request to the token endpoint, whatever its answer. */
  tokenRequests: number;
  tokensIssued: number;
  /** Token requests refused by the rate limit (403), not those with bad credentials or grant. */
  tokenRequestsRefused: number;
  /** Every request to an API path (`/v1/...`), whatever its answer. */
  apiCalls: number;
  /** API calls charged to a client that passed the rate and the quota (whatever they were answered then). */
  apiCallsAccepted: number;
  /** API calls answered 429 for coming sooner than 1 / `requestsPerSecond` s after the last accepted one. */
  apiCallsRefusedByRate: number;
  /** API calls answered 429 because the day's quota was spent. */
  apiCallsRefusedByQuota: number;
  /** Records answered with codes (or "Uncoded"): one per single-record answer, each record of a batch answer. */
  recordsCoded: number;
  /** Single-record coding calls answered 200. */
  singleRecordCalls: number;
  /** Batch coding calls answered 200, and their sizes in records (`meanRecords` null before the first). */
  batches: { count: number; maxRecords: number; meanRecords: number | null };
  /** The limits in force. */
  limits: { requestsPerSecond: number; dailyQuota: number; quotaTimeZone: string };
  /** The configured client's quota today: calls accepted, calls left, when the count goes back to 0 (ISO 8601). */
  quotaToday: { used: number; remaining: number; resetsAt: string };
  /** Arrival times (ms since the epoch) of the latest accepted API calls, oldest first, at most `keepCallTimes`. */
  acceptedCallTimes: number[];
  /** When the last token was issued (ISO 8601), or null. */
  lastTokenIssuedAt: string | null;
}

/** The topics this stand-in codes. The real service has more; the Worker does not care which. */
const TOPICS = [{ topic: 'occp', name: 'Occupation (ANZSCO 2022)' }] as const;

/**
 * Request bodies above this are answered 413. A full batch is 300 records of 100 characters, which
 * JSON can spell in ~400 KB (`\uXXXX` escapes); API Gateway itself takes up to 10 MB.
 */
const MAX_BODY_BYTES = 1024 * 1024;
/** Expired tokens are still recognised (403, not 401) for this long, then forgotten. */
const FORGET_EXPIRED_AFTER_MS = 24 * 60 * 60 * 1000;

/** One record's answer: the ABS's SynchronousCodeResponse. */
interface CodeAnswer {
  recordId: string;
  codeStatus: 'Coded' | 'Uncoded';
  input: CodingInput;
  result: Suggestion[];
}

/**
 * Creates the demo coding service as a `node:http` Server, not yet listening.
 *
 * - `clientId`, `clientSecret`: the only credentials the token endpoint accepts.
 * - `tokenLifetimeSeconds` (default 3600): how long a token works.
 * - `tokenRateWindowSeconds` (default 3600): one token per client per window.
 * - `requestsPerSecond` (default 1), `dailyQuota` (default 1000), `quotaTimeZone` (default "UTC"):
 *   the API limits per client.
 * - `keepCallTimes` (default 1000): how many accepted calls' arrival times the stats list.
 * - `now` (default `Date.now`): the clock.
 * - `occupations` (default the bundled sample): what it codes to.
 * - `onTokenRequest`: called once per token request with its outcome.
 * - `onApiLimit`: called once per API call refused by a limit.
 *
 * Throws an Error naming the option when one cannot work.
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
    requestsPerSecond: options.requestsPerSecond ?? 1,
    dailyQuota: options.dailyQuota ?? 1000,
    quotaTimeZone: options.quotaTimeZone ?? 'UTC',
    keepCallTimes: options.keepCallTimes ?? 1000,
    now: options.now ?? Date.now,
    onTokenRequest: options.onTokenRequest ?? (() => {}),
    onApiLimit: options.onApiLimit ?? (() => {}),
  };
  for (const key of ['tokenLifetimeSeconds', 'tokenRateWindowSeconds'] as const) {
    const v = settings[key];
    if (!(Number.isFinite(v) && v > 0)) throw new Error(`createCodingService: ${key} must be a positive number`);
  }
  if (!(Number.isSafeInteger(settings.keepCallTimes) && settings.keepCallTimes >= 0)) {
    throw new Error('createCodingService: keepCallTimes must be a whole number, 0 or more');
  }
  if (settings.clientId === '' || settings.clientSecret === '') {
    throw new Error('createCodingService: clientId and clientSecret must not be empty');
  }
  let limits: ApiLimits;
  try {
    limits = createApiLimits({ requestsPerSecond: settings.requestsPerSecond, dailyQuota: settings.dailyQuota, timeZone: settings.quotaTimeZone });
  } catch (err) {
    // api-limits names its own option; say which of ours that is.
    const message = err instanceof Error ? err.message : String(err);
    throw new Error(`createCodingService: ${message.replace(/^timeZone\b/, 'quotaTimeZone')}`);
  }

  const matcher = createMatcher(options.occupations ?? loadBundledOccupations());
  const clientIs = credentialsCheck(settings.clientId, settings.clientSecret);
  const lifetimeMs = settings.tokenLifetimeSeconds * 1000;
  const windowMs = settings.tokenRateWindowSeconds * 1000;
  const dayEnds = settings.quotaTimeZone === 'UTC' ? '00:00 UTC' : `midnight in ${settings.quotaTimeZone}`;

  const tokens = new Map<string, { clientId: string; expiresAt: number }>();
  const lastIssued = new Map<string, number>();
  const stats = {
    tokenRequests: 0,
    tokensIssued: 0,
    tokenRequestsRefused: 0,
    apiCalls: 0,
    apiCallsAccepted: 0,
    apiCallsRefusedByRate: 0,
    apiCallsRefusedByQuota: 0,
    recordsCoded: 0,
    singleRecordCalls: 0,
    batchCalls: 0,
    batchRecords: 0,
    maxBatchRecords: 0,
    lastTokenIssuedAt: null as number | null,
  };
  const acceptedCallTimes: number[] = [];

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

  /**
   * Lets an API call that arrived at `at` through, or answers it (and returns false): 401 without a
   * token the service issued; 429 when the token's client is over the rate or the day's quota; 403
   * when the token has expired. Limits come before expiry: the call is charged either way.
   */
  function admit(req: IncomingMessage, res: ServerResponse, at: number): boolean {
    const presented = req.headers.authorization?.trim() ?? '';
    // A "Bearer " prefix is not stripped: the real API rejects it, so the Worker must not send it.
    const info = presented === '' ? undefined : tokens.get(presented);
    if (info === undefined) {
      send(res, 401, { message: 'Unauthorized' });
      return false;
    }
    const { clientId } = info;
    const decision = limits.admit(clientId, at);
    if (decision.outcome === 'rate') {
      stats.apiCallsRefusedByRate++;
      settings.onApiLimit({ limit: 'rate', clientId, at, requestsPerSecond: settings.requestsPerSecond, nextAllowedAt: decision.nextAllowedAt });
      send(res, 429, { message: `Too Many Requests: at most ${perSecond(settings.requestsPerSecond)}` });
      return false;
    }
    if (decision.outcome === 'quota') {
      stats.apiCallsRefusedByQuota++;
      settings.onApiLimit({ limit: 'quota', clientId, at, dailyQuota: settings.dailyQuota, resetsAt: decision.resetsAt });
      const retryAfterSeconds = Math.max(1, Math.ceil((decision.resetsAt - at) / 1000));
      send(
        res,
        429,
        {
          message:
            `Limit Exceeded: the daily quota of ${settings.dailyQuota} requests is used up; ` +
            `it resets at ${dayEnds} (${new Date(decision.resetsAt).toISOString()}, in ${duration(decision.resetsAt - at)})`,
        },
        { 'Retry-After': String(retryAfterSeconds) },
      );
      return false;
    }
    stats.apiCallsAccepted++;
    if (settings.keepCallTimes > 0) {
      acceptedCallTimes.push(at);
      if (acceptedCallTimes.length > settings.keepCallTimes) acceptedCallTimes.shift();
    }
    if (at >= info.expiresAt) {
      send(res, 403, { message: 'The incoming token has expired' });
      return false;
    }
    return true;
  }

  function answer(record: CodingInput, recordId: string, numberOfSuggestions: number): CodeAnswer {
    const result = matcher.code(record, numberOfSuggestions);
    return { recordId, codeStatus: result.length > 0 ? 'Coded' : 'Uncoded', input: record, result };
  }

  async function code(topic: string, req: IncomingMessage, res: ServerResponse): Promise<void> {
    if (!TOPICS.some((t) => t.topic === topic)) {
      return send(res, 404, { message: `Unknown topic "${topic}"; known topics: ${TOPICS.map((t) => t.topic).join(', ')}` });
    }
    const text = await readBody(req);
    if (text === undefined) return send(res, 413, { message: `Request body is larger than ${MAX_BODY_BYTES} bytes` });
    const parsed: CodeRequest | string = parseCodeRequest(text);
    if (typeof parsed === 'string') return send(res, 400, { message: parsed });

    if (parsed.kind === 'single') {
      const body = answer(parsed.record, randomUUID(), parsed.numberOfSuggestions);
      stats.singleRecordCalls++;
      stats.recordsCoded++;
      return send(res, 200, body);
    }
    const body = parsed.records.map((r) => answer(r.input, r.recordId, parsed.numberOfSuggestions));
    stats.batchCalls++;
    stats.batchRecords += body.length;
    stats.maxBatchRecords = Math.max(stats.maxBatchRecords, body.length);
    stats.recordsCoded += body.length;
    send(res, 200, body);
  }

  function statsBody(): CodingServiceStats {
    const quota = limits.quota(settings.clientId, settings.now());
    return {
      tokenRequests: stats.tokenRequests,
      tokensIssued: stats.tokensIssued,
      tokenRequestsRefused: stats.tokenRequestsRefused,
      apiCalls: stats.apiCalls,
      apiCallsAccepted: stats.apiCallsAccepted,
      apiCallsRefusedByRate: stats.apiCallsRefusedByRate,
      apiCallsRefusedByQuota: stats.apiCallsRefusedByQuota,
      recordsCoded: stats.recordsCoded,
      singleRecordCalls: stats.singleRecordCalls,
      batches: {
        count: stats.batchCalls,
        maxRecords: stats.maxBatchRecords,
        meanRecords: stats.batchCalls === 0 ? null : stats.batchRecords / stats.batchCalls,
      },
      limits: { requestsPerSecond: settings.requestsPerSecond, dailyQuota: settings.dailyQuota, quotaTimeZone: settings.quotaTimeZone },
      quotaToday: { used: quota.used, remaining: quota.remaining, resetsAt: new Date(quota.resetsAt).toISOString() },
      acceptedCallTimes: [...acceptedCallTimes],
      lastTokenIssuedAt: stats.lastTokenIssuedAt === null ? null : new Date(stats.lastTokenIssuedAt).toISOString(),
    };
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
      return send(res, 200, statsBody(), { 'Cache-Control': 'no-store' });
    }
    if (!path.startsWith('/v1/')) return send(res, 404, { message: 'Not Found' });

    // An API call: counted, and its arrival time taken before anything else (the body may be slow).
    stats.apiCalls++;
    const at = settings.now();
    if (path === '/v1/topics') {
      if (method !== 'GET') return methodNotAllowed(res, 'GET');
      if (admit(req, res, at)) send(res, 200, TOPICS);
      return;
    }
    const codePath = /^\/v1\/topics\/([^/]+)\/code$/.exec(path);
    if (codePath !== null) {
      if (method !== 'POST') return methodNotAllowed(res, 'POST');
      if (admit(req, res, at)) await code(safeDecode(codePath[1] ?? ''), req, res);
      return;
    }
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

/** "1 request per second", "20 requests per second", "1 request per 2 seconds". */
function perSecond(rate: number): string {
  if (rate >= 1) return `${rate} request${rate === 1 ? '' : 's'} per second`;
  return `1 request per ${Number((1 / rate).toFixed(3))} seconds`;
}

/** A wait for people: "14 h 5 min", "3 min", "40 s". */
export function duration(ms: number): string {
  const s = Math.max(0, Math.ceil(ms / 1000));
  if (s < 60) return `${s} s`;
  const m = Math.ceil(s / 60);
  if (m < 60) return `${m} min`;
  return `${Math.floor(m / 60)} h ${m % 60} min`;
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
