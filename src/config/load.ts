/**
 * @module Config loading: the vars parsed part by part (each upstream, each route, STATUS), the
 * checks that span parts (a route's upstream, two routes that collide), and the start checks of
 * secrets and bindings, once per isolate.
 *
 * `parseConfig` is strict: any issue anywhere refuses the whole config (tests, `check-config`,
 * `npm run deploy`). `loadConfig` is what the running Worker uses: a mistake in one part takes down
 * only that part (its routes answer an anonymous 500, its keys are named in the log), so a bad
 * STATUS leaves the forms working and a bad upstream fails only its own routes. Only a config
 * whose shape is wrong as a whole (no UPSTREAMS table) fails every request.
 */
import * as z from 'zod';
import {
  ConfigError,
  httpMethod,
  pathParams,
  RESERVED_PATHS,
  routePath,
  routeSchema,
  statusSchema,
  upstreamSchema,
  type BrokenParts,
  type Config,
  type ConfigVars,
  type RouteConfig,
  type StatusConfig,
  type UpstreamConfig,
} from './schema';
import { startIssues } from './secrets';

/** The top level: which tables exist; each part is parsed on its own below. */
const topSchema = z.strictObject({
  UPSTREAMS: z.record(z.string(), z.unknown()),
  ROUTES: z.record(z.string(), z.unknown()).default({}),
  // `--var DEMO_PAGES:true` arrives as a string, a TOML boolean as a boolean.
  DEMO_PAGES: z.union([z.boolean(), z.enum(['true', 'false']).transform((v) => v === 'true')]).default(false),
  // A sitekey is public (it is in every page with the widget); the secret never is.
  DEMO_TURNSTILE_SITEKEY: z.string().regex(/^[0-9A-Za-z_-]{10,100}$/, 'must be a Turnstile sitekey').optional(),
  STATUS: z.unknown().optional(),
});

const UPSTREAM_NAME = /^[A-Za-z0-9_-]+$/;

/** zod's issues as our messages: `KEY.PATH: message`, under `prefix`. */
function messages(error: z.ZodError, prefix: readonly (string | number)[]): string[] {
  return error.issues.map((i) => `${[...prefix, ...i.path.map(String)].join('.') || '(root)'}: ${i.message}`);
}

/** A config as parsed, every part kept apart with its own issues. */
interface Parts {
  config: Omit<Config, 'broken'>;
  broken: BrokenParts;
}

/** Parse every part; throws `ConfigError` only when the shape as a whole is wrong. */
function parseParts(vars: ConfigVars): Parts {
  const top = topSchema.safeParse({ UPSTREAMS: vars.UPSTREAMS, ROUTES: vars.ROUTES, DEMO_PAGES: vars.DEMO_PAGES, DEMO_TURNSTILE_SITEKEY: vars.DEMO_TURNSTILE_SITEKEY, STATUS: vars.STATUS });
  if (!top.success) throw new ConfigError(messages(top.error, []));
  const broken: BrokenParts = { upstreams: {}, routes: {} };

  const upstreams: Record<string, UpstreamConfig> = {};
  for (const [name, raw] of Object.entries(top.data.UPSTREAMS)) {
    if (!UPSTREAM_NAME.test(name)) {
      broken.upstreams[name] = [`UPSTREAMS.${name.slice(0, 100)}: upstream names: letters, digits, _ and -`];
      continue;
    }
    const parsed = upstreamSchema.safeParse(raw);
    if (parsed.success) upstreams[name] = parsed.data;
    else broken.upstreams[name] = messages(parsed.error, ['UPSTREAMS', name]);
  }

  const routes: Record<string, RouteConfig> = {};
  for (const [name, raw] of Object.entries(top.data.ROUTES)) {
    const parsed = routeSchema.safeParse(raw);
    const issues = parsed.success ? routeIssues(name, parsed.data, top.data.UPSTREAMS, upstreams) : messages(parsed.error, ['ROUTES', name]);
    if (parsed.success && issues.length === 0) routes[name] = parsed.data;
    else broken.routes[name] = { ...readableShape(raw), issues };
  }
  // Two routes that would take each other's requests: the later one is the mistake.
  for (const { route, key, message } of routeConflicts(routes)) {
    const r = routes[route]!;
    delete routes[route];
    broken.routes[route] = { path: r.path, methods: r.methods, issues: [`ROUTES.${route}.${key}: ${message}`] };
  }
  // A route of a broken upstream is broken too: it could only fail.
  for (const [name, r] of Object.entries(routes)) {
    const issues = broken.upstreams[r.upstream];
    if (issues === undefined) continue;
    delete routes[name];
    broken.routes[name] = { path: r.path, methods: r.methods, issues };
  }

  let status: StatusConfig | undefined;
  if (top.data.STATUS !== undefined) {
    const parsed = statusSchema.safeParse(top.data.STATUS);
    if (parsed.success) status = parsed.data;
    else broken.status = messages(parsed.error, ['STATUS']);
  }

  const d = top.data;
  return {
    config: {
      upstreams,
      routes,
      demoPages: d.DEMO_PAGES,
      ...(d.DEMO_TURNSTILE_SITEKEY === undefined ? {} : { demoTurnstileSitekey: d.DEMO_TURNSTILE_SITEKEY }),
      ...(status === undefined ? {} : { status }),
    },
    broken,
  };
}

