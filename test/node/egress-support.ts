/**
 * @module Egress end-to-end support: a throwaway CA and certificates (openssl), a stand-in of
 * seed 002's auth service and API that binds each token to the source address it was issued to,
 * the reference nginx egress (deploy/egress/) run on loopback, and the Worker under `wrangler dev`.
 * Everything listens on 127.0.0.1; every process started here is stopped by its own id.
 */
import { execFileSync, spawn, type ChildProcess } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { chmodSync, mkdirSync, readFileSync, writeFileSync } from 'node:fs';
import { createServer as createHttpsServer, request as httpsRequest, type Server } from 'node:https';
import { createServer as createTcpServer, type AddressInfo } from 'node:net';
import { dirname, join, resolve } from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import { connect as tlsConnect } from 'node:tls';
import { fileURLToPath } from 'node:url';

export const ROOT = resolve(dirname(fileURLToPath(import.meta.url)), '../..');
export const NGINX = process.env.NGINX_PATH ?? '/usr/sbin/nginx';

/** A port nothing listens on right now (the caller holds /tmp/eti-ports.lock, so it stays free). */
export async function freePort(): Promise<number> {
  const server = createTcpServer();
  await new Promise<void>((done) => server.listen(0, '127.0.0.1', done));
  const { port } = server.address() as AddressInfo;
  await new Promise((done) => server.close(done));
  return port;
}

// ---------------------------------------------------------------------------------------------
// Certificates
// ---------------------------------------------------------------------------------------------

/** A throwaway CA in `dir`; `issue` makes a server certificate it signs. */
export function makeCa(dir: string): {
  caPath: string;
  /** A certificate for `name`: a server's (`serverAuth`, the default) or a client's (`clientAuth`, for mutual TLS). */
  issue(name: string, altNames: string[], usage?: 'serverAuth' | 'clientAuth'): { cert: string; key: string; certPath: string; keyPath: string };
} {
  const caKey = join(dir, 'ca.key');
  const caPath = join(dir, 'ca.pem');
  const ec = ['-newkey', 'ec', '-pkeyopt', 'ec_paramgen_curve:prime256v1', '-nodes'];
  execFileSync('openssl', ['req', '-x509', ...ec, '-keyout', caKey, '-out', caPath, '-days', '2', '-subj', '/CN=edge-token-injector test CA',
    '-addext', 'basicConstraints=critical,CA:TRUE', '-addext', 'keyUsage=critical,keyCertSign,cRLSign'], { stdio: 'pipe' });
  return {
    caPath,
    issue(name, altNames, usage = 'serverAuth') {
      const keyPath = join(dir, `${name}.key`);
      const csr = join(dir, `${name}.csr`);
      const certPath = join(dir, `${name}.pem`);
      const ext = join(dir, `${name}.ext`);
      writeFileSync(ext, `basicConstraints=CA:FALSE\nkeyUsage=critical,digitalSignature\nextendedKeyUsage=${usage}\n${altNames.length === 0 ? '' : `subjectAltName=${altNames.join(',')}\n`}`);
      execFileSync('openssl', ['req', ...ec, '-keyout', keyPath, '-out', csr, '-subj', `/CN=${name}`], { stdio: 'pipe' });
      execFileSync('openssl', ['x509', '-req', '-in', csr, '-CA', caPath, '-CAkey', caKey, '-CAcreateserial', '-out', certPath, '-days', '2', '-extfile', ext], { stdio: 'pipe' });
      return { cert: readFileSync(certPath, 'utf8'), key: readFileSync(keyPath, 'utf8'), certPath, keyPath };
    },
  };
}

// ---------------------------------------------------------------------------------------------
// Seed 002 stand-in: tokens bound to the source address, expiry sliding from the last use
// ---------------------------------------------------------------------------------------------

export interface SeedHit {
  /** TLS connection number (keep-alive shows as several hits on one connection). */
  connection: number;
  from: string;
  sni: string | undefined;
  host: string | undefined;
  method: string;
  path: string;
  headers: Record<string, string | string[] | undefined>;
  status: number;
  /** When it arrived (epoch ms). */
  at: number;
}

