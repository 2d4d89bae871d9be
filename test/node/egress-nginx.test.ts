/**
 * Issue 8 end to end: the IP-bound sliding-token recipe of docs/configuration.md under
 * `wrangler dev`, its egress the reference nginx config (deploy/egress/nginx/) on 127.0.0.1, and a
 * stand-in of seed 002 that binds each token to the source address it was issued to and slides its
 * expiry from the last use. nginx leaves from 127.0.0.3 (`proxy_bind`), so that is the address
 * tokens are bound to.
 *
 * TLS everywhere, as in production: nginx's listener has a certificate from a throwaway CA that
 * workerd trusts (NODE_EXTRA_CA_CERTS, which Miniflare passes to workerd), and nginx verifies the
 * upstream's certificate (same CA, `proxy_ssl_trusted_certificate`) for the upstream's own name.
 *
 * Loopback only; fixed-length sleeps bound the run (about 30 s after start-up). Run it, and any
 * full `npm test`, under the shared port lock: flock /tmp/eti-ports.lock npm test.
 */
import { randomBytes } from 'node:crypto';
import { existsSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import { parse, stringify } from 'smol-toml';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import {
  freePort,
  httpsCall,
  makeCa,
  NGINX,
  replaceOnce,
  ROOT,
  rawTls,
  startNginx,
  startSeed002,
  startWrangler,
  type Nginx,
  type Seed002,
  type Wrangler,
} from './egress-support.ts';

const AUTH_HOST = 'auth.hosting.example';
const API_HOST = 'api.hosting.example';
/** Seed 002's `expires_in`, short so that several sliding lifetimes pass in seconds. */
const LIFETIME_S = 3;
/** Requests through the Worker while the token slides, and the pause between rounds. */
const ROUNDS = 24;
const PAUSE_MS = 500;
/** nginx's address towards upstreams, and another one on this host. */
const EGRESS_ADDRESS = '127.0.0.3';
const OTHER_ADDRESS = '127.0.0.2';
const PAGE = 'https://forms.example.org';

const secrets = {
  HOSTING_KEY_ID: `key-${randomBytes(4).toString('hex')}`,
  HOSTING_SECRET: randomBytes(18).toString('base64url'),
  EGRESS_SECRET: randomBytes(32).toString('hex'),
  EGRESS_SECRET_NEXT: randomBytes(32).toString('hex'),
  WRONG_EGRESS_SECRET: randomBytes(32).toString('hex'),
};

let dir: string;
let ca: string;
let seed: Seed002;
let nginx: Nginx;
let worker: Wrangler;
let nginxPort: number;
let started: number;

/** The docs' IP-bound sliding-token recipe (`[vars.UPSTREAMS.hosting]` …), parsed as wrangler would. */
function docsRecipe(): { UPSTREAMS: Record<string, Record<string, unknown>>; ROUTES: Record<string, Record<string, unknown>> } {
  const docs = readFileSync(join(ROOT, 'docs/configuration.md'), 'utf8');
  const block = [...docs.matchAll(/```toml\n([\s\S]*?)```/g)].map((m) => m[1]!).find((b) => b.startsWith('[vars.UPSTREAMS.hosting]'));
  if (block === undefined) throw new Error('docs/configuration.md has no [vars.UPSTREAMS.hosting] recipe');
  return (parse(block) as { vars: ReturnType<typeof docsRecipe> }).vars;
}

/** The reference egress config with this run's addresses, paths and files. */
function egressConfig(certPath: string, keyPath: string, caPath: string): string {
  const ref = join(ROOT, 'deploy/egress/nginx');
  let conf = readFileSync(join(ref, 'egress.conf'), 'utf8');
  conf = replaceOnce(conf, 'listen 443 ssl;', `listen 127.0.0.1:${nginxPort} ssl;`);
  conf = replaceOnce(conf, '    listen [::]:443 ssl;\n', '');
  conf = replaceOnce(conf, '/etc/letsencrypt/live/egress.example.org/fullchain.pem', certPath);
  conf = replaceOnce(conf, '/etc/letsencrypt/live/egress.example.org/privkey.pem', keyPath);
  conf = replaceOnce(conf, '/var/log/nginx/egress.access.log', join(dir, 'egress.access.log'));
  conf = replaceOnce(conf, '/var/log/nginx/egress.error.log', join(dir, 'egress.error.log'));
  for (const file of ['keys.map', 'hosts.map', 'upstreams.conf']) conf = replaceOnce(conf, `/etc/nginx/egress/${file}`, join(dir, file));
  conf = replaceOnce(conf, '/etc/ssl/certs/ca-certificates.crt', caPath);
  conf = replaceOnce(conf, '# proxy_bind 203.0.113.10;', `proxy_bind ${EGRESS_ADDRESS};`);
  writeFileSync(join(dir, 'egress.conf'), conf);

  writeFileSync(join(dir, 'keys.map'), `${secrets.EGRESS_SECRET} current;\n${secrets.EGRESS_SECRET_NEXT} next;\n`);
  // The reference list, plus two hosts that must fail: one whose server's certificate does not
  // name it, and one listed without an upstream group (nginx has no resolver to find it by).
  const hosts = readFileSync(join(ref, 'hosts.map'), 'utf8');
  writeFileSync(join(dir, 'hosts.map'), `${hosts}wrongcert.hosting.example wrongcert.hosting.example;\nnogroup.hosting.example nogroup.hosting.example;\n`);
  let upstreams = readFileSync(join(ref, 'upstreams.conf'), 'utf8');
  for (const host of [AUTH_HOST, API_HOST]) upstreams = replaceOnce(upstreams, `server ${host}:443;`, `server 127.0.0.1:${seed.port};`);
  writeFileSync(join(dir, 'upstreams.conf'), `${upstreams}upstream wrongcert.hosting.example {\n    server 127.0.0.1:${seed.port};\n}\n`);
  return join(dir, 'egress.conf');
}

/** The Worker's config: the docs' recipe, its egress pointed at this nginx, plus two that must fail. */
function workerConfig(): string {
  const { UPSTREAMS, ROUTES } = docsRecipe();
  const hosting = UPSTREAMS.hosting!;
  const egress = { ...(hosting.egress as Record<string, unknown>), url: `https://127.0.0.1:${nginxPort}` };
  const route = ROUTES.hosting_domains!;
  const vars = {
    UPSTREAMS: {
      hosting: { ...hosting, egress },
      wrongkey: { ...hosting, egress: { ...egress, secret_from: 'WRONG_EGRESS_SECRET' } },
      unlisted: { ...hosting, api_origin: 'https://api.unlisted.example', token_url: 'https://auth.unlisted.example/token', egress },
    },
    ROUTES: {
      hosting_domains: route,
      wrongkey_domains: { ...route, path: '/api/wrongkey/domains', upstream: 'wrongkey' },
      unlisted_domains: { ...route, path: '/api/unlisted/domains', upstream: 'unlisted' },
    },
  };
  const compatibility_date = /^compatibility_date\s*=\s*"([^"]+)"/m.exec(readFileSync(join(ROOT, 'wrangler.toml'), 'utf8'))![1]!;
  const configPath = join(dir, 'wrangler.toml');
  writeFileSync(
    configPath,
    stringify({
      name: 'eti-egress-e2e',
      main: join(ROOT, 'src/index.ts'),
      compatibility_date,
      durable_objects: { bindings: [{ name: 'TOKEN_STORE', class_name: 'TokenStore' }] },
      migrations: [{ tag: 'v1', new_sqlite_classes: ['TokenStore'] }],
      vars,
    }),
  );
  const { EGRESS_SECRET_NEXT: _unused, ...workerSecrets } = secrets;
  writeFileSync(join(dir, '.dev.vars'), Object.entries(workerSecrets).map(([k, v]) => `${k}=${v}\n`).join(''));
  return configPath;
}