/** A broken route's path and methods, when they can be read: it still answers there (a 500). */
function readableShape(raw: unknown): { path?: string; methods?: string[] } {
  if (typeof raw !== 'object' || raw === null) return {};
  const path = routePath.safeParse(Reflect.get(raw, 'path'));
  if (!path.success) return {};
  const methods = z.array(httpMethod).min(1).default(['POST']).safeParse(Reflect.get(raw, 'methods'));
  return methods.success ? { path: path.data, methods: methods.data } : { path: path.data };
}

/** What is wrong with one parsed route in the light of the rest of the config. */
function routeIssues(name: string, route: RouteConfig, upstreams: Record<string, unknown>, parsed: Record<string, UpstreamConfig>): string[] {
  const issues: string[] = [];
  const at = (key: string, message: string) => issues.push(`ROUTES.${name}.${key}: ${message}`);
  if (RESERVED_PATHS.includes(route.path)) at('path', `${route.path} is the Worker's own (${RESERVED_PATHS.join(', ')}); choose another path`);
  if (!Object.hasOwn(upstreams, route.upstream)) at('upstream', `no upstream named "${route.upstream}"`);
  const upstream = parsed[route.upstream];
  if (route.coalesce !== undefined && upstream !== undefined && upstream.pacing === undefined) {
    at('coalesce', `gathers records for the upstream's next slot: give UPSTREAMS.${route.upstream} a pacing table (its rate limits)`);
  }
  const params = new Set(pathParams(route.path));
  for (const m of route.target.matchAll(/\{([^}]*)\}/g)) {
    if (!params.has(m[1]!)) at('target', `{${m[1]}} is not a param of path`);
  }
  for (const origin of route.allowed_origins) {
    const message =
      origin === '*'
        ? route.allow_any_origin
          ? undefined
          : '"*" needs allow_any_origin = true'
        : origin.includes('*')
          ? `"${origin.slice(0, 100)}" has a wildcard: list exact origins (or allow_any_origin = true)`
          : isOrigin(origin)
            ? undefined
            : `"${origin.slice(0, 100)}" is not an origin (scheme://host[:port])`;
    if (message !== undefined) at('allowed_origins', message);
  }
  for (const key of ['redirect', 'error_redirect'] as const) {
    const url = route[key];
    if (url !== undefined && !route.allow_any_origin && !route.allowed_origins.includes(new URL(url).origin)) at(key, 'must be on one of allowed_origins');
  }
  return issues;
}

function isOrigin(s: string): boolean {
  try {
    return new URL(s).origin === s;
  } catch {
    return false;
  }
}

/** A route's origin policy, comparable between routes. */
const originsOf = (r: RouteConfig) => (r.allow_any_origin ? '*' : [...new Set(r.allowed_origins)].sort().join(' '));

/** A route path as the router matches it: every param is one segment, whatever its name. */
function pathShape(path: string): string {
  return path.replace(/:[A-Za-z_][A-Za-z0-9_]*/g, ':');
}

/** Whether some request path matches both route paths (a param matches any one segment). */
function pathsOverlap(a: string, b: string): boolean {
  const sa = a.split('/');
  const sb = b.split('/');
  return sa.length === sb.length && sa.every((s, i) => s === sb[i] || s.startsWith(':') || sb[i]!.startsWith(':'));
}

/**
 * Routes that would take each other's requests: the same path (whatever its params are called) and
 * method twice, or two paths one request can match (a param path over a specific one) whose methods
 * or origins differ, so one of them would answer for the other (a 405, or a 403 to an origin the
 * other allows). Each names the later route.
 */