export interface Seed002 {
  port: number;
  hits: SeedHit[];
  /** Tokens issued, with the address each is bound to. */
  issued: Array<{ token: string; boundTo: string; at: number }>;
  close(): Promise<void>;
}

/**
 * The auth service (`POST /token` on `authHost`: HTTP Basic key id and secret,
 * `grant_type=client_credentials`) and the API (any path on `apiHost`, Bearer token), as seed 002
 * describes them: a token works only from the address that obtained it, and expires `lifetimeS`
 * after the most recent request that used it.
 */
export async function startSeed002(opts: { cert: string; key: string; authHost: string; apiHost: string; keyId: string; secret: string; lifetimeS: number }): Promise<Seed002> {
  const hits: SeedHit[] = [];
  const issued: Seed002['issued'] = [];
  const live = new Map<string, { boundTo: string; lastUse: number }>();
  let connections = 0;
  const connectionOf = new WeakMap<object, number>();
  const server: Server = createHttpsServer({ cert: opts.cert, key: opts.key }, (req, res) => {
    const chunks: Buffer[] = [];
    req.on('data', (c: Buffer) => chunks.push(c));
    req.on('end', () => {
      const socket = req.socket as import('node:tls').TLSSocket;
      const from = socket.remoteAddress ?? '';
      const host = req.headers.host;
      const now = Date.now();
      const answer = (status: number, body: unknown) => {
        hits.push({ connection: connectionOf.get(socket) ?? 0, from, sni: socket.servername || undefined, host, method: req.method ?? '', path: req.url ?? '', headers: req.headers, status, at: now });
        res.writeHead(status, { 'Content-Type': 'application/json' }).end(JSON.stringify(body));
      };
      if (host === opts.authHost && req.url === '/token' && req.method === 'POST') {
        const basic = Buffer.from((req.headers.authorization ?? '').replace(/^Basic /, ''), 'base64').toString();
        const form = new URLSearchParams(Buffer.concat(chunks).toString());
        if (basic !== `${opts.keyId}:${opts.secret}` || form.get('grant_type') !== 'client_credentials') {
          return answer(401, { error: 'invalid_client', error_description: 'Invalid credentials' });
        }
        const token = randomBytes(12).toString('base64url');
        live.set(token, { boundTo: from, lastUse: now });
        issued.push({ token, boundTo: from, at: now });
        return answer(200, { access_token: token, expires_in: opts.lifetimeS, token_type: 'bearer' });
      }
      if (host !== opts.apiHost) return answer(404, { error: 'not_found', error_description: 'no such endpoint on this host' });
      const token = (req.headers.authorization ?? '').replace(/^Bearer /, '');
      const t = live.get(token);
      if (t === undefined || t.boundTo !== from || now > t.lastUse + opts.lifetimeS * 1000) {
        return answer(401, { error: 'invalid_token', error_description: 'Token invalid, expired or used from another address' });
      }
      t.lastUse = now;
      // A hostile upstream imitating the egress's refusal marker.
      if (req.url === '/v1/forged-refusal') res.setHeader('X-Egress-Refused', 'key');
      return answer(200, { domains: ['example.org', 'example.net'], path: req.url });
    });
  });
  server.on('secureConnection', (socket) => connectionOf.set(socket, ++connections));
  server.keepAliveTimeout = 30_000;
  await new Promise<void>((done) => server.listen(0, '127.0.0.1', done));
  return {
    port: (server.address() as AddressInfo).port,
    hits,
    issued,
    close: () =>
      new Promise((done) => {
        server.closeAllConnections();
        server.close(() => done());
      }),
  };
}

