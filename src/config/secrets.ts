/**
 * @module Secrets and bindings: the one typed way to read what the config names in `env` (a Worker
 * secret by its name, a service, rate-limiting or mTLS certificate binding by its name), and the
 * start checks that each is there, of the right kind and strong enough where it guards something
 * (a client-assertion key: a private key of the kind its algorithm needs).
 *
 * The config names secrets and bindings (`client_secret_from = "ABS_SECRET"`), so they cannot be
 * fields of a static `Env` type; every read goes through `secretIn`/`bindingIn` here instead of a
 * cast at the place of use. Values are never logged or put in a message: only keys and names.
 */
import { checkSigningKey, type KeyText } from '../token/client-keys';
import { ConfigError, type Config, type KeyAlg, type UpstreamConfig } from './schema';

/** A Worker secret (or var) by name: its value when it is a non-empty string, else undefined. */
export function secretIn(env: object, name: string): string | undefined {
  const value: unknown = Reflect.get(env, name);
  return typeof value === 'string' && value !== '' ? value : undefined;
}

/** What a Fetcher binding (a service binding, a VPC service or network) offers us. */
export interface FetcherBinding {
  fetch(request: Request, init?: RequestInit): Promise<Response>;
}

/** What a Rate Limiting binding offers us. */
export interface RateLimitBinding {
  limit(options: { key: string }): Promise<{ success: boolean }>;
}

/**
 * The kinds of binding a config can name: what one is called in messages, the wrangler.toml
 * sections that declare it (each entry's `binding`, or `name`), and how it looks at runtime
 * (structural, so this module also loads in Node). A new kind is one entry here and its keys in
 * `namedBindings`.
 */
export const BINDING_KINDS = {
  fetcher: { what: 'service binding', sections: ['services', 'vpc_services', 'vpc_networks'], hint: '', is: isFetcher },
  ratelimit: { what: 'rate limiting binding', sections: ['ratelimits'], hint: ' (declare it under [[ratelimits]] in wrangler.toml)', is: isRateLimiter },
  /** A Cloudflare mTLS certificate binding: a Fetcher that presents the client certificate. */
  mtls: { what: 'mTLS certificate binding', sections: ['mtls_certificates'], hint: ' (declare it under mtls_certificates in wrangler.toml)', is: isFetcher },
} satisfies Record<string, { what: string; sections: string[]; hint: string; is: (v: unknown) => boolean }>;

export type BindingKind = keyof typeof BINDING_KINDS;

interface BindingOfKind {
  fetcher: FetcherBinding;
  ratelimit: RateLimitBinding;
  mtls: FetcherBinding;
}

const GUARDS: { [K in BindingKind]: (v: unknown) => v is BindingOfKind[K] } = { fetcher: isFetcher, ratelimit: isRateLimiter, mtls: isFetcher };

/** A binding by name, when it is there and of `kind`. */
export function bindingIn<K extends BindingKind>(env: object, name: string, kind: K): BindingOfKind[K] | undefined {
  const value: unknown = Reflect.get(env, name);
  const is: (v: unknown) => v is BindingOfKind[K] = GUARDS[kind];
  return is(value) ? value : undefined;
}

/** A service binding (anything with `fetch`). */
function isFetcher(v: unknown): v is FetcherBinding {
  return typeof v === 'object' && v !== null && typeof Reflect.get(v, 'fetch') === 'function';
}

/**
 * A Rate Limiting binding. It has `limit`; a service binding seems to have every method (RPC stubs
 * answer any name), so one with `fetch` is not taken for a limiter.
 */
function isRateLimiter(v: unknown): v is RateLimitBinding {
  return typeof v === 'object' && v !== null && typeof Reflect.get(v, 'limit') === 'function' && typeof Reflect.get(v, 'fetch') !== 'function';
}

/** A Durable Object namespace binding (structural). */
function isNamespace(v: unknown): boolean {
  return typeof v === 'object' && v !== null && typeof Reflect.get(v, 'idFromName') === 'function' && typeof Reflect.get(v, 'get') === 'function';
}

/** A binding the config names: the key that names it, its name, and its kind. */
export interface NamedBinding {
  key: string;
  name: string;
  kind: BindingKind;
  /** The part of the config that needs it. */
  part: ConfigPart;
}