beforeAll(async () => {
  if (!existsSync(NGINX)) throw new Error(`${NGINX} is missing: run scripts/ensure-nginx.sh (npm test runs it first)`);
  started = Date.now();
  dir = mkdtempSync(join(tmpdir(), 'eti-egress-'));
  const authority = makeCa(dir);
  ca = readFileSync(authority.caPath, 'utf8');
  const edge = authority.issue('egress', ['DNS:localhost', 'IP:127.0.0.1']);
  const upstreamCert = authority.issue('seed002', [`DNS:${AUTH_HOST}`, `DNS:${API_HOST}`]);
  seed = await startSeed002({ ...upstreamCert, authHost: AUTH_HOST, apiHost: API_HOST, keyId: secrets.HOSTING_KEY_ID, secret: secrets.HOSTING_SECRET, lifetimeS: LIFETIME_S });
  nginxPort = await freePort();
  nginx = await startNginx(dir, nginxPort, egressConfig(edge.certPath, edge.keyPath, authority.caPath));
  worker = await startWrangler({ configPath: workerConfig(), port: await freePort(), inspectorPort: await freePort(), stateDir: join(dir, 'state'), caPath: authority.caPath });
}, 180_000);

afterAll(async () => {
  await worker?.stop();
  await nginx?.stop();
  await seed?.close();
  if (dir !== undefined) rmSync(dir, { recursive: true, force: true });
});

