/**
 * Deploys over a running deployment (issue 7, points 4–5): the Worker is built as `wrangler deploy`
 * would and run under Miniflare's API several times over the same Durable Object storage, each run
 * standing for one deploy with its config. An unchanged credential set costs no token request;
 * a changed token URL, client id or API origin never sends the old token anywhere.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { Response as MfResponse, type Request as MfRequest } from 'miniflare';
import { prepareDeploys, type Deploys } from './deploys.ts';

const PAGE = 'https://forms.example.org';

let deploys: Deploys;

beforeAll(() => {
  deploys = prepareDeploys('eti-deploy-');
}, 120_000);

afterAll(() => deploys?.dispose());

/** Token endpoints on any `auth*.test` host; APIs on `api*.test` accept tokens issued for them. */
interface Upstreams {
  issued: Array<{ token: string; by: string; clientId: string }>;
  apiCalls: Array<{ host: string; token: string }>;
  handler(request: MfRequest): Promise<MfResponse>;
}

function upstreams(): Upstreams {
  const u: Upstreams = {
    issued: [],
    apiCalls: [],
    async handler(request) {
      const url = new URL(request.url);
      if (url.hostname.startsWith('auth')) {
        const basic = atob((request.headers.get('Authorization') ?? 'Basic ').slice(6));
        const token = `tok_${url.hostname}_${u.issued.length + 1}_${Math.random().toString(36).slice(2)}`;
        u.issued.push({ token, by: url.hostname, clientId: basic.split(':')[0]! });
        return new MfResponse(JSON.stringify({ access_token: token, expires_in: 3600 }), { headers: { 'Content-Type': 'application/json' } });
      }
      const token = (request.headers.get('Authorization') ?? '').replace(/^Bearer /, '');
      u.apiCalls.push({ host: url.hostname, token });
      const known = u.issued.some((i) => i.token === token);
      return new MfResponse(JSON.stringify({ ok: known }), { status: known ? 200 : 401, headers: { 'Content-Type': 'application/json' } });
    },
  };
  return u;
}

const upstream = (over: Record<string, unknown> = {}) => ({
  UPSTREAMS: {
    coder: { api_origin: 'https://api.test', token_url: 'https://auth.test/oauth2/token', client_id: 'client-a', client_secret_from: 'CODER_SECRET', ...over },
  },
  ROUTES: { code: { path: '/code', methods: ['POST'], upstream: 'coder', target: '/v1/code', allowed_origins: [PAGE] } },
  CODER_SECRET: 'not-a-real-secret',
});

/** One deploy with `vars`, one request. */
const deployAndCall = (vars: ReturnType<typeof upstream>, stand: Upstreams) => deploys.deployAndCall(vars, stand.handler, PAGE);

describe('deploys over the same storage', () => {
  const stand = upstreams();

  it('first deploy: one token request', async () => {
    expect(await deployAndCall(upstream(), stand)).toBe(200);
    expect(stand.issued.map((i) => i.by)).toEqual(['auth.test']);
  });

  it('a redeploy with the same credential set (a new secret value, another lifetime default) costs no token request', async () => {
    const vars = { ...upstream({ default_lifetime_seconds: 1800 }), CODER_SECRET: 'rotated-secret' };
    expect(await deployAndCall(vars, stand)).toBe(200);
    expect(stand.issued).toHaveLength(1);
    expect(stand.apiCalls.map((c) => c.token)).toEqual([stand.issued[0]!.token, stand.issued[0]!.token]);
  });

  it('a changed token URL: a new token from the new endpoint; the old token is sent nowhere', async () => {
    const before = stand.apiCalls.length;
    expect(await deployAndCall(upstream({ token_url: 'https://auth2.test/oauth2/token' }), stand)).toBe(200);
    expect(stand.issued.map((i) => i.by)).toEqual(['auth.test', 'auth2.test']);
    expect(stand.apiCalls.slice(before).map((c) => c.token)).toEqual([stand.issued[1]!.token]);
  });

  it('a changed client id: a new token for that client', async () => {
    const before = stand.apiCalls.length;
    expect(await deployAndCall(upstream({ token_url: 'https://auth2.test/oauth2/token', client_id: 'client-b' }), stand)).toBe(200);
    expect(stand.issued.at(-1)).toMatchObject({ by: 'auth2.test', clientId: 'client-b' });
    expect(stand.issued).toHaveLength(3);
    expect(stand.apiCalls.slice(before).map((c) => c.token)).toEqual([stand.issued[2]!.token]);
  });

  it('a changed API origin: the new API never receives a token issued while the old one was configured', async () => {
    const before = stand.apiCalls.length;
    const vars = upstream({ token_url: 'https://auth2.test/oauth2/token', client_id: 'client-b', api_origin: 'https://api2.test' });
    expect(await deployAndCall(vars, stand)).toBe(200);
    expect(stand.issued).toHaveLength(4);
    const calls = stand.apiCalls.slice(before);
    expect(calls).toEqual([{ host: 'api2.test', token: stand.issued[3]!.token }]);
    const earlier = new Set(stand.issued.slice(0, 3).map((i) => i.token));
    expect(stand.apiCalls.filter((c) => c.host === 'api2.test' && earlier.has(c.token))).toEqual([]);
  });

  it('and back to the first config: its credential set still holds its token, no token request', async () => {
    const before = stand.apiCalls.length;
    expect(await deployAndCall(upstream(), stand)).toBe(200);
    expect(stand.issued).toHaveLength(4);
    expect(stand.apiCalls.slice(before)).toEqual([{ host: 'api.test', token: stand.issued[0]!.token }]);
  });
});