/** Every binding the config names. */
export function namedBindings(config: Pick<Config, 'upstreams' | 'routes'>): NamedBinding[] {
  const out: NamedBinding[] = [];
  for (const [name, u] of Object.entries(config.upstreams)) {
    if (u.egress.mode === 'binding') out.push({ key: `UPSTREAMS.${name}.egress.binding`, name: u.egress.binding, kind: 'fetcher', part: { kind: 'upstream', name } });
    if (u.mtls?.via === 'binding') out.push({ key: `UPSTREAMS.${name}.mtls.binding`, name: u.mtls.binding, kind: 'mtls', part: { kind: 'upstream', name } });
  }
  for (const [name, r] of Object.entries(config.routes)) {
    if (r.rate_limit !== undefined) out.push({ key: `ROUTES.${name}.rate_limit`, name: r.rate_limit.binding, kind: 'ratelimit', part: { kind: 'route', name } });
  }
  return out;
}

/** A part of a config that can fail on its own. */
export type ConfigPart = { kind: 'upstream'; name: string } | { kind: 'route'; name: string } | { kind: 'status' };

/** One start issue and the part it takes down. */
export interface StartIssue {
  part: ConfigPart;
  issue: string;
}

/**
 * The start checks of a parsed config against the Worker's `env`: every secret it names is set
 * (and strong enough where it guards something), every binding it names is there and of the right
 * kind. All of them, so one deploy (or one `npm run check-config`) shows every problem. `bound`
 * says whether a value is a binding of a kind; `npm run check-config` passes one that reads what
 * wrangler.toml declares.
 */
export function startIssues(
  config: Pick<Config, 'upstreams' | 'routes' | 'status'>,
  env: object,
  bound: (kind: BindingKind, value: unknown) => boolean = (kind, v) => BINDING_KINDS[kind].is(v),
  /** The secrets are known by name only (check-config --secrets): keys cannot be read, only found. */
  secretsByName = false,
): StartIssue[] {
  const issues: StartIssue[] = [];
  const collect = (part: ConfigPart, check: () => unknown) => {
    try {
      check();
    } catch (e) {
      if (!(e instanceof ConfigError)) throw e;
      for (const issue of e.issues) issues.push({ part, issue });
    }
  };
  for (const [name, u] of Object.entries(config.upstreams)) {
    const part: ConfigPart = { kind: 'upstream', name };
    collect(part, () => readCredentials(name, u, env));
    if (u.pacing !== undefined && !isNamespace(Reflect.get(env, 'PACER'))) {
      issues.push({ part, issue: `UPSTREAMS.${name}.pacing: needs the PACER Durable Object binding (class_name = "Pacer" in wrangler.toml)` });
    }
    for (const issue of clientAuthStartIssues(name, u, env, !secretsByName)) issues.push({ part, issue });
    if (u.egress.mode === 'origin') {
      const from = u.egress.secret_from;
      collect(part, () => readEgressSecret(name, from, env));
    }
  }
  for (const [name, r] of Object.entries(config.routes)) {
    const from = r.turnstile?.secret_from;
    if (from !== undefined && secretIn(env, from) === undefined) issues.push({ part: { kind: 'route', name }, issue: `ROUTES.${name}.turnstile.secret_from: Worker secret "${from}" is not set` });
  }
  if (config.status?.admin_token_from !== undefined) collect({ kind: 'status' }, () => readAdminToken(config, env));
  for (const b of namedBindings(config)) {
    if (!bound(b.kind, Reflect.get(env, b.name))) issues.push({ part: b.part, issue: `${b.key}: no ${BINDING_KINDS[b.kind].what} named "${b.name}"${BINDING_KINDS[b.kind].hint}` });
  }
  return issues;
}

/**
 * The admin bearer token of /status, from the Worker secret `STATUS.admin_token_from`; throws
 * `ConfigError` naming the key when it is not set or too short to resist guessing.
 */
export function readAdminToken(config: Pick<Config, 'status'>, env: object): string {
  const from = config.status?.admin_token_from;
  if (from === undefined) throw new ConfigError(['STATUS.admin_token_from: not configured']);
  const value = secretIn(env, from);
  if (value === undefined) throw new ConfigError([`STATUS.admin_token_from: Worker secret "${from}" is not set`]);
  if (value.length < 32 || value.length > 512 || /[^\x21-\x7e]/.test(value)) {
    throw new ConfigError([`STATUS.admin_token_from: Worker secret "${from}" must be 32 to 512 printable characters without spaces (make one with: openssl rand -hex 32)`]);
  }
  return value;
}

/**
 * The shared secret an egress origin checks, from the Worker secret `from`; throws `ConfigError`
 * naming the key when it is not set or too weak (it is all that keeps the egress from being an
 * open relay, and nginx's `map` compares it case-insensitively: 32+ characters, hex is best).
 */
