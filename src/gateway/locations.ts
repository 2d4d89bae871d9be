/**
 * @module Reverse routing: the public URL that reaches an API URL, for `Location` headers.
 *
 * A 201 or 202 names the new resource on the API (`/v1/topics/occp/batch-code/operations/op-42`).
 * The browser can only use it through the Worker, so it is rewritten onto the route of the same
 * upstream whose target matches it (a GET route first), with a query that route accepts; a URL no
 * route reaches (another origin, another path) is dropped rather than handed out.
 */
import { pathParams, type Config, type RouteConfig } from '../config/schema';
import { queryPolicy, type QueryPolicy } from './request';

/** A param as the gateway lets it through (routes.ts checks the same on the way in). */
export const SAFE_PARAM = /^(?!\.$)(?!.*\.\.)[A-Za-z0-9_.~-]{1,200}$/;

interface Reverse {
  target: RegExp;
  params: string[];
  path: string;
  query: QueryPolicy;
}

/** Rewrites an absolute API URL to a public URL on `selfOrigin`, or undefined. */
export type LocationRewriter = (apiUrl: URL, selfOrigin: string) => string | undefined;

const escape = (s: string) => s.replace(/[.*+?^${}()|[\]\\/]/g, '\\$&');

/** The reverse routes of one upstream, decided once per config. */
export function locationRewriter(config: Config, upstream: string): LocationRewriter {
  const base = new URL(config.upstreams[upstream]!.api_origin);
  const basePath = base.pathname.replace(/\/+$/, '');
  const routes = Object.values(config.routes)
    .filter((r) => r.upstream === upstream)
    .sort((a, b) => Number(!a.methods.includes('GET')) - Number(!b.methods.includes('GET')));
  const reverse: Reverse[] = routes.flatMap((r: RouteConfig) => {
    const params: string[] = [];
    const pattern = r.target
      .split(/\{([^}]+)\}/)
      .map((part, i) => (i % 2 === 0 ? escape(part) : (params.push(part), '([^/]+)')))
      .join('');
    // A route with a path param its target does not carry cannot be filled from an API URL.
    if (pathParams(r.path).some((p) => !params.includes(p))) return [];
    return [{ target: new RegExp(`^${pattern}$`), params, path: r.path, query: queryPolicy(r) }];
  });
  return (url, selfOrigin) => {
    if (url.origin !== base.origin || !url.pathname.startsWith(`${basePath}/`)) return undefined;
    const rest = url.pathname.slice(basePath.length);
    for (const r of reverse) {
      const m = r.target.exec(rest);
      if (m === null || m.slice(1).some((v) => !SAFE_PARAM.test(v))) continue;
      let search: string;
      try {
        search = r.query(url.search);
      } catch {
        continue; // a query this route would refuse
      }
      const values = new Map(r.params.map((p, i) => [p, m[i + 1]!]));
      return selfOrigin + r.path.replace(/:([A-Za-z_][A-Za-z0-9_]*)/g, (_, p: string) => values.get(p) ?? '') + search;
    }
    return undefined;
  };
}
