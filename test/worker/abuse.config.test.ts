/**
 * Issue 10: the abuse-protection keys of a route are validated like every other key, with
 * messages naming the key; the binding and the secret they name must exist at start.
 */
import { createExecutionContext, env, waitOnExecutionContext } from 'cloudflare:test';
import { describe, expect, it } from 'vitest';
import { rateLimitDeclarationIssues } from '../../src/config/checks';
import { parseConfig } from '../../src/config/load';
import worker from '../../src/index';
import { SECRETS } from '../fixtures/config';
import { configIssues } from '../helpers';
import { capturedLines } from './log-capture';

const FORMS = 'https://forms.example.org';
const good = { api_origin: 'https://api.example', token_url: 'https://auth.example/token', client_id: 'c', client_secret_from: 'TEST_CLIENT_SECRET' };
const route = (extra: Record<string, unknown> = {}) => ({ path: '/r', upstream: 'a', target: '/y', allowed_origins: [FORMS], ...extra });
const issuesOf = (extra: Record<string, unknown>) => configIssues({ UPSTREAMS: { a: good }, ROUTES: { r: route(extra) } });
const form = { template: {}, fields: { name: 'name', website: 'site' } };

describe('abuse-protection keys that validation refuses, each naming the key', () => {
  it.each([
    ['a rate-limit period a binding cannot have', { rate_limit: { binding: 'FORM_LIMIT', period: 30 } }, "ROUTES.r.rate_limit.period: must be 10 or 60 (the binding's simple.period)"],
    ['a rate limit that is not a binding name', { rate_limit: 'form limit' }, 'ROUTES.r.rate_limit.binding: must be the name of a binding'],
    ['an unknown rate-limit key', { rate_limit: { binding: 'FORM_LIMIT', limit: 5 } }, 'ROUTES.r.rate_limit: Unrecognized key'],
    ['Turnstile without its secret', { turnstile: {} }, 'ROUTES.r.turnstile.secret_from'],
    ['a Turnstile secret written into the config', { turnstile: { secret_from: 'TS', secret: '0x4AAA-inline' } }, 'ROUTES.r.turnstile: Unrecognized key: "secret"'],
    ['a Turnstile host with a scheme', { turnstile: { secret_from: 'TS', hostnames: ['https://forms.example.org'] } }, 'ROUTES.r.turnstile.hostnames.0: must be host names in lower case'],
    ['an empty list of Turnstile hosts', { turnstile: { secret_from: 'TS', hostnames: [] } }, 'ROUTES.r.turnstile.hostnames'],
    ['a Turnstile action a widget cannot have', { turnstile: { secret_from: 'TS', action: 'a'.repeat(33) } }, "ROUTES.r.turnstile.action: must be 1 to 32 letters, digits, _ or - (the widget's data-action)"],
    ['a Turnstile timeout over 10 s', { turnstile: { secret_from: 'TS', timeout_ms: 30_000 } }, 'ROUTES.r.turnstile.timeout_ms'],
    [
      'Turnstile on any origin without its hosts',
      { allowed_origins: ['*'], allow_any_origin: true, turnstile: { secret_from: 'TS' } },
      'ROUTES.r.turnstile.hostnames: with allow_any_origin the hosts the widget runs on cannot be derived: list them',
    ],
    ['the Turnstile field required', { turnstile: { secret_from: 'TS' }, required_fields: ['cf-turnstile-response'] }, 'ROUTES.r.turnstile: cf-turnstile-response carries the Turnstile token'],
    ['the Turnstile field mapped', { turnstile: { secret_from: 'TS' }, form: { fields: { 'cf-turnstile-response': 'token' } } }, 'ROUTES.r.turnstile: cf-turnstile-response carries the Turnstile token'],
    ['a honeypot that is a mapped field', { honeypot: 'website', form }, 'ROUTES.r.honeypot: "website" is a field of the submission (form.fields or required_fields)'],
    ['a honeypot that is a required field', { honeypot: 'email', required_fields: ['email'] }, 'ROUTES.r.honeypot: "email" is a field of the submission'],
    ['a honeypot named like the Turnstile field', { honeypot: 'cf-turnstile-response' }, "ROUTES.r.honeypot: cf-turnstile-response is the Turnstile widget's field"],
    ['a honeypot on a route without a body', { honeypot: 'website', body: 'none' }, 'ROUTES.r.honeypot: a honeypot is a field of a submitted body: this route takes none'],
    ['a honeypot on a GET route', { honeypot: 'website', methods: ['GET'] }, 'ROUTES.r.honeypot: a honeypot is a field of a submitted body'],
    ['a honeypot that is not a field name', { honeypot: 'web site' }, 'ROUTES.r.honeypot: must be a form field name'],
  ])('%s', (_, extra, message) => {
    const found = issuesOf(extra);
    expect(found.some((i) => i.startsWith(message)), found.join('\n')).toBe(true);
  });

  it('accepts the short and the long form, with documented defaults', () => {
    const c = parseConfig({
      UPSTREAMS: { a: good },
      ROUTES: {
        short: route({ path: '/s', rate_limit: 'FORM_LIMIT', turnstile: { secret_from: 'TS' }, honeypot: 'website' }),
        long: route({ path: '/l', rate_limit: { binding: 'FAST', period: 10 }, turnstile: { secret_from: 'TS', hostnames: ['forms.example.org'], action: 'code', timeout_ms: 1000 } }),
      },
    });
    expect(c.routes.short).toMatchObject({ rate_limit: { binding: 'FORM_LIMIT', period: 60 }, turnstile: { secret_from: 'TS', timeout_ms: 3000 }, honeypot: 'website' });
    expect(c.routes.short!.turnstile!.hostnames).toBeUndefined();
    expect(c.routes.long).toMatchObject({ rate_limit: { binding: 'FAST', period: 10 }, turnstile: { hostnames: ['forms.example.org'], action: 'code', timeout_ms: 1000 } });
  });

  it('wrangler.toml’s [[ratelimits]] must declare each binding a route names, with the route’s period', () => {
    const c = parseConfig({ UPSTREAMS: { a: good }, ROUTES: { r: route({ rate_limit: 'FORM_LIMIT' }), s: route({ path: '/s', rate_limit: { binding: 'FAST', period: 10 } }), t: route({ path: '/t', rate_limit: 'NONE' }) } });
    expect(rateLimitDeclarationIssues(c, [{ name: 'FORM_LIMIT', simple: { limit: 5, period: 10 } }, { name: 'FAST', simple: { limit: 5, period: 10 } }])).toEqual([
      'ROUTES.r.rate_limit.period: 60 s, but binding "FORM_LIMIT" counts per 10 s (simple.period)',
      'ROUTES.t.rate_limit: no [[ratelimits]] entry named "NONE"',
    ]);
  });
});

