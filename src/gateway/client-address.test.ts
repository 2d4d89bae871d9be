/** client-address.ts: whom a rate limit counts, from CF-Connecting-IP alone. */
import { describe, expect, it } from 'vitest';
import { clientAddress, clientKey, NO_ADDRESS } from './client-address';

const h = (ip?: string, extra: Record<string, string> = {}) => new Headers({ ...(ip === undefined ? {} : { 'CF-Connecting-IP': ip }), ...extra });

describe('clientKey', () => {
  it('an IPv4 address is its own key; X-Forwarded-For and X-Real-IP are never read', () => {
    expect(clientKey(h('203.0.113.7'))).toBe('203.0.113.7');
    expect(clientKey(h('203.0.113.7', { 'X-Forwarded-For': '198.51.100.1', 'X-Real-IP': '198.51.100.2' }))).toBe('203.0.113.7');
    expect(clientKey(h(undefined, { 'X-Forwarded-For': '198.51.100.1' }))).toBe(NO_ADDRESS);
  });

  it('an IPv6 address counts by its /64, however it is written', () => {
    const same = ['2001:db8:1:2::1', '2001:0db8:0001:0002:ffff:0:0:1', '2001:DB8:1:2:a:b:c:d', '2001:db8:1:2::', '2001:db8:1:2:0:0:1.2.3.4'];
    for (const ip of same) expect(clientKey(h(ip)), ip).toBe('2001:db8:1:2::/64');
    expect(clientKey(h('2001:db8:1:3::1'))).toBe('2001:db8:1:3::/64');
    expect(clientKey(h('::1'))).toBe('0:0:0:0::/64');
  });

  it('an IPv4-mapped IPv6 address is that IPv4 client, not one /64 shared by every IPv4 client', () => {
    expect(clientKey(h('::ffff:203.0.113.7'))).toBe('203.0.113.7');
    expect(clientKey(h('::ffff:cb00:7107'))).toBe('203.0.113.7');
  });

  it('no address, or something that is not one, shares one key', () => {
    for (const bad of [undefined, '', 'localhost', '256.1.1.1', '1.2.3', '1:2:3:4:5:6:7:8:9', '1::2::3', '12345::1', '2001:db8::1%eth0', ' ; drop']) {
      expect(clientKey(h(bad)), String(bad)).toBe(NO_ADDRESS);
    }
  });
});

describe('clientAddress', () => {
  it('is the canonical address for siteverify’s remoteip, or undefined', () => {
    expect(clientAddress(h(' 203.0.113.7 '))).toBe('203.0.113.7');
    expect(clientAddress(h('2001:DB8::1'))).toBe('2001:db8:0:0:0:0:0:1');
    expect(clientAddress(h('nope'))).toBeUndefined();
    expect(clientAddress(h())).toBeUndefined();
  });
});
