/**
 * @module Config schema: what each key of UPSTREAMS, ROUTES and STATUS may be, with its default and
 * the message that names it when it is wrong, and the types the rest of the Worker reads.
 *
 * Upstreams (credential sets) and routes are declared as TOML tables under `[vars]` in
 * wrangler.toml, so `[env.NAME.vars]` can override them. Secrets are never written there: a key
 * ending in `_from` names the Worker secret (`wrangler secret put NAME`) that holds the value.
 * Checks that span parts (a route's upstream, two routes that collide) are in load.ts; secrets and
 * bindings in secrets.ts. Nothing here reads `env`.
 */
// A namespace import lets the bundler drop zod's locales (~370 KB) that `{ z }` drags in.
import * as z from 'zod';
import { isTimeZone } from '../pacing/day';
import { CONNECTION_HEADERS, EGRESS_HEADERS, FORWARDED_REQUEST_HEADERS, WORKER_SET_HEADERS } from '../headers';
/** A Worker secret's name, as `wrangler secret put` accepts it. */
const secretName = z.string().regex(/^[A-Za-z_][A-Za-z0-9_]*$/, 'must be the name of a Worker secret (letters, digits, _)');

const httpUrl = z.url({ protocol: /^https?$/, error: 'must be an absolute http(s) URL' });

/** Loopback hosts, where plain http is allowed (local runs: the demo, tests). */
function isLoopback(hostname: string): boolean {
  return hostname === 'localhost' || hostname === '[::1]' || /^127(\.\d{1,3}){3}$/.test(hostname);
}

/**
 * A URL our credentials or tokens are sent to: https (http only on loopback, for local runs) and
 * no userinfo (a `user:pass@` would put a credential in the config and the logs).
 */
const credentialUrl = httpUrl.superRefine((s, ctx) => {
  let url: URL;
  try {
    url = new URL(s);
  } catch {
    return; // already refused as not a URL
  }
  if (url.username !== '' || url.password !== '') ctx.addIssue({ code: 'custom', message: 'must not contain user:password@ (use the *_from secret keys)' });
  if (url.protocol === 'http:' && !isLoopback(url.hostname)) ctx.addIssue({ code: 'custom', message: 'must be https (http only for localhost / 127.0.0.1)' });
});

/** A space-delimited scope list with at least one scope in it. */
const scopeList = z.string().refine((s) => s.trim() !== '', 'must name at least one scope (leave the key out for none)');

/** Form parameters we set ourselves; `extra_params` may not overwrite them. */
const RESERVED_PARAMS = ['grant_type', 'scope', 'client_id', 'client_secret', 'client_assertion', 'client_assertion_type'];

const budgetSchema = z.strictObject({
  /** Most token requests in any window. */
  max_requests: z.int().min(1).default(10),
  /** Window length in seconds. */
  window_seconds: z.int().min(1).default(60),
});

/**
 * The public address an egress leaves from, as the upstream sees it. Optional and only recorded:
 * it is part of the credential set, so changing it (the egress moved) means a new token fetched
 * through the new path rather than the old one tried from an address it is not bound to.
 */
const egressAddress = z
  .string()
  .regex(/^[0-9A-Za-z.:[\]-]{1,100}$/, 'must be an IP address or host name')
  .optional();

/** An egress origin: https (http only on loopback), no userinfo, nothing after the host and port. */
const egressOrigin = credentialUrl.refine((s) => {
  try {
    const url = new URL(s);
    return url.pathname === '/' && url.search === '' && url.hash === '' && !s.endsWith('?') && !s.endsWith('#');
  } catch {
    return true; // already refused as not a URL
  }
}, 'must be an origin only, e.g. "https://egress.example.org" (no path, query or fragment)');

const egressSchema = z.discriminatedUnion('mode', [
  /** The Worker's own `fetch`: leaves from many Cloudflare addresses. */
  z.strictObject({ mode: z.literal('direct') }),
  /** A Fetcher binding: a service binding to a Worker, a Workers VPC Service or VPC Network. */
  z.strictObject({ mode: z.literal('binding'), binding: secretName, address: egressAddress }),
  /** An egress origin (a reverse proxy on a fixed-IP host) that checks a shared secret. */
  z.strictObject({ mode: z.literal('origin'), url: egressOrigin, secret_from: secretName, address: egressAddress }),
]);

/** Headers the Worker sets or passes on itself: a token there would replace what they carry. */
const WORKER_HEADERS: readonly string[] = [...WORKER_SET_HEADERS, ...FORWARDED_REQUEST_HEADERS].map((h) => h.toLowerCase());

/**
 * Why `name` cannot carry the token, or undefined when it can: the runtime or a proxy would set or
 * drop it (the token silently never arrives), the Worker fills it itself, or Cloudflare or the
 * egress owns it.
 */
function unInjectableHeader(name: string): string | undefined {
  const h = name.toLowerCase();
  if (CONNECTION_HEADERS.includes(h)) return 'belongs to the connection (the runtime or a proxy sets or drops it)';
  if (WORKER_HEADERS.includes(h)) return 'is set or passed on by the Worker itself';
  if (h.startsWith('cf-')) return "is Cloudflare's own (CF-* headers are set or dropped by Cloudflare)";
  if (EGRESS_HEADERS.includes(h)) return "is the egress origin's own header";
  return undefined;
}

