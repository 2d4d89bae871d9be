/** Helpers for the token engine tests: a fake clock, direct TokenStore stubs. */
import { env } from 'cloudflare:test';
import { afterEach } from 'vitest';
import { setClock } from '../../src/clock';
import { clearIsolateCache } from '../../src/token/cache';
import { TokenStore } from '../../src/token/store';
import type { StoreRef } from '../../src/token/store-api';
import { wiringFor } from '../../src/upstream';

/** A clock the test moves by hand; restored after each test. */
export function fakeClock(start = Date.UTC(2026, 10, 22, 12)) {
  let t = start;
  // A wait on this clock moves it (a caller held for a token, a pacing slot), after a real turn
  // of the event loop so other work runs in between, as it would while time passes.
  setClock({ now: () => t, sleep: async (ms) => {
    await new Promise((r) => setTimeout(r, 0));
    t = Math.max(t, t + ms);
  } });
  return {
    now: () => t,
    advance: (ms: number) => {
      t += ms;
    },
    set: (ms: number) => {
      t = ms;
    },
  };
}

/**
 * A clock that starts at `start` and then runs with real time (which in workerd moves across I/O):
 * for tests where the duration of a token request matters.
 */
export function realTimeClock(start = Date.UTC(2026, 10, 22, 12)) {
  const origin = Date.now();
  let offset = 0;
  setClock({ now: () => start + (Date.now() - origin) + offset });
  return {
    now: () => start + (Date.now() - origin) + offset,
    advance: (ms: number) => {
      offset += ms;
    },
  };
}

afterEach(() => {
  setClock(undefined);
  clearIsolateCache();
});

/** The TokenStore of an upstream's credential set (as the test Worker's config defines it), and a ref for a scope set. */
export async function store(upstream: string, scope = '') {
  const u = (await wiringFor(env)).upstreams.get(upstream);
  if (u === undefined) throw new Error(`no working upstream named ${upstream}`);
  return { key: u.ref(scope), stub: u.store() };
}

/** The token-free status of a scope set's token (throws if the store refused the call). */
export async function scopeStatus(upstream: string, scope = '') {
  const { key, stub } = await store(upstream, scope);
  const s = await stub.status(key);
  if (!('scopes' in s)) throw new Error(`status refused: ${s.detail}`);
  return { ...s, token: s.scopes.find((x) => x.scope === scope) };
}

export const SECOND = 1000;
export const MINUTE = 60 * SECOND;

/**
 * Count the TokenStore getToken calls made for `upstream` (RPC dispatches through the class, so the
 * class method is wrapped); `restore()` puts it back.
 */
export function countStoreCalls(upstream: string) {
  const proto = TokenStore.prototype;
  const original = proto.getToken;
  const counter = {
    calls: 0,
    restore: () => {
      proto.getToken = original;
    },
  };
  proto.getToken = function (this: TokenStore, k: StoreRef) {
    if (k.upstream === upstream) counter.calls++;
    return original.call(this, k);
  };
  return counter;
}

/**
 * Make every TokenStore getToken call for `upstream` throw, as an overloaded or resetting Durable
 * Object does; `restore()` puts it back.
 */
export function failStoreCalls(upstream: string): { restore: () => void } {
  const proto = TokenStore.prototype;
  const original = proto.getToken;
  proto.getToken = function (this: TokenStore, k: StoreRef) {
    if (k.upstream === upstream) throw new Error('simulated: Durable Object overloaded');
    return original.call(this, k);
  };
  return {
    restore: () => {
      proto.getToken = original;
    },
  };
}
