/**
 * @module CLI entry of the demo coding service: `node demo/main.ts` (Node 22 runs the TypeScript).
 *
 * Environment:
 * - `DEMO_CLIENT_SECRET` (required): the secret the Worker sends; the Worker's `DEMO_CLIENT_SECRET`.
 * - `DEMO_CLIENT_ID` (default `demo-client`): the client id the Worker sends.
 * - `DEMO_CODER_PORT` (default 8790): port on 127.0.0.1; 0 picks a free one (printed).
 * - `DEMO_CODER_REQUESTS_PER_SECOND` (default 1), `DEMO_CODER_DAILY_QUOTA` (default 1000),
 *   `DEMO_CODER_QUOTA_TIME_ZONE` (default UTC): the API limits, as the ABS public tier's.
 *
 * Logs one line per token request (issued, refused or rejected; never the token), one per API call
 * refused by the rate, and one the first time each day an API call is refused by the quota.
 */
import type { Server } from 'node:http';
import { createCodingService, duration } from './coding-service.ts';
import type { ApiLimitEvent, TokenRequestEvent } from './coding-service.ts';

const DEFAULT_PORT = 8790;
/** The variable each limit option comes from, to name it when the service refuses the value. */
const LIMIT_VARS = {
  requestsPerSecond: 'DEMO_CODER_REQUESTS_PER_SECOND',
  dailyQuota: 'DEMO_CODER_DAILY_QUOTA',
  quotaTimeZone: 'DEMO_CODER_QUOTA_TIME_ZONE',
} as const;
const HOST = '127.0.0.1';

function main(): void {
  const secret = process.env.DEMO_CLIENT_SECRET ?? '';
  if (secret === '') {
    fail(
      'DEMO_CLIENT_SECRET is not set. It is the client secret the Worker sends when it asks for a token;\n' +
        'give both the same value, for example:\n' +
        '  DEMO_CLIENT_SECRET=any-local-secret node demo/main.ts',
    );
  }
  const clientId = process.env.DEMO_CLIENT_ID || 'demo-client';
  const port = parsePort(process.env.DEMO_CODER_PORT);
  const requestsPerSecond = parsePositive('DEMO_CODER_REQUESTS_PER_SECOND', 1);
  const dailyQuota = parsePositive('DEMO_CODER_DAILY_QUOTA', 1000);
  const quotaTimeZone = process.env.DEMO_CODER_QUOTA_TIME_ZONE || 'UTC';

  let server: Server;
  try {
    server = createCodingService({
      clientId,
      clientSecret: secret,
      requestsPerSecond,
      dailyQuota,
      quotaTimeZone,
      onTokenRequest: logTokenRequest,
      onApiLimit: logApiLimit(quotaTimeZone),
    });
  } catch (err) {
    const message = err instanceof Error ? err.message : String(err);
    fail(message.replace(/^createCodingService: (requestsPerSecond|dailyQuota|quotaTimeZone)\b/, (_, key: keyof typeof LIMIT_VARS) => LIMIT_VARS[key]));
  }
  server.on('error', (err: NodeJS.ErrnoException) => {
    if (err.code === 'EADDRINUSE') fail(`port ${port} on ${HOST} is already in use; set DEMO_CODER_PORT to another port`);
    fail(err.message);
  });
  server.listen(port, HOST, () => {
    const address = server.address();
    const actual = typeof address === 'object' && address !== null ? address.port : port;
    log(`demo coding service listening on http://${HOST}:${actual} (token URL http://${HOST}:${actual}/oauth2/token, client id "${clientId}")`);
    log(`API limits per client: ${requestsPerSecond} call(s) per second, ${dailyQuota} per day (the day in ${quotaTimeZone})`);
  });

  const stop = () => {
    server.close(() => process.exit(0));
    server.closeAllConnections();
  };
  process.once('SIGINT', stop);
  process.once('SIGTERM', stop);
}

function parsePort(value: string | undefined): number {
  if (value === undefined || value === '') return DEFAULT_PORT;
  const port = Number(value);
  if (!/^\d+$/.test(value) || port > 65535) fail(`DEMO_CODER_PORT must be a port number (0-65535), not "${value}"`);
  return port;
}

/** A positive number from the environment (a rate may be 0.5), or the default when unset. */
function parsePositive(name: string, fallback: number): number {
  const value = process.env[name];
  if (value === undefined || value === '') return fallback;
  const n = Number(value);
  if (!(Number.isFinite(n) && n > 0)) fail(`${name} must be a positive number, not "${value}"`);
  return n;
}

function logTokenRequest(event: TokenRequestEvent): void {
  switch (event.outcome) {
    case 'issued':
      log(`token request from "${event.clientId}": issued, valid until ${new Date(event.expiresAt).toISOString()}`);
      break;
    case 'refused':
      log(`token request from "${event.clientId}": refused (403 Too many token requests; next allowed in ${event.retryAfterSeconds} s)`);
      break;
    case 'rejected':
      log(`token request: rejected (${event.error})`);
      break;
  }
}

/** Every rate refusal (a paced client makes none); a quota refusal once a day per client, not for each call. */
function logApiLimit(timeZone: string): (event: ApiLimitEvent) => void {
  const told = new Map<string, number>();
  return (event) => {
    if (event.limit === 'rate') {
      const wait = Math.max(0, Math.ceil(event.nextAllowedAt - event.at));
      log(`API call from "${event.clientId}": refused (429, over ${event.requestsPerSecond} per second; next allowed in ${wait} ms)`);
      return;
    }
    if (told.get(event.clientId) === event.resetsAt) return;
    told.set(event.clientId, event.resetsAt);
    log(
      `API call from "${event.clientId}": refused (429, daily quota of ${event.dailyQuota} used up); ` +
        `further calls are refused until ${new Date(event.resetsAt).toISOString()} (midnight ${timeZone}, in ${duration(event.resetsAt - event.at)})`,
    );
  };
}

/** Plain lines: `npm start` prefixes each with the process's name. */
function log(message: string): void {
  console.log(message);
}

function fail(message: string): never {
  console.error(`demo coding service: ${message}`);
  process.exit(1);
}

main();