/**
 * An upstream's own rate limits, as its documentation states them (ABS public tier: 1 per second,
 * 1,000 per day, the day as API Gateway counts it: from 00:00 UTC). Calls are paced to them by the
 * Pacer Durable Object of the credential set; see docs/pacing.md for reading them off an API's docs.
 */
const pacingSchema = z.strictObject({
  /** Calls per second the API accepts (0.5: one every two seconds). */
  requests_per_second: z.number().positive().max(1000),
  /** Calls per API day; leave out for none. */
  requests_per_day: z.int().min(1).optional(),
  /** Where the API's day starts: a local time in an IANA time zone (API Gateway: 00:00 UTC). */
  day: z
    .strictObject({
      time_zone: z.string().refine(isTimeZone, 'must be an IANA time zone such as "UTC" or "Australia/Sydney"').default('UTC'),
      starts_at: z
        .string()
        .regex(/^([01]\d|2[0-3]):[0-5]\d$/, 'must be a time of day as HH:MM (24-hour)')
        .default('00:00'),
    })
    .default({ time_zone: 'UTC', starts_at: '00:00' }),
  /** Longest a caller is held for a free slot; beyond it: 503 with Retry-After. */
  max_wait_ms: z.int().min(0).max(60_000).default(2_000),
  /** Added to the interval between calls, so network jitter never makes two arrive too close. */
  margin_ms: z.int().min(0).max(10_000).default(100),
});

export type PacingConfig = z.infer<typeof pacingSchema>;

// =============================================================================================
// Client authentication beyond a shared secret (issue 16): signed client assertions
// (`private_key_jwt`, `client_secret_jwt`) and mutual TLS (`tls_client_auth`,
// `self_signed_tls_client_auth`, certificate-bound tokens). Their keys and the checks between
// them, in one block (docs/client-authentication.md); their secrets are read in secrets.ts.
// =============================================================================================

/** RFC 6749 §2.3.1, RFC 7523 / OpenID Connect Core §9, RFC 8705 §2. */
export const CLIENT_AUTH_METHODS = ['client_secret_basic', 'client_secret_post', 'private_key_jwt', 'client_secret_jwt', 'tls_client_auth', 'self_signed_tls_client_auth', 'none'] as const;
export type ClientAuthMethod = (typeof CLIENT_AUTH_METHODS)[number];
/** The methods that need the client secret. */
const SECRET_METHODS: readonly ClientAuthMethod[] = ['client_secret_basic', 'client_secret_post', 'client_secret_jwt'];
/** The methods that send a client assertion. */
export const ASSERTION_METHODS: readonly ClientAuthMethod[] = ['private_key_jwt', 'client_secret_jwt'];
/** The methods that authenticate with the client certificate itself. */
const MTLS_METHODS: readonly ClientAuthMethod[] = ['tls_client_auth', 'self_signed_tls_client_auth'];

/** The signing algorithms a `private_key_jwt` key may use (RFC 7518, RFC 8037). */
export const KEY_ALGS = ['RS256', 'PS256', 'ES256', 'EdDSA'] as const;
export type KeyAlg = (typeof KEY_ALGS)[number];

/** One private key that signs `private_key_jwt` assertions. */
const assertionKeySchema = z.strictObject({
  /** The Worker secret holding the private key: PKCS#8 PEM or a JWK. */
  from: secretName,
  alg: z.enum(KEY_ALGS, { error: `must be one of ${KEY_ALGS.join(', ')}` }),
  /** The key's id as registered with the server, sent as the assertion's `kid` header. */
  kid: z.string().regex(/^[\x21-\x7e]{1,200}$/, 'must be 1 to 200 printable characters').optional(),
});

const clientAssertionSchema = z.strictObject({
  /** private_key_jwt: the current key, then (while rotating) the previous one. */
  keys: z.array(assertionKeySchema).min(1).max(2, 'at most two keys: the current one and, while rotating, the previous one').optional(),
  /** The assertion's `aud`; default: token_url. */
  audience: z.string().min(1).max(2000).optional(),
});

/** RFC 8705 §3.1 `x5t#S256`: the base64url SHA-256 of the certificate's DER. */
const certificateThumbprint = z.string().regex(/^[A-Za-z0-9_-]{43}$/, "must be the certificate's SHA-256 thumbprint in base64url, as in cnf.x5t#S256 (docs/client-authentication.md)");

/** Who presents the client certificate. */
const mtlsSchema = z.discriminatedUnion('via', [
  /** A Cloudflare mTLS certificate binding (`mtls_certificates` in wrangler.toml). */
  z.strictObject({ via: z.literal('binding'), binding: secretName, certificate: certificateThumbprint }),
  /** The egress origin, which holds the certificate (nginx: proxy_ssl_certificate). */
  z.strictObject({ via: z.literal('egress'), certificate: certificateThumbprint }),
]);

