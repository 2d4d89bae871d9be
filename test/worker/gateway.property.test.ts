/**
 * Gateway: property-based runs (fast-check).
 *
 * 1. No open proxy: over random paths, params, methods, origins, headers and bodies, every URL the
 *    stand-in is asked for matches a configured route (API origin, target with safe params, a
 *    method of the route) or a configured token endpoint; and a request the Worker refuses
 *    reaches no upstream at all.
 * 2. No leak: over random requests and random API behaviour (errors, rejections, an API that
 *    echoes the request's headers, the injected token included), no response carries a secret
 *    or any token ever issued (`call()` checks every answer).
 * 3. The body redactor cuts a token out however the body is chunked (every spelling: redact.test.ts).
 */
import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { Redactor } from '../../src/redact';
import { ORIGIN, OTHER_ORIGIN, ROUTES, UPSTREAMS } from '../fixtures/config';
import { PARTNER_ORIGIN, SELF_ORIGIN } from '../fixtures/gateway';
import { call, hitsSince, setApi, type Answer } from '../helpers';
import type { ApiBehaviour, Hit } from '../standin/upstreams';

const CASES = 1000;

// ---- What the config allows: every URL the Worker may ask for --------------------------------

const escape = (s: string) => s.replace(/[.*+?^${}()|[\]\\/]/g, '\\$&');
/** A param as the gateway lets it through: one plain segment, never `.`, never `..` anywhere. */
const PARAM = '(?!\\.(?:/|$))(?:(?!\\.\\.)[A-Za-z0-9_.~-]){1,200}';

interface Allowed {
  url: RegExp;
  methods: string[];
}

const allowed: Allowed[] = [];
for (const route of Object.values(ROUTES)) {
  const u = UPSTREAMS[route.upstream as string]!;
  const base = new URL(u.api_origin as string);
  const prefix = base.origin + base.pathname.replace(/\/+$/, '');
  const target = (route.target as string).split(/\{[^}]+\}/).map(escape).join(PARAM);
  // Only the query parameters the route names, each percent-encoded.
  const names = Object.keys((route.query as Record<string, unknown> | undefined) ?? {}).map(escape);
  const query = names.length === 0 ? '' : `(?:\\?(?:${names.join('|')})=[A-Za-z0-9_.!~*'()%-]*(?:&(?:${names.join('|')})=[A-Za-z0-9_.!~*'()%-]*)*)?`;
  allowed.push({ url: new RegExp(`^${escape(prefix)}${target}${query}$`), methods: (route.methods as string[] | undefined) ?? ['POST'] });
}
const tokenEndpoints = Object.values(UPSTREAMS).map((u) => new URL(u.token_url as string));

function isAllowed(h: Hit): boolean {
  const url = new URL(h.url);
  if (tokenEndpoints.some((t) => t.origin === url.origin && t.pathname === url.pathname)) return true;
  return allowed.some((a) => a.url.test(h.url) && (a.methods.includes(h.method) || (h.method === 'HEAD' && a.methods.includes('GET'))));
}

function violations(hits: Hit[]): string[] {
  return hits.filter((h) => !isAllowed(h)).map((h) => `${h.method} ${h.url}`);
}

// ---- Generators ----------------------------------------------------------------------------------

/** Pieces that try to break out of a segment, plus ordinary ones. */
const nasty = fc.constantFrom(
  '..', '.', '...', '%2e', '%2E', '%2e%2e', '.%2e', '%2e.', '%2f', '%2F', '%5c', '%5C', '\\', '/', '//', '%00', '%0a', '%0d',
  '%09', '%7f', '%01', '%1f', '%25', '%252f', '%252e', '%3f', '%23', '?', '#', '@', '%40', ':', '%3a', ';', '%3b', '..;',
  '%2e%2e%2f', '..%2f', '..\\', '%c0%af', '%e0%80%ae', '\u2215', '\uff0f', '\u2024', 'é', '%C3%A9', '%', '%zz', '%2', ' ',
  '%20', '+', '\t', '\u0001', 'evil.com', 'https:', 'http://evil.com', '{id}', '{', '}', '[', ']', '|', '*', "'", '"', '<', '>',
  '~', '-', '_', 'occp', 'a1', 'op-42', '0',
);
const plain = fc.stringMatching(/^[A-Za-z0-9_.~-]{1,10}$/);
const segment = fc
  .array(fc.oneof({ weight: 3, arbitrary: nasty }, { weight: 2, arbitrary: plain }, { weight: 1, arbitrary: fc.string({ unit: 'binary', maxLength: 4 }) }), {
    minLength: 1,
    maxLength: 4,
  })
  .map((parts) => parts.join(''));

