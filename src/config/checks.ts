/**
 * @module Checks only `npm run check-config` can make: they compare the config with what
 * wrangler.toml declares, which the Worker itself never sees (it only sees whether a binding exists).
 */
import type { Config } from './schema';

/** One `[[ratelimits]]` entry of wrangler.toml, as far as a route's rate limit depends on it. */
export interface RateLimitDeclaration {
  name: string;
  simple?: { limit?: number; period?: number };
}

/**
 * Routes whose `rate_limit` does not match wrangler.toml's `[[ratelimits]]`: a binding that is not
 * declared, or a period other than the binding's (Retry-After would be wrong).
 */
export function rateLimitDeclarationIssues(config: Pick<Config, 'routes'>, declared: RateLimitDeclaration[]): string[] {
  const issues: string[] = [];
  for (const [name, r] of Object.entries(config.routes)) {
    if (r.rate_limit === undefined) continue;
    const d = declared.find((x) => x.name === r.rate_limit!.binding);
    if (d === undefined) issues.push(`ROUTES.${name}.rate_limit: no [[ratelimits]] entry named "${r.rate_limit.binding}"`);
    else if (d.simple?.period !== r.rate_limit.period) {
      issues.push(`ROUTES.${name}.rate_limit.period: ${r.rate_limit.period} s, but binding "${d.name}" counts per ${String(d.simple?.period)} s (simple.period)`);
    }
  }
  return issues;
}