export function routeConflicts(routes: Record<string, RouteConfig>): Array<{ route: string; key: string; message: string }> {
  const found: Array<{ route: string; key: string; message: string }> = [];
  const entries = Object.entries(routes);
  for (let i = 0; i < entries.length; i++) {
    const [nameA, a] = entries[i]!;
    for (const [nameB, b] of entries.slice(0, i)) {
      if (pathShape(a.path) === pathShape(b.path)) {
        // The same path, whatever its params are called (`/items/:id`, `/items/:sku`): the router
        // gives a request to the first, so the second would never answer.
        const twice = a.methods.filter((m) => b.methods.includes(m));
        const named = a.path === b.path ? '' : ` (${b.path}: the same path with other parameter names)`;
        if (twice.length > 0) {
          found.push({ route: nameA, key: 'methods', message: `${twice.join(', ')} ${a.path} is also route ${nameB}${named}` });
          break;
        }
      } else if (pathsOverlap(a.path, b.path)) {
        const sameMethods = [...new Set(a.methods)].sort().join() === [...new Set(b.methods)].sort().join();
        if (!sameMethods || originsOf(a) !== originsOf(b)) {
          found.push({
            route: nameA,
            key: 'path',
            message: `${a.path} and route ${nameB} (${b.path}) match the same requests with different ${sameMethods ? 'origins' : 'methods'}; give them the same methods and origins, or distinct paths`,
          });
          break;
        }
      }
    }
  }
  return found;
}

/** Every issue of the parts, in the order of the config (upstreams, routes, STATUS). */
function allIssues(broken: BrokenParts): string[] {
  return [...Object.values(broken.upstreams).flat(), ...Object.values(broken.routes).flatMap((r) => r.issues), ...(broken.status ?? [])];
}

/**
 * Parse and validate the config vars, strictly: any issue in any part throws `ConfigError` with
 * all of them. For tests and checks; the Worker loads with `loadConfig`.
 */
export function parseConfig(vars: ConfigVars): Config {
  const { config, broken } = parseParts(vars);
  const issues = allIssues(broken);
  if (issues.length > 0) throw new ConfigError([...new Set(issues)]);
  return { ...config, broken };
}

const loaded = new WeakMap<object, Config | ConfigError>();

/**
 * The config for this `env`, parsed once per isolate (env is the same object for every request
 * of an isolate), with every secret and binding it names checked. A part with any issue is moved
 * to `broken` (with its issues); throws `ConfigError` only when the config as a whole is unusable.
 */
export function loadConfig(env: ConfigVars): Config {
  let entry = loaded.get(env);
  if (entry === undefined) {
    try {
      const { config, broken } = parseParts(env);
      const upstreams: Record<string, string[]> = {};
      for (const { part, issue } of startIssues(config, env)) {
        if (part.kind === 'status') {
          broken.status = [...(broken.status ?? []), issue];
          delete config.status;
        } else if (part.kind === 'upstream') {
          (upstreams[part.name] ??= []).push(issue);
        } else {
          const r = config.routes[part.name];
          const was = broken.routes[part.name];
          broken.routes[part.name] = { ...(r === undefined ? was : { path: r.path, methods: r.methods }), issues: [...(was?.issues ?? []), issue] };
          delete config.routes[part.name];
        }
      }
      entry = withBrokenUpstreams({ ...config, broken }, upstreams);
    } catch (e) {
      if (!(e instanceof ConfigError)) throw e;
      entry = e;
    }
    loaded.set(env, entry);
  }
  if (entry instanceof ConfigError) throw entry;
  return entry;
}

/**
 * `config` with the upstreams named in `failed` moved to `broken` with their issues, and their
 * routes with them (they could only fail). For the start checks here, and for an upstream that
 * fails only when upstream.ts resolves it (a key WebCrypto will not import). A new object when
 * anything moves; `config` itself is left as it is.
 */
export function withBrokenUpstreams(config: Config, failed: Record<string, string[]>): Config {
  if (Object.keys(failed).length === 0) return config;
  const upstreams = { ...config.upstreams };
  const routes = { ...config.routes };
  const broken: BrokenParts = { ...config.broken, upstreams: { ...config.broken.upstreams }, routes: { ...config.broken.routes } };
  for (const [name, issues] of Object.entries(failed)) {
    broken.upstreams[name] = [...(broken.upstreams[name] ?? []), ...issues];
    delete upstreams[name];
  }
  for (const [name, r] of Object.entries(routes)) {
    const issues = broken.upstreams[r.upstream];
    if (issues === undefined) continue;
    delete routes[name];
    broken.routes[name] = { path: r.path, methods: r.methods, issues };
  }
  return { ...config, upstreams, routes, broken };
}

/** Every issue of a loaded config (empty when every part works). */
export function configIssuesOf(config: Config): string[] {
  return [...new Set(allIssues(config.broken))];
}
