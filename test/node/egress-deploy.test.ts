/**
 * Issue 8: a change of egress over a running deployment. The Worker is built as `wrangler deploy`
 * would and run under Miniflare several times over the same Durable Object storage, each run one
 * deploy. The stand-in binds each token to the egress it was fetched through (as seed 002 binds it
 * to an address): a token is never sent through another egress than the one that fetched it, a
 * rotated egress secret costs no token request, and going back finds the old token in place.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { Response as MfResponse, type Request as MfRequest } from 'miniflare';
import { prepareDeploys, type Deploys } from './deploys.ts';

const PAGE = 'https://forms.example.org';
const KEY_1 = '1'.repeat(16) + 'a'.repeat(48);
const KEY_2 = '2'.repeat(16) + 'b'.repeat(48);

let deploys: Deploys;

beforeAll(() => {
  deploys = prepareDeploys('eti-egress-deploy-');
}, 120_000);

afterAll(() => deploys?.dispose());

/** Egress origins `https://egress-*.test` in front of a token endpoint and an API that bind tokens to the egress. */
function world() {
  const w = {
    issued: [] as Array<{ token: string; via: string }>,
    apiCalls: [] as Array<{ via: string; token: string; status: number }>,
    direct: 0,
    async handler(request: MfRequest): Promise<MfResponse> {
      const url = new URL(request.url);
      if (!/^egress-[a-z]\.test$/.test(url.hostname)) {
        w.direct++;
        return new MfResponse('not through an egress', { status: 418 });
      }
      if (![KEY_1, KEY_2].includes(request.headers.get('X-Egress-Secret') ?? '')) return new MfResponse('', { status: 403, headers: { 'X-Egress-Refused': 'key' } });
      const via = url.hostname;
      const target = request.headers.get('X-Egress-Host');
      if (target === 'auth.test') {
        const token = `tok_${via}_${w.issued.length + 1}_${Math.random().toString(36).slice(2)}`;
        w.issued.push({ token, via });
        return new MfResponse(JSON.stringify({ access_token: token, expires_in: 3600 }), { headers: { 'Content-Type': 'application/json' } });
      }
      if (target !== 'api.test') return new MfResponse('', { status: 403, headers: { 'X-Egress-Refused': 'host' } });
      const token = (request.headers.get('Authorization') ?? '').replace(/^Bearer /, '');
      const ok = w.issued.some((i) => i.token === token && i.via === via);
      w.apiCalls.push({ via, token, status: ok ? 200 : 401 });
      return new MfResponse(JSON.stringify({ ok }), { status: ok ? 200 : 401, headers: { 'Content-Type': 'application/json' } });
    },
  };
  return w;
}

const config = (egress: Record<string, unknown>, secret = KEY_1) => ({
  UPSTREAMS: {
    bound: {
      api_origin: 'https://api.test',
      token_url: 'https://auth.test/oauth2/token',
      client_id: 'client-a',
      client_secret_from: 'BOUND_SECRET',
      ip_bound: true,
      egress: { mode: 'origin', secret_from: 'EGRESS_SECRET', ...egress },
    },
  },
  ROUTES: { code: { path: '/code', methods: ['POST'], upstream: 'bound', target: '/v1/code', allowed_origins: [PAGE] } },
  BOUND_SECRET: 'not-a-real-secret',
  EGRESS_SECRET: secret,
});

/** One deploy with `vars`, one request. */
const deployAndCall = (vars: ReturnType<typeof config>, stand: ReturnType<typeof world>) => deploys.deployAndCall(vars, stand.handler, PAGE);

describe('a change of egress over the same storage', () => {
  const stand = world();
  const A = { url: 'https://egress-a.test' };
  const B = { url: 'https://egress-b.test' };

  it('first deploy: one token request, through egress A', async () => {
    expect(await deployAndCall(config(A), stand)).toBe(200);
    expect(stand.issued.map((i) => i.via)).toEqual(['egress-a.test']);
  });

  it('a rotated egress secret (the egress accepts both during the switch): no token request', async () => {
    expect(await deployAndCall(config(A, KEY_2), stand)).toBe(200);
    expect(stand.issued).toHaveLength(1);
    expect(stand.apiCalls.map((c) => [c.via, c.token, c.status])).toEqual([
      ['egress-a.test', stand.issued[0]!.token, 200],
      ['egress-a.test', stand.issued[0]!.token, 200],
    ]);
  });

  it('a new egress origin: a new token through it; the old token is never sent through the new egress', async () => {
    const before = stand.apiCalls.length;
    expect(await deployAndCall(config(B, KEY_2), stand)).toBe(200);
    expect(stand.issued.map((i) => i.via)).toEqual(['egress-a.test', 'egress-b.test']);
    expect(stand.apiCalls.slice(before)).toEqual([{ via: 'egress-b.test', token: stand.issued[1]!.token, status: 200 }]);
  });

  it('the same egress moved to a new address (egress.address): a new token, the one fetched from the old address is not tried', async () => {
    const before = stand.apiCalls.length;
    expect(await deployAndCall(config({ ...B, address: '198.51.100.7' }, KEY_2), stand)).toBe(200);
    expect(stand.issued).toHaveLength(3);
    expect(stand.apiCalls.slice(before)).toEqual([{ via: 'egress-b.test', token: stand.issued[2]!.token, status: 200 }]);
  });

  it('back to egress A: its credential set still holds its token, no token request; nothing ever left directly or was refused', async () => {
    const before = stand.apiCalls.length;
    expect(await deployAndCall(config(A), stand)).toBe(200);
    expect(stand.issued).toHaveLength(3);
    expect(stand.apiCalls.slice(before)).toEqual([{ via: 'egress-a.test', token: stand.issued[0]!.token, status: 200 }]);
    expect(stand.direct).toBe(0);
    expect(stand.apiCalls.filter((c) => c.status !== 200)).toEqual([]);
  });
});
