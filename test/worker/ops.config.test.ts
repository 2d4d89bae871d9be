/**
 * The config keys of issue 10's operator half: `STATUS` (who may read /status), a route's
 * `log_fields`, the paths the Worker keeps for itself, and the start checks that find every
 * missing secret and binding at once, each message naming its key and never a value.
 */
import { describe, expect, it } from 'vitest';
import { loadConfig, parseConfig } from '../../src/config/load';
import { ConfigError } from '../../src/config/schema';
import { namedBindings, startIssues } from '../../src/config/secrets';
import { configIssues, loadIssues } from '../helpers';

const good = { api_origin: 'https://api.example.org', token_url: 'https://auth.example.org/oauth2/token', client_id: 'c', client_secret_from: 'SECRET_A' };
const route = { path: '/code/:topic', upstream: 'a', target: '/v1/{topic}', allowed_origins: ['https://forms.example.org'] };
const AUD = 'a'.repeat(64);

describe('STATUS', () => {
  it('an admin token secret, Cloudflare Access, or both; the team domain normalised, AUD tags lower-cased', () => {
    expect(configIssues({ UPSTREAMS: { a: good }, STATUS: { admin_token_from: 'STATUS_TOKEN' } })).toEqual([]);
    const c = parseConfig({ UPSTREAMS: { a: good }, STATUS: { access: { team_domain: 'MyTeam.cloudflareaccess.com/', aud: AUD.toUpperCase() } } });
    expect(c.status).toEqual({ access: { team_domain: 'https://myteam.cloudflareaccess.com', aud: [AUD] } });
    expect(parseConfig({ UPSTREAMS: { a: good }, STATUS: { access: { team_domain: 'https://t.cloudflareaccess.com', aud: [AUD, 'b'.repeat(64)] } } }).status?.access?.aud).toHaveLength(2);
    expect(parseConfig({ UPSTREAMS: { a: good } }).status).toBeUndefined();
  });

  it('refused, naming the key: neither guard, another certs host, a bad AUD, an unknown key', () => {
    expect(configIssues({ UPSTREAMS: { a: good }, STATUS: {} })).toEqual(['STATUS: set admin_token_from, access, or both (leave STATUS out and /status is off)']);
    expect(configIssues({ UPSTREAMS: { a: good }, STATUS: { access: { team_domain: 'https://evil.example.com', aud: AUD } } })).toEqual([
      'STATUS.access.team_domain: must be your Cloudflare Access team domain, e.g. "https://myteam.cloudflareaccess.com"',
    ]);
    expect(configIssues({ UPSTREAMS: { a: good }, STATUS: { access: { team_domain: 'https://t.cloudflareaccess.com/cdn-cgi/x', aud: AUD } } })).toHaveLength(1);
    expect(configIssues({ UPSTREAMS: { a: good }, STATUS: { access: { team_domain: 't.cloudflareaccess.com', aud: 'forms-api.example.org' } } })[0]).toMatch(/^STATUS\.access\.aud: /);
    expect(configIssues({ UPSTREAMS: { a: good }, STATUS: { admin_token: 'x'.repeat(40) } })[0]).toMatch(/^STATUS: Unrecognized key/);
    expect(configIssues({ UPSTREAMS: { a: good }, STATUS: { admin_token_from: 'not a name' } })[0]).toMatch(/^STATUS\.admin_token_from: /);
  });

  it('the admin token must be set and 32+ characters at start; its value is never in the message', () => {
    const vars = { UPSTREAMS: { a: good }, SECRET_A: 's', STATUS: { admin_token_from: 'STATUS_TOKEN' } };
    expect(loadIssues({ ...vars })).toEqual(['STATUS.admin_token_from: Worker secret "STATUS_TOKEN" is not set']);
    const weak = 'short-admin-token';
    const message = loadIssues({ ...vars, STATUS_TOKEN: weak }).join('\n');
    expect(message).toBe('STATUS.admin_token_from: Worker secret "STATUS_TOKEN" must be 32 to 512 printable characters without spaces (make one with: openssl rand -hex 32)');
    expect(message).not.toContain(weak);
    // A wrong STATUS is STATUS's own problem: the upstream still loads.
    const withWeak = { ...vars, STATUS_TOKEN: weak };
    expect(loadConfig(withWeak).upstreams.a).toBeDefined();
    const withStrong = { ...vars, STATUS_TOKEN: 'f'.repeat(64) };
    expect(loadIssues(withStrong)).toEqual([]);
    expect(loadConfig(withStrong).status?.admin_token_from).toBe('STATUS_TOKEN');
  });
});

