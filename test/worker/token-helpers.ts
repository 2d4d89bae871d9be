/** Helpers for the token engine tests: a fake clock, direct TokenStore stubs. */
import { env } from 'cloudflare:test';
import { afterEach } from 'vitest';
import { setClock } from '../../src/clock';
import { clearIsolateCache } from '../../src/token/cache';
import { storeName, TokenStore, type TokenKey } from '../../src/token/store';

/** A clock the test moves by hand; restored after each test. */
export function fakeClock(start = Date.UTC(2026, 10, 22, 12)) {
  let t = start;
  setClock({ now: () => t });
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

afterEach(() => {
  setClock(undefined);
  clearIsolateCache();
});

export function store(upstream: string, scope = '') {
  const key: TokenKey = { upstream, scope };
  return { key, stub: env.TOKEN_STORE.get(env.TOKEN_STORE.idFromName(storeName(key))) };
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
  proto.getToken = function (this: TokenStore, k: TokenKey) {
    if (k.upstream === upstream) counter.calls++;
    return original.call(this, k);
  };
  return counter;
}