/** Every value that must never show: the secrets, the Basic credential, each token issued. */
function sensitive(): string[] {
  const basic = Buffer.from(`${secrets.HOSTING_KEY_ID}:${secrets.HOSTING_SECRET}`).toString('base64');
  return [secrets.HOSTING_SECRET, secrets.EGRESS_SECRET, secrets.EGRESS_SECRET_NEXT, secrets.WRONG_EGRESS_SECRET, basic, ...seed.issued.map((i) => i.token)];
}

/** A GET through the Worker, as the form's page would send it; the answer leaks nothing. */
async function viaWorker(path: string): Promise<{ status: number; body: string; type: string | null }> {
  const res = await fetch(`${worker.url}${path}`, { headers: { Origin: PAGE, Accept: 'application/json' }, signal: AbortSignal.timeout(15_000) });
  const body = await res.text();
  const headers = [...res.headers].map(([k, v]) => `${k}: ${v}`).join('\n');
  for (const s of sensitive()) {
    expect(body, 'a secret or token in a Worker answer').not.toContain(s);
    expect(headers, 'a secret or token in a Worker header').not.toContain(s);
  }
  return { status: res.status, body, type: res.headers.get('Content-Type') };
}

/** A request straight to nginx, as anyone on the internet could send it. */
function toEgress(headers: Record<string, string>, method = 'GET', path = '/v1/domains') {
  return httpsCall({ port: nginxPort, ca, servername: 'localhost', method, path, headers: { 'X-Probe': '1', ...headers } });
}

/** A request straight to the stand-in upstream from `localAddress`, presenting `token`. */
function toUpstream(localAddress: string, token: string) {
  return httpsCall({ port: seed.port, ca, servername: API_HOST, localAddress, path: '/v1/domains', headers: { Host: API_HOST, Authorization: `Bearer ${token}`, 'X-Probe': '1' } });
}

const fromWorker = () => seed.hits.filter((h) => h.headers['x-probe'] === undefined);