describe('a route’s log_fields', () => {
  it('may name its path params, query parameters, form fields and required fields', () => {
    const r = { ...route, query: ['lang'], required_fields: ['occp_text'], form: { fields: { tasks_text: 'record.tasks' } }, log_fields: ['topic', 'lang', 'occp_text', 'tasks_text'] };
    expect(configIssues({ UPSTREAMS: { a: good }, ROUTES: { r } })).toEqual([]);
    expect(parseConfig({ UPSTREAMS: { a: good }, ROUTES: { r: route } }).routes.r!.log_fields).toEqual([]);
  });

  it('refuses a name the route does not take (a typo would log nothing, unnoticed) and a Turnstile token', () => {
    expect(configIssues({ UPSTREAMS: { a: good }, ROUTES: { r: { ...route, log_fields: ['topik'] } } })).toEqual([
      'ROUTES.r.log_fields: "topik" is not a path param, query parameter, form field or required field of this route',
    ]);
    expect(configIssues({ UPSTREAMS: { a: good }, ROUTES: { r: { ...route, required_fields: ['cf-turnstile-response'], log_fields: ['cf-turnstile-response'] } } })).toEqual([
      'ROUTES.r.log_fields: "cf-turnstile-response" is a Turnstile token, never logged',
    ]);
  });
});

describe('the Worker’s own paths', () => {
  it('no route may take /healthz or /status', () => {
    expect(configIssues({ UPSTREAMS: { a: good }, ROUTES: { h: { ...route, path: '/healthz', target: '/v1' } } })).toEqual([
      "ROUTES.h.path: /healthz is the Worker's own (/healthz, /status); choose another path",
    ]);
    expect(configIssues({ UPSTREAMS: { a: good }, ROUTES: { s: { ...route, path: '/status', target: '/v1' } } })[0]).toMatch(/^ROUTES\.s\.path: \/status is the Worker's own/);
  });
});

describe('start checks', () => {
  it('name every missing secret and binding at once, across upstreams', () => {
    const config = parseConfig({
      UPSTREAMS: {
        a: good,
        b: { ...good, client_secret_from: 'SECRET_B', egress: { mode: 'binding', binding: 'EGRESS_B' } },
        c: { ...good, client_id: undefined, client_id_from: 'ID_C', egress: { mode: 'origin', url: 'https://egress.example.org', secret_from: 'EGRESS_C' } },
      },
      STATUS: { admin_token_from: 'STATUS_TOKEN' },
    });
    expect(startIssues(config, {}).map((i) => i.issue)).toEqual([
      'UPSTREAMS.a.client_secret_from: Worker secret "SECRET_A" is not set',
      'UPSTREAMS.b.client_secret_from: Worker secret "SECRET_B" is not set',
      'UPSTREAMS.c.client_id_from: Worker secret "ID_C" is not set',
      'UPSTREAMS.c.client_secret_from: Worker secret "SECRET_A" is not set',
      'UPSTREAMS.c.egress.secret_from: Worker secret "EGRESS_C" is not set',
      'STATUS.admin_token_from: Worker secret "STATUS_TOKEN" is not set',
      'UPSTREAMS.b.egress.binding: no service binding named "EGRESS_B"',
    ]);
    expect(namedBindings(config)).toEqual([{ key: 'UPSTREAMS.b.egress.binding', name: 'EGRESS_B', kind: 'fetcher', part: { kind: 'upstream', name: 'b' } }]);
    // A binding of the wrong kind is as missing as none.
    expect(startIssues(config, { EGRESS_B: 'a string' }).at(-1)?.issue).toBe('UPSTREAMS.b.egress.binding: no service binding named "EGRESS_B"');
    expect(startIssues(config, { EGRESS_B: { fetch: () => new Response() } }).some((i) => i.issue.includes('EGRESS_B'))).toBe(false);
  });
});