/** The client-authentication keys of an upstream (spread into `upstreamSchema`). */
const clientAuthKeys = {
  /** RFC 6749 §2.3.1 client authentication, and the assertion and mTLS methods above. */
  client_auth: z.enum(CLIENT_AUTH_METHODS).default('client_secret_basic'),
  /** How client assertions are made: keys (private_key_jwt) and audience. */
  client_assertion: clientAssertionSchema.optional(),
  /** Mutual TLS: who presents the client certificate, and its thumbprint. */
  mtls: mtlsSchema.optional(),
  /** The API calls carry tokens bound to the certificate: send them through the mTLS path too. */
  certificate_bound_tokens: z.boolean().default(false),
};

/** What `clientAuthIssues` reads of an upstream. */
interface ClientAuthSettings {
  client_auth: ClientAuthMethod;
  client_assertion?: z.infer<typeof clientAssertionSchema> | undefined;
  mtls?: z.infer<typeof mtlsSchema> | undefined;
  certificate_bound_tokens: boolean;
  client_id?: string | undefined;
  client_id_from?: string | undefined;
  client_secret_from?: string | undefined;
  token_method: 'POST' | 'GET';
  egress: { mode: 'direct' | 'binding' | 'origin' };
}

/** Client-authentication settings that cannot work, each reported on its key. */
function clientAuthIssues(u: ClientAuthSettings, issue: (path: string, message: string) => void): void {
  if (u.client_auth !== 'none') {
    if (u.client_id === undefined && u.client_id_from === undefined) issue('client_id', `${u.client_auth} needs client_id or client_id_from`);
    if (SECRET_METHODS.includes(u.client_auth) && u.client_secret_from === undefined) issue('client_secret_from', `${u.client_auth} needs the name of the Worker secret holding the client secret`);
  }
  const a = u.client_assertion;
  if (u.client_auth === 'private_key_jwt' && a?.keys === undefined) {
    issue('client_assertion', 'private_key_jwt needs client_assertion = { keys = [{ from = "<Worker secret with the private key>", alg = "ES256" }] }');
  }
  if (a !== undefined && !ASSERTION_METHODS.includes(u.client_auth)) {
    issue('client_assertion', `${u.client_auth} sends no client assertion; set client_auth = "private_key_jwt" or "client_secret_jwt", or leave client_assertion out`);
  } else if (a?.keys !== undefined && u.client_auth === 'client_secret_jwt') {
    issue('client_assertion', 'client_secret_jwt signs with the client secret (HS256): keys are for private_key_jwt');
  }
  const keys = a?.keys ?? [];
  if (keys.length === 2 && keys[0]!.from === keys[1]!.from) issue('client_assertion', 'the two keys are the same Worker secret: the second is the previous key of a rotation');
  if (keys.length === 2 && keys[0]!.kid !== undefined && keys[0]!.kid === keys[1]!.kid) issue('client_assertion', 'the two keys have the same kid: the server could not tell them apart');
  if (ASSERTION_METHODS.includes(u.client_auth) && u.token_method === 'GET') {
    issue('token_method', 'GET would put the client assertion in the URL; use POST');
  }
  const m = u.mtls;
  if (MTLS_METHODS.includes(u.client_auth) && m === undefined) {
    issue(
      'mtls',
      `${u.client_auth} presents a client certificate: set mtls = { via = "binding", binding = "<mtls_certificates binding>", certificate = "<x5t#S256>" }, ` +
        'or mtls = { via = "egress", certificate = "<x5t#S256>" } with an egress origin that holds the certificate (docs/client-authentication.md)',
    );
  }
  if (u.certificate_bound_tokens && m === undefined) issue('certificate_bound_tokens', 'certificate-bound tokens need the certificate: set mtls');
  if (m?.via === 'binding' && u.egress.mode !== 'direct') {
    issue('mtls', `the mTLS binding sends requests itself, so they would not leave through the ${u.egress.mode} egress: with an egress, use mtls = { via = "egress", ... } and have the egress hold the certificate`);
  }
  if (m?.via === 'egress' && u.egress.mode !== 'origin') {
    issue('mtls', 'via = "egress" needs egress = { mode = "origin", ... }: only an egress origin can hold the certificate (nginx: proxy_ssl_certificate)');
  }
}

// ============================ end of the client-authentication block =========================

