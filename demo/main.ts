/**
 * @module CLI entry of the demo coding service: `node demo/main.ts` (Node 22 runs the TypeScript).
 *
 * Environment:
 * - `DEMO_CLIENT_SECRET` (required): the secret the Worker sends; the Worker's `DEMO_CLIENT_SECRET`.
 * - `DEMO_CLIENT_ID` (default `demo-client`): the client id the Worker sends.
 * - `DEMO_CODER_PORT` (default 8790): port on 127.0.0.1; 0 picks a free one (printed).
 *
 * Logs one line per token request (issued, refused or rejected; never the token).
 */
import { createCodingService } from './coding-service.ts';
import type { TokenRequestEvent } from './coding-service.ts';

const DEFAULT_PORT = 8790;
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

  const server = createCodingService({ clientId, clientSecret: secret, onTokenRequest: logTokenRequest });
  server.on('error', (err: NodeJS.ErrnoException) => {
    if (err.code === 'EADDRINUSE') fail(`port ${port} on ${HOST} is already in use; set DEMO_CODER_PORT to another port`);
    fail(err.message);
  });
  server.listen(port, HOST, () => {
    const address = server.address();
    const actual = typeof address === 'object' && address !== null ? address.port : port;
    log(`demo coding service listening on http://${HOST}:${actual} (token URL http://${HOST}:${actual}/oauth2/token, client id "${clientId}")`);
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

/** Plain lines: `npm start` prefixes each with the process's name. */
function log(message: string): void {
  console.log(message);
}

function fail(message: string): never {
  console.error(`demo coding service: ${message}`);
  process.exit(1);
}

main();