describe('seed 002 through the reference nginx egress', () => {
  it('every request through the Worker succeeds over several sliding lifetimes, with one token request, all from the egress address', async () => {
    let sent = 0;
    for (let round = 0; round < ROUNDS; round++) {
      // Every sixth round, three at once.
      const burst = round % 6 === 5 ? 3 : 1;
      const answers = await Promise.all(Array.from({ length: burst }, () => viaWorker('/api/hosting/domains')));
      for (const a of answers) {
        expect(a.status, a.body).toBe(200);
        expect(JSON.parse(a.body)).toEqual({ domains: ['example.org', 'example.net'], path: '/v1/domains' });
      }
      sent += burst;
      await sleep(PAUSE_MS);
    }
    expect(seed.issued).toHaveLength(1);
    expect(seed.issued[0]!.boundTo).toBe(EGRESS_ADDRESS);
    const hits = fromWorker();
    const token = hits.filter((h) => h.path === '/token');
    const api = hits.filter((h) => h.path !== '/token');
    expect(token).toHaveLength(1);
    expect(token[0]).toMatchObject({ from: EGRESS_ADDRESS, sni: AUTH_HOST, host: AUTH_HOST, method: 'POST', status: 200 });
    expect(api).toHaveLength(sent);
    expect(api.every((h) => h.from === EGRESS_ADDRESS && h.sni === API_HOST && h.host === API_HOST && h.status === 200)).toBe(true);
    // The token slid across this many lifetimes (the sleeps alone make it at least 11.5 s).
    const lifetimes = (api.at(-1)!.at - seed.issued[0]!.at) / (LIFETIME_S * 1000);
    expect(lifetimes).toBeGreaterThanOrEqual(3);
    console.log(`[egress e2e] ${sent} API calls + 1 token request through nginx over ${lifetimes.toFixed(1)} sliding lifetimes of ${LIFETIME_S} s`);
  });

  it('the same token sent from another address (127.0.0.2) is refused; from the egress address it works', async () => {
    const token = seed.issued[0]!.token;
    const other = await toUpstream(OTHER_ADDRESS, token);
    expect(other.status).toBe(401);
    expect(JSON.parse(other.body)).toMatchObject({ error: 'invalid_token' });
    expect((await toUpstream(EGRESS_ADDRESS, token)).status).toBe(200);
  });

  it('left unused past its lifetime, the token expires at the upstream; the Worker gets a new one through the egress before its call', async () => {
    await sleep(LIFETIME_S * 1000 + 500);
    expect((await toUpstream(EGRESS_ADDRESS, seed.issued[0]!.token)).status).toBe(401);
    const before = fromWorker().length;
    const res = await viaWorker('/api/hosting/domains');
    expect(res.status, res.body).toBe(200);
    expect(seed.issued).toHaveLength(2);
    expect(seed.issued[1]!.boundTo).toBe(EGRESS_ADDRESS);
    // The token request first, then the call: the expired token was not tried.
    expect(fromWorker().slice(before).map((h) => [h.path, h.status])).toEqual([
      ['/token', 200],
      ['/v1/domains', 200],
    ]);
  });

  it('nginx forwards nothing without a key from its list or for a host not on it', async () => {
    const key = secrets.EGRESS_SECRET;
    const token = seed.issued.at(-1)!.token;
    const bearer = { Authorization: `Bearer ${token}` };
    const upstreamHits = seed.hits.length;
    const refused = async (headers: Record<string, string>, why: string, method?: string) => {
      const res = await toEgress(headers, method);
      expect(res.status, JSON.stringify(headers)).toBe(403);
      expect(res.headers['x-egress-refused'], JSON.stringify(headers)).toBe(why);
    };
    await refused({ 'X-Egress-Host': API_HOST, ...bearer }, 'key');
    await refused({ 'X-Egress-Host': API_HOST, 'X-Egress-Secret': secrets.WRONG_EGRESS_SECRET, ...bearer }, 'key');
    await refused({ 'X-Egress-Host': API_HOST, 'X-Egress-Secret': `${key}x`, ...bearer }, 'key');
    await refused({ 'X-Egress-Host': 'evil.example', 'X-Egress-Secret': key }, 'host');
    await refused({ 'X-Egress-Host': `127.0.0.1:${seed.port}`, 'X-Egress-Secret': key, ...bearer }, 'host');
    await refused({ 'X-Egress-Host': `${API_HOST}.evil.example`, 'X-Egress-Secret': key, ...bearer }, 'host');
    await refused({ 'X-Egress-Host': `${API_HOST}:443`, 'X-Egress-Secret': key, ...bearer }, 'host');
    // Host header games: the Host (or an absolute-form request line) never picks the upstream.
    await refused({ Host: API_HOST, 'X-Egress-Secret': key, ...bearer }, 'host');
    const absolute = await rawTls({
      port: nginxPort,
      ca,
      servername: 'localhost',
      request: `GET https://${API_HOST}/v1/domains HTTP/1.1\r\nHost: ${API_HOST}\r\nX-Egress-Secret: ${key}\r\nX-Probe: 1\r\nConnection: close\r\n\r\n`,
    });
    expect(absolute.status).toBe(403);
    expect(absolute.raw).toMatch(/\r\nX-Egress-Refused: host\r\n/i);
    // A method the Worker never sends.
    expect((await toEgress({ 'X-Egress-Host': API_HOST, 'X-Egress-Secret': key }, 'TRACE')).status).toBe(405);
    expect((await toEgress({ 'X-Egress-Host': API_HOST, 'X-Egress-Secret': key }, 'OPTIONS')).status).toBe(403);
    // A listed host whose server's certificate does not name it: nginx verifies, and refuses.
    const wrongCert = await toEgress({ 'X-Egress-Host': 'wrongcert.hosting.example', 'X-Egress-Secret': key, ...bearer });
    expect(wrongCert.status).toBe(502);
    // A listed host with no upstream group: nothing resolves it, nothing is reached.
    expect((await toEgress({ 'X-Egress-Host': 'nogroup.hosting.example', 'X-Egress-Secret': key, ...bearer })).status).toBe(502);
    expect(seed.hits.length, 'requests nginx should have refused reached the upstream').toBe(upstreamHits);
    // The next key of a rotation is accepted too, and goes where it is sent.
    const rotated = await toEgress({ 'X-Egress-Host': API_HOST, 'X-Egress-Secret': secrets.EGRESS_SECRET_NEXT, ...bearer });
    expect(rotated.status).toBe(200);
    expect(seed.hits.slice(upstreamHits).map((h) => [h.from, h.sni, h.host, h.status])).toEqual([[EGRESS_ADDRESS, API_HOST, API_HOST, 200]]);
  });

  it("an upstream cannot forge the egress's refusal marker (nginx drops it from answers)", async () => {
    const res = await toEgress({ 'X-Egress-Host': API_HOST, 'X-Egress-Secret': secrets.EGRESS_SECRET_NEXT, Authorization: `Bearer ${seed.issued.at(-1)!.token}` }, 'GET', '/v1/forged-refusal');
    expect(res.status).toBe(200);
    expect(res.headers['x-egress-refused']).toBeUndefined();
    expect(seed.hits.at(-1)).toMatchObject({ path: '/v1/forged-refusal', status: 200 });
  });

  it('through the Worker, a secret the egress does not accept and a host not on its list are clear 502s that name no secret', async () => {
    const upstreamHits = seed.hits.length;
    const wrongKey = await viaWorker('/api/wrongkey/domains');
    expect(wrongKey.status).toBe(502);
    expect(wrongKey.type).toContain('application/problem+json');
    expect(JSON.parse(wrongKey.body)).toMatchObject({
      status: 502,
      detail: expect.stringContaining(`the egress refused to forward to ${AUTH_HOST}: it did not accept the egress secret`),
    });
    expect(wrongKey.body).not.toContain('WRONG_EGRESS_SECRET');
    const unlisted = await viaWorker('/api/unlisted/domains');
    expect(unlisted.status).toBe(502);
    expect(JSON.parse(unlisted.body)).toMatchObject({ detail: expect.stringContaining('the egress refused to forward to auth.unlisted.example: that host is not on its list') });
    expect(seed.hits.length).toBe(upstreamHits);
  });

  it('nginx logs no secret, token or Authorization; the upstream never sees the egress headers; upstream connections are kept alive', async () => {
    const access = readFileSync(nginx.accessLog, 'utf8');
    const errors = readFileSync(nginx.errorLog, 'utf8');
    const lines = access.trim().split('\n').map((l) => JSON.parse(l) as Record<string, string | number>);
    const forwarded = lines.filter((l) => l.refused === '' && l.upstream_status !== '');
    // Every Worker request was logged with the label of its key, never the key.
    expect(forwarded.filter((l) => l.key === 'current' && l.upstream_status === '200').length).toBe(fromWorker().length);
    expect(lines.filter((l) => l.refused === 'key').every((l) => l.key === '')).toBe(true);
    for (const s of sensitive()) {
      expect(access, 'a secret or token in nginx access log').not.toContain(s);
      expect(errors, 'a secret or token in nginx error log').not.toContain(s);
      expect(worker.output(), 'a secret or token in the Worker output').not.toContain(s);
    }
    expect(access).not.toMatch(/authorization|bearer|basic /i);
    for (const h of seed.hits) {
      expect(h.headers['x-egress-secret']).toBeUndefined();
      expect(h.headers['x-egress-host']).toBeUndefined();
    }
    const viaNginx = fromWorker();
    const connections = new Set(viaNginx.map((h) => h.connection)).size;
    expect(connections).toBeLessThan(viaNginx.length / 4);
    console.log(
      `[egress e2e] nginx: ${lines.length} requests logged, ${forwarded.length} forwarded; the Worker's ${viaNginx.length} upstream requests used ${connections} TLS connection(s); ${((Date.now() - started) / 1000).toFixed(1)} s including start-up`,
    );
  });
});