export const upstreamSchema = z
  .strictObject({
    /** Base URL of the API; route targets are appended to its path. */
    api_origin: credentialUrl,
    /** Token endpoint. */
    token_url: credentialUrl,
    token_method: z.enum(['POST', 'GET']).default('POST'),
    /** Client authentication: `client_auth` and its keys, in the client-authentication block above. */
    ...clientAuthKeys,
    client_id: z.string().min(1).optional(),
    client_id_from: secretName.optional(),
    client_secret_from: secretName.optional(),
    /** `client_credentials`, or `password`: a username/password form login (seed 003). */
    grant: z.enum(['client_credentials', 'password']).default('client_credentials'),
    /** Send `grant_type=<grant>` with the token request (a plain form login usually wants none). */
    send_grant_type: z.boolean().default(true),
    username: z.string().min(1).optional(),
    username_from: secretName.optional(),
    password_from: secretName.optional(),
    username_field: z.string().min(1).default('username'),
    password_field: z.string().min(1).default('password'),
    /** Default scope (space-delimited); a route may ask for another. Each scope set is its own token. */
    scope: scopeList.optional(),
    /** Extra token-request form params (audience, resource). */
    extra_params: z.record(z.string(), z.string()).default({}),
    /** `json`: a JSON object; `text`: the whole body is the token (a bare JWT). */
    token_response: z.enum(['json', 'text']).default('json'),
    token_field: z.string().min(1).default('access_token'),
    expires_in_field: z.string().min(1).default('expires_in'),
    /** Lifetime when neither the answer nor the JWT's `exp` says. */
    default_lifetime_seconds: z.int().min(1).default(3600),
    /** `fixed`: from issue; `sliding`: from the most recent request that used the token (seed 002). */
    expiry: z.enum(['fixed', 'sliding']).default('fixed'),
    inject_header: z
      .string()
      .regex(/^[!#$%&'*+.^_`|~0-9A-Za-z-]+$/, 'must be an HTTP header name')
      .superRefine((h, ctx) => {
        const why = unInjectableHeader(h);
        if (why !== undefined) ctx.addIssue({ code: 'custom', message: `${h} ${why}; name the header the API reads the token from (Authorization, X-Api-Key, …)` });
      })
      .default('Authorization'),
    inject_format: z
      .string()
      // A header value: CR, LF or another control character would make every call throw (after a token was spent).
      .regex(/^[\t\x20-\x7e]*$/, 'must be printable ASCII (a header value: no CR, LF or other control characters)')
      .refine((f) => f.split('{token}').length === 2, 'must contain {token} exactly once')
      .default('Bearer {token}'),
    /** API statuses that mean "this token was rejected": invalidate and retry once. */
    token_rejected_statuses: z.array(z.int().min(400).max(599)).min(1).default([401]),
    /** Refresh this long before expiry (capped at 1/20 of a token's lifetime). */
    refresh_margin_seconds: z.int().min(0).default(60),
    /** A hard limit on token requests. Unset: a guard against storms (10 per minute) that never stops the one-per-lifetime refresh. */
    token_budget: budgetSchema.optional(),
    /** Token-endpoint statuses that mean "too many token requests": stop asking for a while. */
    token_throttled_statuses: z.array(z.int().min(400).max(599)).default([429, 403]),
    /** Whole time a refresh (all attempts) may take. */
    token_timeout_ms: z.int().min(100).max(60_000).default(10_000),
    /** Token requests per refresh when the endpoint fails transiently. */
    max_attempts: z.int().min(1).max(5).default(3),
    /** Cool-down after a 429/403 from the token endpoint that names no Retry-After. */
    cooldown_seconds: z.int().min(1).default(300),
    /** Time an API call may take before the caller gets 504. */
    api_timeout_ms: z.int().min(100).max(300_000).default(30_000),
    /** How all of this upstream's traffic (token requests and API calls) leaves the Worker. */
    egress: egressSchema.default({ mode: 'direct' }),
    /** Tokens work only from the address that obtained them (seed 002): needs a non-direct egress. */
    ip_bound: z.boolean().default(false),
    /** Create this upstream's TokenStore near the token endpoint (Durable Object location hint). */
    location_hint: z.enum(['wnam', 'enam', 'sam', 'weur', 'eeur', 'apac', 'oc', 'afr', 'me']).optional(),
    /** The API's rate limits: calls are paced to them (one Pacer per credential set). Unset: no pacing. */
    pacing: pacingSchema.optional(),
    /**
     * Longest a caller is held while no token may be asked for yet (a spent budget at rollover, a
     * short cool-down) before it gets 503 + Retry-After; it is served with the new token instead.
     */
    token_wait_ms: z.int().min(0).max(60_000).default(15_000),
  })
  .superRefine((u, ctx) => {
    const issue = (path: string, message: string) => ctx.addIssue({ code: 'custom', path: [path], message });
    if (u.client_id !== undefined && u.client_id_from !== undefined) issue('client_id', 'set client_id or client_id_from, not both');
    clientAuthIssues(u, issue);
    if (u.grant === 'password') {
      if (u.username !== undefined && u.username_from !== undefined) issue('username', 'set username or username_from, not both');
      if (u.username === undefined && u.username_from === undefined) issue('username', 'the password grant needs username or username_from');
      if (u.password_from === undefined) issue('password_from', 'the password grant needs the name of the Worker secret holding the password');
    }
    if (u.token_method === 'GET' && (u.client_auth === 'client_secret_post' || u.grant === 'password')) {
      issue('token_method', 'GET would put a credential in the URL; use POST with client_secret_post or the password grant');
    }
    if (u.ip_bound && u.egress.mode === 'direct') {
      issue(
        'ip_bound',
        'tokens bound to the address that obtained them need all of this upstream\'s traffic to leave through one fixed egress: ' +
          'set egress = { mode = "origin", url = "https://<your egress host>", secret_from = "<Worker secret>" } ' +
          'or egress = { mode = "binding", binding = "<Fetcher binding>" } (docs/egress.md)',
      );
    }
    if (u.egress.mode === 'origin') {
      // The egress forwards over https only, and owns these headers.
      for (const key of ['api_origin', 'token_url'] as const) {
        if (!u[key].startsWith('https:')) issue(key, 'must be https: an egress origin forwards over https only');
        // The reference egress lists hosts on port 443; another port would be refused as "not listed".
        else if (!URL.canParse(u[key]) || !['', '443'].includes(new URL(u[key]).port)) issue(key, 'must use port 443: an egress origin forwards to https on 443 only');
      }
    }
    for (const key of Object.keys(u.extra_params)) {
      if (RESERVED_PARAMS.includes(key) || key === u.username_field || key === u.password_field) {
        ctx.addIssue({ code: 'custom', path: ['extra_params', key], message: `${key} is set by the grant itself` });
      }
    }
  });

export type UpstreamConfig = z.infer<typeof upstreamSchema>;

/** A route path: `/segment/:param/...`, no wildcards, no dot segments. */
export const routePath = z
  .string()
  .regex(/^(\/(:[A-Za-z_][A-Za-z0-9_]*|[A-Za-z0-9_.~-]+))+$|^\/$/, 'must look like /a/:param/b')
  .refine((p) => !p.split('/').some((s) => s === '.' || s === '..'), 'must not contain . or .. segments');

export const httpMethod = z.enum(['GET', 'POST', 'PUT', 'PATCH', 'DELETE']);

/** One field of a form post and where it lands in the JSON sent to the API. */
const formFieldSchema = z.union([
  z.string().min(1),
  z.strictObject({
    path: z.string().min(1),
    type: z.enum(['string', 'integer', 'number', 'boolean']).default('string'),
    /** A list (checkboxes, multi-selects): every value given, as a JSON array. */
    list: z.boolean().default(false),
  }),
]);

/** A URL the Worker sends browsers to: absolute http(s), no `user:pass@`. */
const pageUrl = httpUrl.refine((u) => {
  try {
    const url = new URL(u);
    return url.username === '' && url.password === '';
  } catch {
    return true; // already refused as not a URL
  }
}, 'must not contain user:password@ (userinfo)');

/** Body media types the Worker parses itself; a route cannot list them as opaque. */
export const PARSED_TYPES = ['application/json', 'application/x-www-form-urlencoded', 'multipart/form-data'];

/** One query parameter a route forwards. */
const queryParamSchema = z.strictObject({
  /** Regular expression the whole value must match. */
  pattern: z.string().min(1).optional(),
  /** Longest value, in characters. */
  max_length: z.int().min(1).max(2000).default(256),
  /** Refuse the request without it. */
  required: z.boolean().default(false),
  /** May be given more than once (`?tag=a&tag=b`), all forwarded. */
  list: z.boolean().default(false),
});

const paramName = z.string().regex(/^[A-Za-z0-9_.~-]{1,100}$/, 'query parameter names: letters, digits, _ . ~ -');

/** The form field the Turnstile widget adds to its form, and the header `fetch` clients send the token in. */
export const TURNSTILE_FIELD = 'cf-turnstile-response';
export const TURNSTILE_HEADER = 'CF-Turnstile-Response';

/**
 * A route's per-client rate limit: a Rate Limiting binding (`[[ratelimits]]` in wrangler.toml) by
 * name, or with the binding's period. The binding only answers yes or no, so `period` is what
 * Retry-After says; without it 60 s, the longest period a binding can have, so it is never too short.
 */
const rateLimitSchema = z.preprocess(
  (v) => (typeof v === 'string' ? { binding: v } : v),
  z.strictObject({
    binding: z.string().regex(/^[A-Za-z_][A-Za-z0-9_]*$/, 'must be the name of a binding (letters, digits, _)'),
    /** The binding's `simple.period`, in seconds. */
    period: z.union([z.literal(10), z.literal(60)], { error: "must be 10 or 60 (the binding's simple.period)" }).default(60),
  }),
);

/** A host name as siteverify reports it: lower-case, no scheme, no port. */
const hostName = z.string().regex(/^(?=.{1,253}$)[a-z0-9]([a-z0-9-]*[a-z0-9])?(\.[a-z0-9]([a-z0-9-]*[a-z0-9])?)*$/, 'must be host names in lower case (forms.example.org), no scheme or port');

/** Cloudflare Turnstile on a route: the widget's token is verified with siteverify before any token or upstream work. */
const turnstileSchema = z.strictObject({
  /** The Worker secret holding the widget's secret key. */
  secret_from: secretName,
  /** Hosts the widget may have run on (siteverify's `hostname`). Default: the hosts of `allowed_origins`. */
  hostnames: z.array(hostName).min(1).optional(),
  /** The widget's `data-action`; when set, siteverify must report exactly this action. */
  action: z.string().regex(/^[A-Za-z0-9_-]{1,32}$/, "must be 1 to 32 letters, digits, _ or - (the widget's data-action)").optional(),
  /** Whole time the check may take, one retry with the same idempotency key included. */
  timeout_ms: z.int().min(100).max(10_000).default(3000),
});

/** A JSON path inside a body: dot-separated member names (`record`, `data.records`); '' is the body itself. */
const jsonPath = z.string().regex(/^$|^[A-Za-z_$][A-Za-z0-9_$-]*(\.[A-Za-z_$][A-Za-z0-9_$-]*)*$/, 'must be a dot-separated path of member names (record, data.records)');

/**
 * Single-record submissions gathered into one batch call (ABS: up to 300 records per
 * `POST /v1/topics/{topic}/code`). Needs a paced upstream: records wait for its next slot together.
 */
const coalesceSchema = z.strictObject({
  /** Most records in one batch call (ABS: 300). */
  batch_size: z.int().min(1).max(10_000),
  /** Where the one record is in the body this route sends (`record`). */
  record: jsonPath.refine((p) => p !== '', 'must name the member that holds the record'),
  /** Where the batch body holds its records (`records`); the rest of the body is shared by the batch. */
  records: jsonPath.refine((p) => p !== '', 'must name the member that holds the records'),
  /** The member the Worker sets on each record (its own id, never the client's) and reads on each result. */
  record_id: z.string().regex(/^[A-Za-z_$][A-Za-z0-9_$-]*$/, 'must be a member name').default('recordId'),
  /** Where the batch answer holds its results ('': the answer is the array). */
  results: jsonPath.default(''),
  /** After the first record, wait this long for others even when a slot is free. */
  gather_ms: z.int().min(0).max(5_000).default(50),
  /**
   * Request headers a batch must agree on, sent on the batch call (`["Accept-Language"]` for an API
   * that answers in the visitor's language). Others are not sent: every browser sends its own
   * `Accept-Language`, and records that differ in it would never share a call.
   */
  headers: z.array(z.string().regex(/^[!#$%&'*+.^_`|~0-9A-Za-z-]+$/, 'must be HTTP header names')).default([]),
  /** Statuses by which the API refuses a whole batch for one bad record: the batch is split until the culprit is alone. */
  rejected_statuses: z.array(z.int().min(400).max(499)).min(1).default([400, 422]),
  /** Limits across fields of a record, checked before it joins a batch (ABS: occp_text + tasks_text ≤ 100 characters). */
  limits: z
    .array(
      z.strictObject({
        fields: z.array(z.string().regex(/^[A-Za-z_$][A-Za-z0-9_$-]*$/, 'must be member names of the record')).min(1),
        /** Most characters (Unicode code points) of the fields together. */
        max_chars: z.int().min(1),
      }),
    )
    .default([]),
});

export type CoalesceConfig = z.infer<typeof coalesceSchema>;

/** A honeypot field name: a field real people never fill. */
const honeypotField = z.string().regex(/^[A-Za-z][A-Za-z0-9_.-]{0,63}$/, 'must be a form field name (a letter, then letters, digits, _ . -)');

export const routeSchema = z
  .strictObject({
    /** Public path on the Worker, with named params (`/batches/:id`). */
    path: routePath,
    methods: z.array(httpMethod).min(1).default(['POST']),
    /** Name of an upstream in UPSTREAMS. */
    upstream: z.string().min(1),
    /** Path on the API, `{param}` placeholders filled from the public path. */
    target: z
      .string()
      .regex(/^\/[A-Za-z0-9_.~\-/{}]*$/, 'must be a path like /v1/topics/{topic}/code')
      .refine((t) => !t.split('/').some((s) => s === '.' || s === '..'), 'must not contain . or .. segments'),
    /** Scope set for this route's token (overrides the upstream's). */
    scope: z.string().refine((s) => s.trim() !== '', "must name at least one scope (leave scope out to use the upstream's)").optional(),
    /** Exact origins (scheme://host[:port]) allowed to call this route. */
    allowed_origins: z.array(z.string()).default([]),
    /** Allow any origin; must be said explicitly. */
    allow_any_origin: z.boolean().default(false),
    max_body_bytes: z.int().min(1).max(10 * 1024 * 1024).default(64 * 1024),
    /**
     * `required`: POST, PUT and PATCH must send a body (DELETE may); `optional`: a request with no
     * body and no Content-Type is forwarded without one; `none`: the route takes no body at all.
     */
    body: z.enum(['required', 'optional', 'none']).default('required'),
    /** Other media types passed to the API byte for byte, with their Content-Type (`text/csv`). */
    opaque_types: z
      .array(
        z
          .string()
          .regex(/^[a-z0-9][a-z0-9!#$&^_.+-]*\/[a-z0-9][a-z0-9!#$&^_.+-]*$/, 'media types: lower-case type/subtype, no parameters, no wildcards')
          .refine((t) => !PARSED_TYPES.includes(t) && !t.endsWith('+json'), 'JSON and form bodies are read by the Worker, not passed as opaque'),
      )
      .default([]),
    /** Query parameters forwarded to the API: a list of names, or name → { pattern, max_length, required, list }. */
    query: z
      .preprocess(
        (v) => (Array.isArray(v) && v.every((n) => typeof n === 'string') ? Object.fromEntries(v.map((n: string) => [n, {}])) : v),
        z.record(paramName, queryParamSchema),
      )
      .default({}),
    required_fields: z.array(z.string().min(1)).default([]),
    max_field_length: z.int().min(1).default(10_000),
    /** Submitted values that may appear in this route's request log line (none by default). */
    log_fields: z.array(z.string().min(1).max(100)).default([]),
    /** How form posts become the API's JSON: a fixed template plus field → JSON path. */
    form: z
      .strictObject({
        template: z.record(z.string(), z.unknown()).default({}),
        fields: z.record(z.string(), formFieldSchema),
      })
      .optional(),
    /** Most bytes of an API answer (after decoding) passed to the browser; larger ones are cut off. */
    max_answer_bytes: z.int().min(64 * 1024).max(100 * 1024 * 1024).default(10 * 1024 * 1024),
    /** API answers that a browser would run (HTML, SVG, XML): `sandbox` (CSP sandbox) or `refuse` (502). */
    active_content: z.enum(['sandbox', 'refuse']).default('sandbox'),
    /** Where a plain HTML form lands after success / failure (303); failure uses `redirect` if unset. */
    redirect: pageUrl.optional(),
    error_redirect: pageUrl.optional(),
    /** Carry a successful JSON answer (up to 4 KB) to `redirect` as base64url `result`. */
    redirect_result: z.boolean().default(false),
    /** Per-client rate limit: a Rate Limiting binding, keyed by the client's address and this route. */
    rate_limit: rateLimitSchema.optional(),
    /** Cloudflare Turnstile: every request must carry a widget token that siteverify accepts. */
    turnstile: turnstileSchema.optional(),
    /** A field real people never fill (hidden by CSS): filled, the request is answered as accepted and dropped. */
    honeypot: honeypotField.optional(),
    /** Gather single-record submissions into batch calls, paced (needs the upstream's `pacing`). */
    coalesce: coalesceSchema.optional(),
  })
  .superRefine((r, ctx) => {
    for (const message of logFieldIssues(r)) ctx.addIssue({ code: 'custom', path: ['log_fields'], message });
    if (r.error_redirect !== undefined && r.redirect === undefined) {
      ctx.addIssue({ code: 'custom', path: ['redirect'], message: 'error_redirect needs redirect too (where a successful form post lands)' });
    }
    for (const { key, message } of abuseConflicts(r)) ctx.addIssue({ code: 'custom', path: key, message });
    if (r.coalesce !== undefined) {
      // One record per submission, as JSON the Worker can split apart and put back together.
      if (r.methods.length !== 1 || r.methods[0] !== 'POST') ctx.addIssue({ code: 'custom', path: ['coalesce'], message: 'gathers POST submissions: methods must be ["POST"]' });
      if (r.body !== 'required') ctx.addIssue({ code: 'custom', path: ['coalesce'], message: 'needs a body with the record: body must be "required"' });
      if (r.opaque_types.length > 0) ctx.addIssue({ code: 'custom', path: ['coalesce'], message: 'reads the record from JSON: opaque_types cannot be coalesced' });
    }
    for (const [name, spec] of Object.entries(r.query)) {
      if (spec.pattern !== undefined && compilePattern(spec.pattern) === undefined) {
        ctx.addIssue({ code: 'custom', path: ['query', name, 'pattern'], message: 'is not a valid regular expression' });
      }
    }
  });

/**
 * Turnstile and honeypot settings that cannot work: the Worker takes both fields out of the
 * submission before mapping, so neither may also be a field the route maps or requires, and a
 * honeypot needs a body to be in.
 */
function abuseConflicts(r: {
  methods: string[];
  body: string;
  allow_any_origin: boolean;
  required_fields: string[];
  form?: { fields: Record<string, unknown> } | undefined;
  turnstile?: { hostnames?: string[] | undefined } | undefined;
  honeypot?: string | undefined;
}): Array<{ key: string[]; message: string }> {
  const found: Array<{ key: string[]; message: string }> = [];
  const used = (name: string) => r.required_fields.includes(name) || (r.form !== undefined && Object.hasOwn(r.form.fields, name));
  if (r.honeypot !== undefined) {
    if (r.honeypot === TURNSTILE_FIELD) found.push({ key: ['honeypot'], message: `${TURNSTILE_FIELD} is the Turnstile widget's field` });
    else if (used(r.honeypot)) found.push({ key: ['honeypot'], message: `"${r.honeypot}" is a field of the submission (form.fields or required_fields); name a field real people never fill` });
    if (r.body === 'none' || r.methods.every((m) => m === 'GET')) {
      found.push({ key: ['honeypot'], message: 'a honeypot is a field of a submitted body: this route takes none' });
    }
  }
  if (r.turnstile !== undefined) {
    if (used(TURNSTILE_FIELD)) found.push({ key: ['turnstile'], message: `${TURNSTILE_FIELD} carries the Turnstile token: it may not be mapped or required` });
    if (r.allow_any_origin && r.turnstile.hostnames === undefined) {
      found.push({ key: ['turnstile', 'hostnames'], message: 'with allow_any_origin the hosts the widget runs on cannot be derived: list them' });
    }
  }
  return found;
}

/**
 * A route's `log_fields` must name what the route takes: a path param, a query parameter, a field
 * of its `form` mapping or a required field. A typo would otherwise log nothing and go unnoticed,
 * and a Turnstile token is a credential, never a value to log.
 */
function logFieldIssues(r: { path: string; query: Record<string, unknown>; form?: { fields: Record<string, unknown> }; required_fields: string[]; log_fields: string[] }): string[] {
  const params = pathParams(r.path);
  const known = new Set([...params, ...Object.keys(r.query), ...Object.keys(r.form?.fields ?? {}), ...r.required_fields]);
  return r.log_fields.flatMap((name) =>
    name.toLowerCase().startsWith('cf-turnstile')
      ? [`"${name.slice(0, 100)}" is a Turnstile token, never logged`]
      : known.has(name)
        ? []
        : [`"${name.slice(0, 100)}" is not a path param, query parameter, form field or required field of this route`],
  );
}

/** A query parameter pattern as a whole-value regular expression; undefined when it does not compile. */
export function compilePattern(pattern: string): RegExp | undefined {
  try {
    return new RegExp(`^(?:${pattern})$`, 'u');
  } catch {
    return undefined;
  }
}

export type RouteConfig = z.infer<typeof routeSchema>;

/** A Cloudflare Access team domain: `https://<team>.cloudflareaccess.com`, the scheme optional. */
const accessTeamDomain = z
  .string()
  .regex(/^(https:\/\/)?[a-z0-9]([a-z0-9-]{0,61}[a-z0-9])?\.cloudflareaccess\.com\/?$/i, 'must be your Cloudflare Access team domain, e.g. "https://myteam.cloudflareaccess.com"')
  .transform((d) => `https://${d.replace(/^https:\/\//i, '').replace(/\/$/, '').toLowerCase()}`);

/** An Access application's audience (AUD) tag, as its overview page shows it. */
const accessAud = z.string().regex(/^[0-9a-f]{64}$/i, "must be the Access application's Audience (AUD) tag: 64 hex characters");

/**
 * Who may read `GET /status`: the holder of an admin bearer token, people Cloudflare Access lets
 * through to the Worker, or both. Without `STATUS`, /status does not exist.
 */
export const statusSchema = z
  .strictObject({
    /** The Worker secret holding the admin bearer token (32+ characters). */
    admin_token_from: secretName.optional(),
    /** Cloudflare Access in front of /status: its JWT is verified against the team's certs. */
    access: z
      .strictObject({
        team_domain: accessTeamDomain,
        /** The application's AUD tag, or several (one per Access application that fronts /status). */
        aud: z.union([accessAud.transform((a) => [a.toLowerCase()]), z.array(accessAud).min(1).transform((as) => as.map((a) => a.toLowerCase()))]),
      })
      .optional(),
  })
  .refine((s) => s.admin_token_from !== undefined || s.access !== undefined, 'set admin_token_from, access, or both (leave STATUS out and /status is off)');

export type StatusConfig = z.infer<typeof statusSchema>;

export interface Config {
  upstreams: Record<string, UpstreamConfig>;
  routes: Record<string, RouteConfig>;
  /** Serve the demo's server-rendered pages (`/result`). */
  demoPages: boolean;
  /** The demo page's Turnstile sitekey (public), when the demo runs with Turnstile on. */
  demoTurnstileSitekey?: string;
  /** Who may read `/status`; undefined: /status is off. */
  status?: StatusConfig;
  /**
   * Parts left out because they are wrong (loadConfig only; parseConfig refuses any): each answers
   * an anonymous 500 on its own paths and names its keys in the log, and the rest keeps working.
   */
  broken: BrokenParts;
}

/** The parts of a config that cannot be used, with the issues that name their keys. */
export interface BrokenParts {
  upstreams: Record<string, string[]>;
  /** A broken route still answers on its path (a 500), when its path and methods are readable. */
  routes: Record<string, { path?: string; methods?: string[]; issues: string[] }>;
  /** STATUS is wrong: /status answers a 500, the forms work. */
  status?: string[];
}

/** The config keys the Worker reads from `env`. */
export interface ConfigVars {
  UPSTREAMS?: unknown;
  ROUTES?: unknown;
  DEMO_PAGES?: unknown;
  DEMO_TURNSTILE_SITEKEY?: unknown;
  STATUS?: unknown;
}

/** Paths the Worker answers itself: no route may take them. */
export const RESERVED_PATHS = ['/healthz', '/status'];

/** A config that failed validation: every message names a key and shows no value. */
export class ConfigError extends Error {
  constructor(readonly issues: string[]) {
    super(`invalid configuration: ${issues.join('; ')}`);
    this.name = 'ConfigError';
  }
}

/** The names of a route path's params (`/batches/:id` → `id`). */
export function pathParams(path: string): string[] {
  return [...path.matchAll(/:([A-Za-z_][A-Za-z0-9_]*)/g)].map((m) => m[1]!);
}

/** Every scope set (normalised) the config asks tokens of `upstream` for: its own and its routes'. */
export function scopesOf(config: Config, upstream: string): string[] {
  const u = config.upstreams[upstream];
  if (u === undefined) return [];
  const routes = Object.values(config.routes).filter((r) => r.upstream === upstream);
  return [...new Set([scopeKey(u.scope), ...routes.map((r) => scopeKey(r.scope ?? u.scope))])];
}

/** Normalise a scope string: each distinct *set* of scopes is one token. */
export function scopeKey(scope: string | undefined): string {
  if (scope === undefined) return '';
  return [...new Set(scope.split(/\s+/).filter(Boolean))].sort().join(' ');
}