export function readEgressSecret(name: string, from: string, env: object): string {
  const value = secretIn(env, from);
  if (value === undefined) throw new ConfigError([`UPSTREAMS.${name}.egress.secret_from: Worker secret "${from}" is not set`]);
  // No `~` (nginx reads a map key starting with it as a regex) and no `.` (any character in one);
  // at most 100, so the reference egress's map hash builds with nginx's default bucket size.
  if (!/^[A-Za-z0-9_-]{32,100}$/.test(value)) {
    throw new ConfigError([
      `UPSTREAMS.${name}.egress.secret_from: Worker secret "${from}" must be 32 to 100 characters of A-Z a-z 0-9 _ - (make one with: openssl rand -hex 32)`,
    ]);
  }
  return value;
}

/** The credentials of one upstream, read from Worker secrets. Never logged, never returned. */
export interface Credentials {
  clientId?: string;
  clientSecret?: string;
  username?: string;
  password?: string;
}

/** Read an upstream's credentials from the Worker's secrets; throws `ConfigError` naming a missing one. */
export function readCredentials(name: string, u: UpstreamConfig, env: object): Credentials {
  const missing: string[] = [];
  const secret = (key: string, from: string | undefined): string | undefined => {
    if (from === undefined) return undefined;
    const value = secretIn(env, from);
    if (value === undefined) missing.push(`UPSTREAMS.${name}.${key}: Worker secret "${from}" is not set`);
    return value;
  };
  const creds: Credentials = {
    clientId: u.client_id ?? secret('client_id_from', u.client_id_from),
    clientSecret: secret('client_secret_from', u.client_secret_from),
    username: u.username ?? secret('username_from', u.username_from),
    password: secret('password_from', u.password_from),
  };
  if (missing.length > 0) throw new ConfigError(missing);
  return creds;
}

/** The credential values, for redaction of any outside text. */
export function sensitiveValues(c: Credentials): string[] {
  return [c.clientSecret, c.password, c.clientId, c.username].filter((v): v is string => v !== undefined);
}

// =============================================================================================
// Client authentication (issue 16): the private keys of `private_key_jwt` and the client secret
// of `client_secret_jwt`, read and checked at start (docs/client-authentication.md).
// =============================================================================================

/** RFC 7518 §3.2: an HS256 key (the client secret, for client_secret_jwt) has at least 256 bits. */
const MIN_HS256_SECRET_BYTES = 32;

/** A `private_key_jwt` key read from its Worker secret and checked against its algorithm. */
export interface AssertionKey {
  from: string;
  alg: KeyAlg;
  kid?: string;
  key: KeyText;
}

/**
 * The private keys of a `private_key_jwt` upstream, read from their Worker secrets and checked
 * (present, a private key, of the kind `alg` needs). Throws `ConfigError` naming each bad key and
 * what is wrong with it, never its content. `checkContent` false: present is enough (the secrets
 * are known by name only).
 */
export function readAssertionKeys(name: string, u: UpstreamConfig, env: object, checkContent = true): AssertionKey[] {
  const issues: string[] = [];
  const keys: AssertionKey[] = [];
  for (const [i, k] of (u.client_assertion?.keys ?? []).entries()) {
    const where = `UPSTREAMS.${name}.client_assertion.keys.${i}.from: Worker secret "${k.from}"`;
    const value = secretIn(env, k.from);
    if (value === undefined || value.trim() === '') {
      issues.push(`${where} is not set`);
      continue;
    }
    // `npm run check-config -- --secrets A,B` knows secrets by name only: nothing to read.
    if (!checkContent) continue;
    const checked = checkSigningKey(value, k.alg);
    if (!checked.ok) {
      issues.push(`${where} ${checked.why}`);
      continue;
    }
    const kid = k.kid ?? checked.kid;
    keys.push({ from: k.from, alg: k.alg, key: checked.key, ...(kid === undefined ? {} : { kid }) });
  }
  if (issues.length > 0) throw new ConfigError(issues);
  return keys;
}

/** The start checks of an upstream's client authentication: its keys, and a client secret strong enough to sign with. */
function clientAuthStartIssues(name: string, u: UpstreamConfig, env: object, checkContent: boolean): string[] {
  const issues: string[] = [];
  try {
    readAssertionKeys(name, u, env, checkContent);
  } catch (e) {
    if (!(e instanceof ConfigError)) throw e;
    issues.push(...e.issues);
  }
  const secret = u.client_secret_from === undefined ? undefined : secretIn(env, u.client_secret_from);
  if (u.client_auth === 'client_secret_jwt' && secret !== undefined && new TextEncoder().encode(secret).length < MIN_HS256_SECRET_BYTES) {
    issues.push(
      `UPSTREAMS.${name}.client_secret_from: Worker secret "${u.client_secret_from}" is too short to sign client_secret_jwt assertions (HS256 needs at least ${MIN_HS256_SECRET_BYTES} bytes, RFC 7518 §3.2)`,
    );
  }
  return issues;
}