/** A param slot: mostly plain, often hostile, sometimes any code points at all. */
const param = fc.oneof(
  { weight: 5, arbitrary: plain },
  { weight: 3, arbitrary: segment },
  { weight: 1, arbitrary: fc.string({ unit: 'binary', maxLength: 6 }) },
);
const tail = fc.oneof(
  { weight: 6, arbitrary: fc.constant('') },
  { weight: 4, arbitrary: fc.constantFrom('/', '?q=../x', '?q=a%2Fb', '?q=a&q=b', '?q=', '?url=https://evil.example.com/', '?q=1&url=x', '#frag') },
);
const anyMethod = fc.constantFrom('GET', 'POST', 'PUT', 'DELETE', 'PATCH', 'OPTIONS', 'HEAD');

/** Request targets shaped like the configured fuzz routes (params filled), mostly with their methods. */
const templates = [
  { path: '/gwfuzz/code/{}', methods: ['POST'] },
  { path: '/gwfuzz/items/{}', methods: ['GET', 'POST', 'DELETE'] },
  { path: '/gwfuzz/a/{}/b/{}', methods: ['GET'] },
  { path: '/gwfuzz2/items/{}', methods: ['GET'] },
];
const routed = fc.constantFrom(...templates).chain((t) =>
  fc.record({
    path: fc.tuple(param, param, tail).map(([a, b, end]) => t.path.replace('{}', () => a).replace('{}', () => b) + end),
    method: fc.oneof({ weight: 3, arbitrary: fc.constantFrom(...t.methods) }, { weight: 1, arbitrary: anyMethod }),
  }),
);
/** Anything under the same prefixes. */
const prefixes = ['/gwfuzz/code/', '/gwfuzz/items/', '/gwfuzz/a/', '/gwfuzz2/items/', '/gwfuzz/', '/gwfuzz', '/', '//', '/t/', '/gwfuzz/a/x/b/'];
const wild = fc.record({
  path: fc.tuple(fc.constantFrom(...prefixes), fc.array(segment, { maxLength: 4 }), tail).map(([p, segs, end]) => p + segs.join('/') + end),
  method: anyMethod,
});
const target = fc.oneof({ weight: 3, arbitrary: routed }, { weight: 1, arbitrary: wild });

const printable = fc.string({ minLength: 0, maxLength: 40 }).map((s) => s.replace(/[^\x20-\x7e]/g, ''));
const headers = fc.record(
  {
    Authorization: fc.oneof(fc.constant('Bearer client-token-XYZ'), printable),
    Cookie: printable,
    'X-Forwarded-For': fc.constantFrom('203.0.113.7', '127.0.0.1'),
    'X-Forwarded-Host': fc.constantFrom('evil.example.com', 'gwfuzz.test:8443'),
    Forwarded: fc.constant('for=203.0.113.7;host=evil.example.com'),
    Accept: fc.constantFrom('*/*', 'application/json', 'text/html,application/xhtml+xml', 'text/html'),
    'Accept-Language': fc.constantFrom('en-AU', 'fr', '*'),
    'Sec-Fetch-Site': fc.constantFrom('same-origin', 'cross-site', 'none'),
    'X-Original-URL': fc.constantFrom('/admin', 'https://evil.example.com/'),
    'X-HTTP-Method-Override': fc.constantFrom('DELETE', 'PUT'),
  },
  { requiredKeys: [] },
);
const origin = fc.oneof(
  { weight: 6, arbitrary: fc.constant<string | null>(ORIGIN) },
  { weight: 4, arbitrary: fc.constantFrom<string | null>(PARTNER_ORIGIN, OTHER_ORIGIN, SELF_ORIGIN, 'null', null, `${ORIGIN}.evil.com`) },
);

