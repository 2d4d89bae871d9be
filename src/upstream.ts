/**
 * @module Each upstream resolved once: its settings, credentials, client-assertion signer (keys
 * imported), credential-set fingerprint, TokenStore, egress (and mTLS path) and the values to cut
 * out of anything from outside, built from the config and `env` once per isolate and handed down.
 * No layer looks an upstream up in `env` again.
 *
 * `wiringFor(env)` is the one per-isolate cache keyed by `env` (the same object for every request
 * of an isolate); everything else is reached from what it returns.
 */
import { loadConfig, withBrokenUpstreams } from './config/load';
import { ConfigError, scopeKey, type Config, type UpstreamConfig } from './config/schema';
import { readCredentials, sensitiveValues, type Credentials } from './config/secrets';
import { buildEgress, egressSecrets, type Egress } from './egress';
import type { Env } from './env';
import { mtlsPaths } from './mtls';
import { assertionSigner, type AssertionSigner } from './token/client-assertion';
import { clientAuthIdentity, fingerprint, storeName } from './token/credential-set';
import { policyOf, type Policy } from './token/policy';
import type { StoreRef, TokenStoreApi } from './token/store-api';
import type { PacerApi, PacerRef } from './pacing/pacer-api';

/** One upstream, ready to use. */
export interface Upstream {
  /** Its name in UPSTREAMS. */
  readonly name: string;
  readonly settings: UpstreamConfig;
  /** Read from Worker secrets; never logged, never returned. */
  readonly credentials: Credentials;
  /** The credential set's fingerprint (token/credential-set.ts): its TokenStore is named by it. */
  readonly fingerprint: string;
  /** The token rules of this credential set. */
  readonly policy: Policy;
  /** How API calls leave: the egress, or the mTLS binding when the tokens are bound to its certificate. */
  readonly send: Egress;
  /** How token requests leave: the mTLS binding when there is one, else the egress. */
  readonly sendToken: Egress;
  /** Signs a fresh client assertion per token request (`private_key_jwt`, `client_secret_jwt`). */
  readonly signer: AssertionSigner | undefined;
  /** What the egress adds to requests (its secret): cut out of answers too. */
  readonly egressSecrets: readonly string[];
  /** Every credential and egress secret: cut out of any text from outside before it is shown. */
  readonly sensitive: readonly string[];
  /** The credential set's TokenStore (a stub per call: stubs belong to the request that made them). */
  store(): DurableObjectStub<TokenStoreApi>;
  /** The credential set's Pacer, when the upstream has `pacing` (a stub per call, like `store`). */
  pacer: (() => DurableObjectStub<PacerApi>) | undefined;
  /** How Pacer calls name this credential set. */
  readonly pacerRef: PacerRef;
  /** How TokenStore calls name this credential set and `scope` (a normalised scope set). */
  ref(scope: string): StoreRef;
  /** The scope set a route's `scope` (or the upstream's default) asks for. */
  scopeOf(routeScope: string | undefined): string;
}

/** The config and its upstreams, for one `env`. */
export interface Wiring {
  readonly config: Config;
  readonly upstreams: ReadonlyMap<string, Upstream>;
}

const wirings = new WeakMap<object, Promise<Wiring>>();

/**
 * The wiring of this `env`: built at the first call, shared by every later one. Throws
 * `ConfigError` (as `loadConfig`) when the config as a whole is unusable; a broken upstream is
 * simply not in `upstreams` (its routes answer a 500 on their own), and one that fails only as it
 * is resolved here (a key WebCrypto will not import) joins `config.broken` the same way.
 */
export function wiringFor(env: Env): Promise<Wiring> {
  let w = wirings.get(env);
  if (w === undefined) {
    w = build(env);
    wirings.set(env, w);
  }
  return w;
}

async function build(env: Env): Promise<Wiring> {
  const config = loadConfig(env);
  const upstreams = new Map<string, Upstream>();
  const failed: Record<string, string[]> = {};
  for (const [name, settings] of Object.entries(config.upstreams)) {
    try {
      upstreams.set(name, await resolve(env, name, settings));
    } catch (e) {
      if (!(e instanceof ConfigError)) throw e;
      failed[name] = e.issues;
    }
  }
  return { config: withBrokenUpstreams(config, failed), upstreams };
}

async function resolve(env: Env, name: string, settings: UpstreamConfig): Promise<Upstream> {
  const credentials = readCredentials(name, settings, env);
  const signer = await assertionSigner(name, settings, credentials, env);
  const fp = await fingerprint(settings, credentials.clientId, credentials.username, clientAuthIdentity(settings, signer?.identity));
  const secrets = egressSecrets(settings, env);
  const paths = mtlsPaths(name, settings, env, buildEgress(settings, env));
  const id = env.TOKEN_STORE.idFromName(storeName(name, fp));
  const pacerId = settings.pacing === undefined ? undefined : env.PACER.idFromName(storeName(name, fp));
  // Only the first get() of an Object decides where it lives; the hint is harmless afterwards.
  const options = settings.location_hint === undefined ? {} : { locationHint: settings.location_hint };
  return {
    name,
    settings,
    credentials,
    fingerprint: fp,
    policy: policyOf(settings),
    send: paths.api,
    sendToken: paths.token,
    signer,
    egressSecrets: secrets,
    sensitive: [...sensitiveValues(credentials), ...secrets],
    store: () => env.TOKEN_STORE.get(id, options),
    pacer: pacerId === undefined ? undefined : () => env.PACER.get(pacerId, options),
    pacerRef: { upstream: name, fp },
    ref: (scope) => ({ upstream: name, fp, scope }),
    scopeOf: (routeScope) => scopeKey(routeScope ?? settings.scope),
  };
}