/** A request straight to a TLS server on loopback, from `localAddress`, trusting `ca`. */
export function httpsCall(opts: {
  port: number;
  ca: string;
  servername: string;
  localAddress?: string;
  method?: string;
  path: string;
  headers?: Record<string, string>;
  body?: string;
}): Promise<{ status: number; headers: Record<string, string | string[] | undefined>; body: string }> {
  return new Promise((done, fail) => {
    const req = httpsRequest(
      {
        host: '127.0.0.1',
        port: opts.port,
        ca: opts.ca,
        servername: opts.servername,
        localAddress: opts.localAddress,
        method: opts.method ?? 'GET',
        path: opts.path,
        headers: opts.headers,
        agent: false,
        timeout: 10_000,
      },
      (res) => {
        const chunks: Buffer[] = [];
        res.on('data', (c: Buffer) => chunks.push(c));
        res.on('end', () => done({ status: res.statusCode ?? 0, headers: res.headers, body: Buffer.concat(chunks).toString() }));
      },
    );
    req.on('timeout', () => req.destroy(new Error('request timed out')));
    req.on('error', fail);
    req.end(opts.body);
  });
}

/**
 * Raw bytes to a TLS server (for request lines `https.request` will not send, e.g. absolute-form),
 * answered with the status line's code and the raw response.
 */
export function rawTls(opts: { port: number; ca: string; servername: string; request: string }): Promise<{ status: number; raw: string }> {
  return new Promise((done, fail) => {
    const socket = tlsConnect({ host: '127.0.0.1', port: opts.port, ca: opts.ca, servername: opts.servername }, () => socket.end(opts.request));
    let raw = '';
    socket.setTimeout(10_000, () => socket.destroy(new Error('raw request timed out')));
    socket.on('data', (c: Buffer) => (raw += c.toString()));
    socket.on('end', () => done({ status: Number(/^HTTP\/1\.[01] (\d{3})/.exec(raw)?.[1] ?? 0), raw }));
    socket.on('error', fail);
  });
}

// ---------------------------------------------------------------------------------------------
// nginx with the reference config
// ---------------------------------------------------------------------------------------------

/** `text` with `from` replaced by `to`, which must occur exactly once (the reference changed?). */
export function replaceOnce(text: string, from: string, to: string): string {
  const at = text.indexOf(from);
  if (at === -1 || text.indexOf(from, at + 1) !== -1) throw new Error(`deploy/egress/nginx/egress.conf: expected "${from}" exactly once`);
  return text.slice(0, at) + to + text.slice(at + from.length);
}

export interface Nginx {
  accessLog: string;
  errorLog: string;
  stop(): Promise<void>;
  output(): string;
}

/**
 * Run nginx in the foreground on `dir/nginx.conf` (which includes the prepared egress config), and
 * wait until its TLS listener on 127.0.0.1:`port` accepts connections.
 */
export async function startNginx(dir: string, port: number, egressConf: string): Promise<Nginx> {
  const tmp = join(dir, 'nginx-tmp');
  mkdirSync(tmp, { recursive: true });
  // Worker processes drop root; they may need the temp paths (the config spools nothing to disk).
  chmodSync(dir, 0o755);
  chmodSync(tmp, 0o777);
  const conf = join(dir, 'nginx.conf');
  writeFileSync(
    conf,
    [
      'daemon off;',
      'worker_processes 1;',
      `pid ${join(dir, 'nginx.pid')};`,
      `error_log ${join(dir, 'nginx-main.error.log')} warn;`,
      'events { worker_connections 256; }',
      'http {',
      `  client_body_temp_path ${tmp}/body; proxy_temp_path ${tmp}/proxy; fastcgi_temp_path ${tmp}/fastcgi;`,
      `  uwsgi_temp_path ${tmp}/uwsgi; scgi_temp_path ${tmp}/scgi;`,
      `  access_log off;`,
      `  include ${egressConf};`,
      '}',
      '',
    ].join('\n'),
  );
  const child = spawn(NGINX, ['-p', dir, '-c', conf, '-e', join(dir, 'nginx-main.error.log')], { stdio: ['ignore', 'pipe', 'pipe'] });
  let output = '';
  child.stdout?.on('data', (c: Buffer) => (output += c.toString()));
  child.stderr?.on('data', (c: Buffer) => (output += c.toString()));
  const exited = new Promise<number | null>((done) => child.once('exit', done));
  await waitForPort(port, 20_000, exited, () => `nginx did not start:\n${output}`);
  return {
    accessLog: join(dir, 'egress.access.log'),
    errorLog: join(dir, 'egress.error.log'),
    output: () => output,
    stop: () => stopChild(child, 'SIGQUIT', exited),
  };
}