/** Submissions in every accepted encoding, valid or not, and bodies of other types. */
const text = fc.string({ maxLength: 30 });
const goodFields = fc.record(
  { occp_text: text.filter((t) => t.trim() !== ''), tasks_text: text, name: text },
  { requiredKeys: ['occp_text'] },
);
const anyFields = fc.dictionary(fc.constantFrom('occp_text', 'tasks_text', 'name', 'extra', '__proto__', 'constructor'), fc.oneof(text, fc.constantFrom('x'.repeat(201), '', '  ')), {
  maxKeys: 4,
});
const multipart = (f: Record<string, string>) =>
  Object.entries(f)
    .map(([k, v]) => `--fuzzB\r\nContent-Disposition: form-data; name="${k}"\r\n\r\n${v}\r\n`)
    .join('') + '--fuzzB--\r\n';
const encode = (f: Record<string, string>) =>
  fc.constantFrom(
    { type: 'application/json', body: JSON.stringify(f) },
    { type: 'application/x-www-form-urlencoded', body: new URLSearchParams(f).toString() },
    { type: 'multipart/form-data; boundary=fuzzB', body: multipart(f) },
  );
const contentType = fc.constantFrom('application/json', 'application/x-www-form-urlencoded', 'multipart/form-data; boundary=b', 'text/plain', 'application/merge-patch+json', '');
const body = fc.oneof(
  { weight: 3, arbitrary: goodFields.chain(encode) },
  { weight: 2, arbitrary: anyFields.chain(encode) },
  { weight: 1, arbitrary: fc.record({ type: contentType, body: fc.string({ maxLength: 60 }) }) },
);

interface Req {
  path: string;
  method: string;
  origin: string | null;
  headers: Record<string, string>;
  body: { type: string; body: string };
}
const request = fc.record({ target, origin, headers, body }).map(({ target: t, ...rest }): Req => ({ ...t, ...rest }));

/** The Worker's own 500 (a bug), as opposed to an API's 500 passed through. */
const isOwn500 = (res: Answer) => res.status === 500 && /problem\+json/.test(res.headers.get('Content-Type') ?? '');

async function send(r: Req): Promise<Answer> {
  const init: RequestInit & { origin?: string | null } = { method: r.method, origin: r.origin, headers: { ...r.headers } };
  if (!['GET', 'HEAD', 'OPTIONS'].includes(r.method)) {
    init.body = r.body.body;
    (init.headers as Record<string, string>)['Content-Type'] = r.body.type;
  }
  if (r.method === 'OPTIONS') (init.headers as Record<string, string>)['Access-Control-Request-Method'] = 'POST';
  return call(r.path, init);
}

const isRefusal = (res: Answer) => /problem\+json/.test(res.headers.get('Content-Type') ?? '') && res.status >= 400 && res.status < 500;

// ---- Properties ----------------------------------------------------------------------------------

