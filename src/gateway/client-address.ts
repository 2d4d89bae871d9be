/**
 * @module The client's address, as Cloudflare's edge saw it: `CF-Connecting-IP` only.
 *
 * On Cloudflare the edge sets `CF-Connecting-IP` on every request from the internet (a value the
 * client sent is replaced), so it is the one address header worth trusting. `X-Forwarded-For`,
 * `X-Real-IP` and their kind are never read: any client can write them.
 */

/** A parsed address: `v4` as dotted quad, `v6` as eight 16-bit groups. */
type Address = { kind: 'v4'; text: string } | { kind: 'v6'; groups: number[] };

const IPV4 = /^(\d{1,3})\.(\d{1,3})\.(\d{1,3})\.(\d{1,3})$/;

function parseV4(s: string): number[] | undefined {
  const m = IPV4.exec(s);
  if (m === null) return undefined;
  const octets = m.slice(1).map(Number);
  return octets.every((o) => o <= 255) ? octets : undefined;
}

/** The eight groups of an IPv6 address (`::` and a dotted IPv4 tail allowed); undefined if it is not one. */
function parseV6(s: string): number[] | undefined {
  if (!/^[0-9a-f:.]{2,45}$/.test(s)) return undefined;
  let head = s;
  let tail: number[] = [];
  const v4 = /^(.*:)(\d{1,3}(?:\.\d{1,3}){3})$/.exec(s);
  if (v4 !== null) {
    const octets = parseV4(v4[2]!);
    if (octets === undefined) return undefined;
    tail = [(octets[0]! << 8) | octets[1]!, (octets[2]! << 8) | octets[3]!];
    head = v4[1]!.endsWith('::') ? v4[1]! : v4[1]!.slice(0, -1);
  }
  const halves = head.split('::');
  if (halves.length > 2) return undefined;
  const groups = halves.map((h) => (h === '' ? [] : h.split(':')));
  if (!groups.flat().every((g) => /^[0-9a-f]{1,4}$/.test(g))) return undefined;
  const [left, right = []] = groups.map((g) => g.map((x) => parseInt(x, 16)));
  const given = left!.length + right.length + tail.length;
  if (halves.length === 1 ? given !== 8 : given > 7) return undefined;
  return [...left!, ...new Array<number>(8 - given).fill(0), ...right, ...tail];
}

function parse(value: string | null | undefined): Address | undefined {
  if (value === null || value === undefined) return undefined;
  const s = value.trim().toLowerCase();
  const v4 = parseV4(s);
  if (v4 !== undefined) return { kind: 'v4', text: v4.join('.') };
  const groups = parseV6(s);
  if (groups === undefined) return undefined;
  // An IPv4-mapped address (::ffff:a.b.c.d) is that IPv4 client.
  if (groups.slice(0, 5).every((g) => g === 0) && groups[5] === 0xffff) {
    return { kind: 'v4', text: [groups[6]! >> 8, groups[6]! & 255, groups[7]! >> 8, groups[7]! & 255].join('.') };
  }
  return { kind: 'v6', groups };
}

/** The client's address from `CF-Connecting-IP`, in canonical form; undefined when absent or not an address. */
export function clientAddress(headers: Headers): string | undefined {
  const a = parse(headers.get('CF-Connecting-IP'));
  if (a === undefined) return undefined;
  return a.kind === 'v4' ? a.text : a.groups.map((g) => g.toString(16)).join(':');
}

/** The key of requests without a usable `CF-Connecting-IP`: all of them share one budget. */
export const NO_ADDRESS = 'no-address';

/**
 * Whom a rate limit counts: an IPv4 address as it is; an IPv6 address by its /64, since one
 * subscriber usually holds a whole /64 and could rotate inside it for free; and every request
 * without a usable `CF-Connecting-IP` (local runs, tests; never a request from the internet on
 * Cloudflare) as one client, so such requests are limited together rather than not at all.
 */
export function clientKey(headers: Headers): string {
  const a = parse(headers.get('CF-Connecting-IP'));
  if (a === undefined) return NO_ADDRESS;
  if (a.kind === 'v4') return a.text;
  return `${a.groups
    .slice(0, 4)
    .map((g) => g.toString(16))
    .join(':')}::/64`;
}