describe('start checks: the binding and the secret a route names must exist', () => {
  async function startWith(r: Record<string, unknown>): Promise<{ status: number; text: string; log: string }> {
    const before = capturedLines.length;
    // No hold for a token: this upstream never issues one, and the test is about the start check.
    const vars = { ...env, UPSTREAMS: { a: { ...good, token_wait_ms: 0 } }, ROUTES: { r: route(r) } };
    const ctx = createExecutionContext();
    const res = await worker.fetch(new Request('https://injector.example/r', { method: 'POST', headers: { Origin: FORMS, 'Content-Type': 'application/json' }, body: '{}' }), vars, ctx);
    await waitOnExecutionContext(ctx);
    return { status: res.status, text: await res.text(), log: capturedLines.slice(before).join('\n') };
  }

  it('a rate limit naming no binding, or a binding that is not a rate limiter, is refused at start, naming the key', async () => {
    for (const binding of ['NO_SUCH_LIMIT', 'EGRESS_TEST', 'TEST_CLIENT_SECRET']) {
      const { status, text, log } = await startWith({ rate_limit: binding });
      expect(status).toBe(500);
      expect(text).not.toContain(binding);
      expect(log).toContain(`ROUTES.r.rate_limit: no rate limiting binding named \\"${binding}\\" (declare it under [[ratelimits]] in wrangler.toml)`);
    }
    // A real one starts (the request then goes its way: this upstream issues no usable token).
    const real = await startWith({ rate_limit: 'RL_THREE_PER_MINUTE' });
    expect(real.status).not.toBe(500);
    expect(real.log).not.toContain('invalid_configuration');
  });

  it('a Turnstile secret that is not set is refused at start with the binding problems, and no secret shows anywhere', async () => {
    const { status, text, log } = await startWith({ rate_limit: 'NOPE', turnstile: { secret_from: 'NOT_SET_ANYWHERE' } });
    expect(status).toBe(500);
    expect(log).toContain('ROUTES.r.rate_limit: no rate limiting binding named \\"NOPE\\"');
    expect(log).toContain('ROUTES.r.turnstile.secret_from: Worker secret \\"NOT_SET_ANYWHERE\\" is not set');
    for (const s of Object.values(SECRETS)) {
      expect(text).not.toContain(s);
      expect(log).not.toContain(s);
    }
  });
});