describe('no open proxy', () => {
  it(`${CASES} random requests: every upstream URL matches a configured route; refusals reach nothing`, async () => {
    let mark = (await hitsSince(0)).next;
    let reached = 0;
    let refused = 0;
    await fc.assert(
      fc.asyncProperty(request, async (r) => {
        const res = await send(r);
        const { hits, next } = await hitsSince(mark);
        mark = next;
        // Every URL anyone asked for since the last case (other test files included) is configured.
        expect(violations(hits), `${r.method} ${r.path} → ${res.status}`).toEqual([]);
        const mine = hits.filter((h) => h.host === 'gwfuzz.test' || h.host === 'gwfuzz2.test');
        if (isRefusal(res)) {
          refused++;
          expect(mine, `${r.method} ${r.path} was refused (${res.status}) but reached the upstream`).toEqual([]);
        }
        if (mine.some((h) => !/token$/.test(h.path))) reached++;
        expect(isOwn500(res), res.text).toBe(false);
      }),
      { numRuns: CASES },
    );
    console.info(JSON.stringify({ property: 'no open proxy', cases: CASES, reached, refused }));
    // The run explored both sides, or it proves little. (Since queries are refused rather than
    // dropped, about one case in nine reaches the API.)
    expect(reached, 'cases that reached the API').toBeGreaterThan(CASES / 20);
    expect(refused, 'cases the Worker refused').toBeGreaterThan(CASES / 4);
  }, 120_000);

  it('the stand-in checks itself: a URL outside the routes would be caught', () => {
    const h = (url: string, method = 'GET'): Hit => ({ host: new URL(url).hostname, method, path: new URL(url).pathname, search: '', headers: {}, body: '', url });
    expect(violations([h('https://gwfuzz.test/v1/items/a1')])).toEqual([]);
    expect(violations([h('https://gwfuzz2.test/base/v1/items/a1')])).toEqual([]);
    expect(violations([h('https://gwfuzz.test/v1/items/..')])).toHaveLength(1);
    expect(violations([h('https://gwfuzz.test/v1/items/.')])).toHaveLength(1);
    expect(violations([h('https://gwfuzz.test/v1/items/a..b')])).toHaveLength(1);
    expect(violations([h('https://gwfuzz.test/v1/a/x.y/z/c')])).toEqual([]);
    expect(violations([h('https://gwfuzz.test/v1/items/a/b')])).toHaveLength(1);
    expect(violations([h('https://gwfuzz.test/v1/items/a1?x=1')])).toHaveLength(1);
    expect(violations([h('https://gwfuzz.test/v1/items/a1?q=..%2Fx')])).toEqual([]);
    expect(violations([h('https://gwfuzz.test/v1/items/a1?q=1&x=2')])).toHaveLength(1);
    expect(violations([h('https://gwfuzz.test/v1/items/a1?q=a/b')])).toHaveLength(1);
    expect(violations([h('https://gwfuzz.test:8443/v1/items/a1')])).toHaveLength(1);
    expect(violations([h('https://evil.example.com/v1/items/a1')])).toHaveLength(1);
    expect(violations([h('https://gwfuzz2.test/v1/items/a1')])).toHaveLength(1);
    expect(violations([h('https://gwfuzz.test/v1/items/a1', 'PUT')])).toHaveLength(1);
  });
});

