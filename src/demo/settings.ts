/**
 * @module Demo settings: what the static demo page cannot know by itself, read by public/demo.js.
 *
 * Only mounted with `DEMO_PAGES`. Today that is whether the coding route checks Turnstile and the
 * (public) sitekey its widget needs: `DEMO_TURNSTILE=1 npm start` runs the `turnstile`
 * environment of wrangler.toml, which sets `DEMO_TURNSTILE_SITEKEY`.
 */
import type { Context } from 'hono';
import type { Config } from '../config/schema';

export function demoSettings(config: Config): (c: Context) => Response {
  const body = JSON.stringify({ turnstile_sitekey: config.demoTurnstileSitekey ?? null });
  return (c) => c.body(body, 200, { 'Content-Type': 'application/json', 'Cache-Control': 'no-store' });
}
