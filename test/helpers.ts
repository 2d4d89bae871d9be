/**
 * Test helpers: call the Worker, steer and read the stand-in upstreams, and check that no secret
 * or token ever reaches a response.
 */
import { SELF } from 'cloudflare:test';
import { ORIGIN } from './fixtures/config';
import { assertNothingLeaks } from './leak-check';
import type { ApiBehaviour, Hit, SiteverifyBehaviour, SiteverifyHit, TokenBehaviour } from './standin/upstreams';
import { configIssuesOf, loadConfig, parseConfig } from '../src/config/load';
import { ConfigError, type ConfigVars } from '../src/config/schema';

const CONTROL = 'http://control.standin';

export async function hits(host?: string): Promise<Hit[]> {
  return (await fetch(`${CONTROL}/hits${host === undefined ? '' : `?host=${host}.test`}`)).json();
}

export async function tokenHits(host: string): Promise<Hit[]> {
  return (await hits(host)).filter((h) => /\/(oauth2\/)?token$|\/authorization$/.test(h.path));
}

export async function apiHits(host: string): Promise<Hit[]> {
  return (await hits(host)).filter((h) => !/\/(oauth2\/)?token$|\/authorization$/.test(h.path));
}

export async function issuedTokens(host?: string): Promise<string[]> {
  return (await fetch(`${CONTROL}/tokens${host === undefined ? '' : `?host=${host}.test`}`)).json();
}

export async function setToken(host: string, b: TokenBehaviour): Promise<void> {
  await fetch(`${CONTROL}/token?host=${host}.test`, { method: 'POST', body: JSON.stringify(b) });
}

export async function setApi(host: string, b: ApiBehaviour): Promise<void> {
  await fetch(`${CONTROL}/api?host=${host}.test`, { method: 'POST', body: JSON.stringify(b) });
}

/** Make the stand-in API of `host` accept `token` as one it issued. */
export async function acceptToken(host: string, token: string): Promise<void> {
  await fetch(`${CONTROL}/issue?host=${host}.test`, { method: 'POST', body: token });
}

export async function revoke(host: string): Promise<void> {
  await fetch(`${CONTROL}/revoke?host=${host}.test`, { method: 'POST' });
}

/**
 * Fail the test if any secret, any token ever issued or any Turnstile token appears in this response's headers or
 * body: as is, and every token also JSON-escaped, percent-encoded or base64-encoded (test/leak-check.ts).
 */
export async function assertNoLeak(res: Response, body: string): Promise<void> {
  const headerText = [...res.headers].map(([k, v]) => `${k}: ${v}`).join('\n');
  await assertNothingLeaks(`${headerText}\n${body}`, 'a response');
}

export interface Answer {
  status: number;
  headers: Headers;
  text: string;
  json: () => unknown;
}

/** Call the Worker (from an allowed origin unless told otherwise) and check the answer leaks nothing. */
export async function call(path: string, init: RequestInit & { origin?: string | null } = {}): Promise<Answer> {
  const headers = new Headers(init.headers);
  const origin = init.origin === undefined ? ORIGIN : init.origin;
  if (origin !== null && !headers.has('Origin')) headers.set('Origin', origin);
  if (init.body !== undefined && !headers.has('Content-Type')) headers.set('Content-Type', 'application/json');
  const res = await SELF.fetch(`https://injector.example${path}`, { ...init, headers, redirect: 'manual' });
  const text = await res.text();
  await assertNoLeak(res, text);
  return { status: res.status, headers: res.headers, text, json: () => JSON.parse(text) };
}

export const post = (path: string, body: unknown, init: RequestInit & { origin?: string | null } = {}) =>
  call(path, { method: 'POST', body: JSON.stringify(body), ...init });

/** Every hit (all hosts) recorded from position `from` on, and the position to ask from next time. */
export async function hitsSince(from: number): Promise<{ hits: Hit[]; next: number }> {
  const res = await fetch(`${CONTROL}/hits?from=${from}`);
  return { hits: await res.json(), next: Number(res.headers.get('X-Hits-Total')) };
}

/**
 * The issues the running Worker finds in `env` (its config and the secrets and bindings it names):
 * every broken part's, or the whole config's ([] when every part works).
 */
export function loadIssues(env: object): string[] {
  try {
    return configIssuesOf(loadConfig(env));
  } catch (e) {
    if (e instanceof ConfigError) return e.issues;
    throw e;
  }
}

/** The issues a config is refused with ([] when it is accepted). */
export function configIssues(vars: ConfigVars): string[] {
  try {
    parseConfig(vars);
    return [];
  } catch (e) {
    if (e instanceof ConfigError) return e.issues;
    throw e;
  }
}

/** A fresh Turnstile token the stand-in siteverify answers for as `behaviour` says (default: accepted on forms.example.org). */
export async function turnstileToken(behaviour: SiteverifyBehaviour = {}): Promise<string> {
  const token = `0.tstoken-${crypto.randomUUID()}`;
  await fetch(`${CONTROL}/siteverify-token`, { method: 'POST', body: JSON.stringify({ token, behaviour }) });
  return token;
}

/** Every Turnstile token a test registered: like secrets, none may reach a response or a log. */
export async function turnstileTokens(): Promise<string[]> {
  return (await fetch(`${CONTROL}/siteverify-tokens`)).json();
}

/** The siteverify requests made for `tokens` (all, without). */
export async function siteverifyHits(...tokens: string[]): Promise<SiteverifyHit[]> {
  const all = (await (await fetch(`${CONTROL}/siteverify-hits`)).json()) as SiteverifyHit[];
  return tokens.length === 0 ? all : all.filter((h) => tokens.includes(h.response));
}