describe('no leak', () => {
  const api = fc.record<ApiBehaviour>(
    {
      status: fc.constantFrom(200, 201, 400, 403, 404, 422, 500, 503),
      reflectHeaders: fc.boolean(),
      rejectNext: fc.constantFrom(0, 0, 1, 2),
      rejectStatus: fc.constantFrom(401, 403),
      body: fc.constantFrom('{"ok":true}', '{"detail":"nope"}', ''),
    },
    { requiredKeys: [] },
  );
  const leakPath = fc.oneof(
    { weight: 4, arbitrary: fc.constantFrom('/gwleak/code/occp', '/gwleak/items/a1', '/gwleak/items/b-2') },
    { weight: 1, arbitrary: fc.tuple(fc.constantFrom('/gwleak/code/', '/gwleak/items/'), param).map(([p, s]) => p + s) },
  );
  const leakRequest = fc.record<Req>({ path: leakPath, method: fc.constantFrom('GET', 'POST', 'POST', 'PUT', 'OPTIONS'), origin, headers, body });

  it(`${CASES} random requests against a random API: no secret or token in any response`, async () => {
    let echoed = 0;
    await fc.assert(
      fc.asyncProperty(leakRequest, api, async (r, behaviour) => {
        await setApi('gwleak', behaviour);
        const res = await send(r); // call() fails the case on any secret or token in the answer
        if (res.text.includes('[redacted]')) echoed++;
        expect(isOwn500(res), res.text).toBe(false);
      }),
      { numRuns: CASES },
    );
    await setApi('gwleak', {});
    console.info(JSON.stringify({ property: 'no leak', cases: CASES, echoed_and_cut: echoed }));
    // The property is exercised, not vacuous: runs see 58–90 echoes in 1,000 cases (fewer since a
    // rejected fresh token makes later rejections 502s without an API call), so 2% is a floor far
    // below the spread, not a coin toss.
    expect(echoed, 'cases where the API echoed the token and it was cut out').toBeGreaterThan(CASES / 50);
  }, 120_000);

  it('an API that echoes the request: the token is cut from the body and headers carrying it are dropped', async () => {
    await setApi('gwleak', { reflectHeaders: true });
    try {
      const res = await call('/gwleak/items/a1');
      expect(res.status, res.text).toBe(200);
      const echo = res.json() as { headers: Record<string, string> };
      expect(echo.headers.authorization).toBe('Bearer [redacted]');
      expect(res.headers.get('ETag')).toBeNull();
      expect(res.headers.get('X-Echo-Authorization')).toBeNull();
    } finally {
      await setApi('gwleak', {});
    }
  });
});

describe('redactor', () => {
  const collect = async (chunks: Uint8Array[], token: string) => {
    const stream = new ReadableStream<Uint8Array>({
      start(c) {
        for (const ch of chunks) c.enqueue(ch);
        c.close();
      },
    }).pipeThrough(new Redactor([token]).stream());
    return new TextDecoder().decode(await new Response(stream).arrayBuffer());
  };

  /** `text` with each run of overlapping raw occurrences of `tok` replaced by one `[redacted]` (two echoes sharing a byte are both gone). */
  const cutRaw = (text: string, tok: string) => {
    const spans: Array<[number, number]> = [];
    for (let i = text.indexOf(tok); i !== -1; i = text.indexOf(tok, i + 1)) {
      const last = spans.at(-1);
      if (last !== undefined && i < last[1]) last[1] = i + tok.length;
      else spans.push([i, i + tok.length]);
    }
    let out = '';
    let at = 0;
    for (const [from, to] of spans) {
      out += `${text.slice(at, from)}[redacted]`;
      at = to;
    }
    return out + text.slice(at);
  };

  it('cuts every occurrence however the body is split into chunks (2,000 cases)', async () => {
    const token = fc.stringMatching(/^[A-Za-z0-9._~+/=-]{4,40}$/);
    // Filler without escape, whitespace or NUL bytes, so the only spelling in the text is the raw one
    // (the other spellings, and mixed ones, are redact.test.ts's property).
    const filler = fc.string({ unit: 'binary', maxLength: 20 }).map((f) => f.replace(/[%\\&\s\0]/g, ''));
    await fc.assert(
      fc.asyncProperty(
        token,
        fc.array(fc.oneof(filler, fc.constant('TOKEN'), fc.constant('TOK')), { maxLength: 12 }),
        fc.array(fc.nat(), { maxLength: 8 }),
        async (tok, parts, cuts) => {
          // 'TOKEN' stands for the token; 'TOK' for a prefix of it (a near miss).
          const text = parts.map((p) => (p === 'TOKEN' ? tok : p === 'TOK' ? tok.slice(0, -1) : p)).join('');
          const bytes = new TextEncoder().encode(text);
          const at = [...new Set(cuts.map((c) => c % (bytes.length + 1)))].sort((a, b) => a - b);
          const chunks = [0, ...at, bytes.length].slice(1).map((end, i, ends) => bytes.slice(i === 0 ? 0 : ends[i - 1], end));
          const out = await collect(chunks, tok);
          expect(out).toBe(cutRaw(text, tok));
        },
      ),
      { numRuns: 2000 },
    );
  });
});