async function waitForPort(port: number, ms: number, exited: Promise<number | null>, why: () => string): Promise<void> {
  let gone = false;
  void exited.then(() => (gone = true));
  const deadline = Date.now() + ms;
  while (Date.now() < deadline && !gone) {
    const open = await new Promise<boolean>((done) => {
      const s = tlsConnect({ host: '127.0.0.1', port, rejectUnauthorized: false }, () => {
        s.destroy();
        done(true);
      });
      s.on('error', () => done(false));
    });
    if (open) return;
    await sleep(100);
  }
  throw new Error(why());
}

async function stopChild(child: ChildProcess, signal: NodeJS.Signals, exited: Promise<number | null>): Promise<void> {
  if (child.exitCode !== null || child.signalCode !== null) return;
  child.kill(signal);
  const stopped = await Promise.race([exited.then(() => true), sleep(5_000).then(() => false)]);
  if (!stopped) {
    child.kill('SIGKILL');
    await exited;
  }
}

// ---------------------------------------------------------------------------------------------
// The Worker under wrangler dev
// ---------------------------------------------------------------------------------------------

export interface Wrangler {
  url: string;
  output(): string;
  stop(): Promise<void>;
}

/**
 * `wrangler dev` on `configPath` (its `.dev.vars` beside it), listening on 127.0.0.1:`port`, with
 * `caPath` trusted for the Worker's outbound TLS: Miniflare hands the certificates named by
 * NODE_EXTRA_CA_CERTS to workerd as trusted certificates of its network service.
 */
export async function startWrangler(opts: { configPath: string; port: number; inspectorPort: number; stateDir: string; caPath: string }): Promise<Wrangler> {
  const child = spawn(
    join(ROOT, 'node_modules/.bin/node'),
    [join(ROOT, 'node_modules/wrangler/bin/wrangler.js'), 'dev', '--config', opts.configPath, '--ip', '127.0.0.1', '--port', String(opts.port),
      '--inspector-port', String(opts.inspectorPort), '--persist-to', opts.stateDir, '--show-interactive-dev-session=false'],
    {
      cwd: dirname(opts.configPath),
      detached: true, // its own process group: stop() ends workerd with it
      stdio: ['ignore', 'pipe', 'pipe'],
      env: { ...process.env, NODE_EXTRA_CA_CERTS: opts.caPath, WRANGLER_SEND_METRICS: 'false', NO_COLOR: '1' },
    },
  );
  let output = '';
  const keep = (c: Buffer) => (output += c.toString());
  child.stdout?.on('data', keep);
  child.stderr?.on('data', keep);
  const exited = new Promise<number | null>((done) => child.once('exit', done));
  let gone = false;
  void exited.then(() => (gone = true));
  const url = `http://127.0.0.1:${opts.port}`;
  const stop = async () => {
    if (child.exitCode !== null || child.signalCode !== null) return;
    try {
      process.kill(-child.pid!, 'SIGTERM');
    } catch {
      return;
    }
    const stopped = await Promise.race([exited.then(() => true), sleep(10_000).then(() => false)]);
    if (!stopped) {
      process.kill(-child.pid!, 'SIGKILL');
      await exited;
    }
  };
  const deadline = Date.now() + 120_000;
  while (!gone && Date.now() < deadline) {
    try {
      await fetch(`${url}/`, { signal: AbortSignal.timeout(2_000) });
      return { url, output: () => output, stop };
    } catch {
      await sleep(250);
    }
  }
  await stop();
  throw new Error(`wrangler dev did not start:\n${output.slice(-5_000)}`);
}
