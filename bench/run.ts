/**
 * @module Injector benchmark: the built Worker under Miniflare's API (workerd, no `wrangler dev` proxy).
 *
 * `node bench/run.ts [--no-build] [--profile] [--only-pacing]` (Node 22; see bench/README.md). Builds the bundle with
 * `wrangler deploy --dry-run` into bench/.out, then measures, against an in-process stand-in upstream:
 *   baseline   a 10-line pass-through Worker: the cost floor of workerd + Miniflare + stand-in;
 *   warm       the injector with its token cached in the isolate;
 *   cold       a fresh Miniflare per round, one burst of C requests: token requests must be 1;
 *   restart    the same storage, a fresh isolate (the token comes from the Durable Object): 0;
 *   recovery   the stand-in rejects the current token: a burst of C recovers with 1 new token;
 *   pacing     coding submissions through a 1-call-per-second API in batches of 300 (bench/pacing.ts).
 * Prints a Markdown table and writes bench/results.json. Timings are only compared within one run
 * (ratios), never against fixed thresholds: nothing here fails a build. The exit code is non-zero
 * only when the bench cannot run at all (the build fails, Miniflare does not start).
 */
import { spawnSync } from 'node:child_process';
import { mkdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { SourceMap } from 'node:module';
import { cpus, loadavg, totalmem } from 'node:os';
import { dirname, join, relative, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import { Miniflare, Response as MfResponse, convertV4MiniflareOptions, type Request as MfRequest } from 'miniflare';
import { parse as parseToml } from 'smol-toml';
import { benchPacing, pacingReport } from './pacing.ts';
import { childPids, cpuMsOf, procName, rssOf } from './proc.ts';

/** The Worker's own compatibility date and flags, so the bench runs what deploys. */
const WRANGLER = parseToml(readFileSync(new URL('../wrangler.toml', import.meta.url), 'utf8')) as { compatibility_date?: string; compatibility_flags?: string[] };
const COMPATIBILITY_DATE = WRANGLER.compatibility_date ?? '2026-10-20';
const COMPATIBILITY_FLAGS = WRANGLER.compatibility_flags ?? [];

const BENCH_DIR = dirname(fileURLToPath(import.meta.url));
const ROOT = dirname(BENCH_DIR);
const OUT_DIR = join(BENCH_DIR, '.out');
/** `BENCH_SCRIPT=path/to/index.js` benches another build (an A/B against a variant) and skips the build. */
const SCRIPT_PATH = process.env.BENCH_SCRIPT ? resolve(process.env.BENCH_SCRIPT) : join(OUT_DIR, 'index.js');
/** `BENCH_RESULTS=path` writes the JSON elsewhere (keeps both sides of an A/B). */
const RESULTS_PATH = process.env.BENCH_RESULTS ? resolve(process.env.BENCH_RESULTS) : join(BENCH_DIR, 'results.json');

/** Knobs, from the environment; defaults finish in well under two minutes on 2 cores. */
const PARAMS = {
  /** Measured requests per load scenario (baseline, warm), split over `rounds`. */
  requests: envInt('BENCH_REQUESTS', 3000),
  /** Requests in flight at once. */
  concurrency: envInt('BENCH_CONCURRENCY', 32),
  /** Baseline and warm alternate this many times, so drift on a noisy machine hits both. */
  rounds: envInt('BENCH_ROUNDS', 6),
  /** Unmeasured requests per instance before the first round (JIT, connection pools). */
  warmup: envInt('BENCH_WARMUP', 300),
  /** Fresh Miniflare instances for the cold and restart bursts. */
  coldRounds: envInt('BENCH_COLD_ROUNDS', 3),
  /** Token rejections in the recovery scenario. */
  recoveryRounds: envInt('BENCH_RECOVERY_ROUNDS', 5),
  /** Stand-in token endpoint delay (a real one takes 50–500 ms). */
  tokenDelayMs: envInt('BENCH_TOKEN_DELAY_MS', 0),
  /** Stand-in API delay. */
  apiDelayMs: envInt('BENCH_API_DELAY_MS', 0),
  /** A load phase stops after this long even if its requests are not all sent. */
  phaseSeconds: envInt('BENCH_PHASE_SECONDS', 20),
  /** Later scenarios are skipped once the whole bench has run this long. */
  totalSeconds: envInt('BENCH_TOTAL_SECONDS', 100),
};

const ARGS = new Set(process.argv.slice(2));
/** `BENCH_PACING=0` skips the pacing scenarios (bench/pacing.ts); `--only-pacing` runs nothing else. */
const PACING = process.env.BENCH_PACING !== '0';
const started = performance.now();

// ---------------------------------------------------------------------------------------------
// The Worker config under test: one upstream on the stand-in, one form route (the main use case).
// ---------------------------------------------------------------------------------------------

const PAGE_ORIGIN = 'https://forms.bench.example';
const WORKER_URL = 'https://injector.bench.example/api/code/nurse';
const API_ORIGIN = 'https://api.bench.test';
const SECRET = 'bench-secret-not-real';

const UPSTREAMS = {
  bench: {
    api_origin: API_ORIGIN,
    token_url: 'https://auth.bench.test/oauth2/token',
    client_id: 'bench-client',
    client_secret_from: 'BENCH_SECRET',
    // Room for every token request of the recovery rounds (the default is 10 per 60 s).
    token_budget: { max_requests: 100, window_seconds: 60 },
  },
};

const ROUTES = {
  code: {
    path: '/api/code/:topic',
    methods: ['POST'],
    upstream: 'bench',
    target: '/v1/topics/{topic}/code',
    allowed_origins: [PAGE_ORIGIN],
    required_fields: ['occp_text'],
    max_field_length: 500,
    max_body_bytes: 8192,
    form: {
      template: { numberOfSuggestions: 5 },
      fields: { occp_text: 'record.occp_text', tasks_text: 'record.tasks_text' },
    },
  },
};

const REQUEST_BODY = JSON.stringify({ occp_text: 'registered nurse', tasks_text: 'patient care, ward rounds, medication' });
const REQUEST_HEADERS = { Origin: PAGE_ORIGIN, 'Content-Type': 'application/json', Accept: 'application/json' };

/** The cost floor: take the request, call the same stand-in API, hand its answer back. */
const BASELINE_SCRIPT = `export default {
  async fetch(request) {
    const res = await fetch('${API_ORIGIN}/v1/topics/nurse/code', {
      method: 'POST',
      headers: { 'Content-Type': 'application/json', Authorization: 'Bearer baseline' },
      body: await request.text(),
    });
    return new Response(res.body, { status: res.status, headers: { 'Content-Type': 'application/json' } });
  },
};
`;

// ---------------------------------------------------------------------------------------------
// Stand-in upstream: Miniflare's outboundService, answered in this Node process.
// ---------------------------------------------------------------------------------------------

interface StandInStats {
  tokenRequests: number;
  apiCalls: number;
  /** API calls answered 401: no token, one it never issued, or a revoked one. */
  apiRejected: number;
}

interface StandIn {
  stats: StandInStats;
  /** Every token handed out (a restarted instance's stand-in must still accept them). */
  issued: Set<string>;
  handler: (request: MfRequest) => Promise<MfResponse>;
  /** From now on the API answers 401 to the token issued last. */
  revokeCurrent(): void;
}

const API_ANSWER = JSON.stringify({ suggestions: [{ code: '2254', label: 'Registered nurse', score: 0.93 }] });
/** The baseline Worker's fixed token; every other token must have been issued by this stand-in. */
const BASELINE_TOKEN = 'baseline';

/**
 * Token endpoint: any path ending in /oauth2/token, answers a fresh token for an hour.
 * API: any other path; 200 with a small JSON answer when `Authorization: Bearer <token>` carries a
 * token it issued (and did not revoke), else 401. Bodies are read, as a real server would.
 */
function makeStandIn(issuedBefore: Set<string> = new Set()): StandIn {
  const stats: StandInStats = { tokenRequests: 0, apiCalls: 0, apiRejected: 0 };
  const issued = new Set([...issuedBefore, BASELINE_TOKEN]);
  const revoked = new Set<string>();
  let current: string | undefined;
  let seq = 0;
  // Real APIs send Content-Length with small JSON answers; the injector's buffered redaction path relies on it.
  const json = (body: string, status = 200) =>
    new MfResponse(body, { status, headers: { 'Content-Type': 'application/json', 'Content-Length': String(Buffer.byteLength(body)) } });
  return {
    stats,
    issued,
    revokeCurrent: () => {
      if (current !== undefined) revoked.add(current);
    },
    handler: async (request) => {
      const url = new URL(request.url);
      await request.arrayBuffer();
      if (url.pathname.endsWith('/oauth2/token')) {
        stats.tokenRequests++;
        if (PARAMS.tokenDelayMs > 0) await sleep(PARAMS.tokenDelayMs);
        current = `tok_${++seq}_${Math.random().toString(36).slice(2, 10)}${Math.random().toString(36).slice(2, 10)}`;
        issued.add(current);
        return json(JSON.stringify({ access_token: current, token_type: 'bearer', expires_in: 3600 }));
      }
      stats.apiCalls++;
      if (PARAMS.apiDelayMs > 0) await sleep(PARAMS.apiDelayMs);
      const token = (request.headers.get('Authorization') ?? '').replace(/^Bearer /, '');
      if (!issued.has(token) || revoked.has(token)) {
        stats.apiRejected++;
        return json('{"error":"invalid_token"}', 401);
      }
      return json(API_ANSWER);
    },
  };
}

// ---------------------------------------------------------------------------------------------
// Miniflare instances
// ---------------------------------------------------------------------------------------------

interface Instance {
  name: string;
  mf: Miniflare;
  standIn: StandIn;
  /** The workerd process of this instance, when it could be told apart (Linux /proc). */
  workerdPid: number | undefined;
  startupMs: number;
}

/**
 * What the Worker and its Durable Object logged, by `event` (their log lines are JSON): a cross-check
 * on the stand-in's counts (`request`: one per request; `token_fetched`, `token_invalidated`, `token_budget_blocked`, …).
 */
const events: Record<string, number> = {};
const otherLogLines: string[] = [];

function countLog(message: string): void {
  let event = 'other';
  try {
    const parsed = JSON.parse(message) as { event?: unknown };
    if (typeof parsed.event === 'string') event = parsed.event;
  } catch {
    // Not one of ours.
  }
  events[event] = (events[event] ?? 0) + 1;
  if (event === 'other' && otherLogLines.length < 20) otherLogLines.push(message.slice(0, 300));
}

const live = new Set<Miniflare>();

/** A Miniflare instance with its own stand-in; `issued`: tokens a previous instance's stand-in issued. */
async function startInstance(name: string, kind: 'injector' | 'baseline', persistPath?: string, issued?: Set<string>): Promise<Instance> {
  const standIn = makeStandIn(issued);
  const before = childPids();
  const t0 = performance.now();
  const source =
    kind === 'injector'
      ? {
          scriptPath: SCRIPT_PATH,
          modules: true,
          // Module names are relative to this; a bundle outside the working directory needs it.
          modulesRoot: dirname(SCRIPT_PATH),
          durableObjects: { TOKEN_STORE: { className: 'TokenStore', useSQLite: true } },
          bindings: { UPSTREAMS, ROUTES, BENCH_SECRET: SECRET },
        }
      : { script: BASELINE_SCRIPT, modules: true };
  const mf = new Miniflare(
    convertV4MiniflareOptions({
      name,
      compatibilityDate: COMPATIBILITY_DATE,
      compatibilityFlags: COMPATIBILITY_FLAGS,
      ...source,
      outboundService: standIn.handler,
      // Per-request log lines would cost a round trip to Node each; the bench reads none.
      logRequests: false,
      // Only to read the isolate's V8 heap (and, with --profile, a CPU profile) at the end.
      inspectorPort: 0,
      unsafeInspectorProxy: true,
      // Counted, not printed: stdout is the Markdown report.
      handleStructuredLogs: (log) => countLog(log.message),
      ...(persistPath === undefined ? {} : { resourcePersistencePath: persistPath }),
    }),
  );
  live.add(mf);
  await mf.ready;
  const startupMs = performance.now() - t0;
  const workerdPid = [...childPids()].filter((p) => !before.has(p)).find((p) => procName(p) === 'workerd');
  return { name, mf, standIn, workerdPid, startupMs };
}

async function stop(i: Instance): Promise<void> {
  live.delete(i.mf);
  await i.mf.dispose();
}

const sendTo = (i: Instance) => () => i.mf.dispatchFetch(WORKER_URL, { method: 'POST', headers: REQUEST_HEADERS, body: REQUEST_BODY });

// ---------------------------------------------------------------------------------------------
// Load
// ---------------------------------------------------------------------------------------------

interface LoadRun {
  requests: number;
  wallMs: number;
  latencies: number[];
  /** Answers by status; anything but 200 is an error. */
  statuses: Record<string, number>;
  /** Stopped by the phase time limit before all requests were sent. */
  truncated: boolean;
  /** CPU spent meanwhile by the instance's workerd process and by this Node process, in ms. */
  cpu: { workerdMs: number; nodeMs: number };
}

/** `n` requests, `c` at a time; each latency is request sent → body read. */
async function load(send: () => Promise<{ status: number; arrayBuffer(): Promise<ArrayBuffer> }>, n: number, c: number): Promise<LoadRun> {
  const latencies: number[] = [];
  const statuses: Record<string, number> = {};
  const limitMs = PARAMS.phaseSeconds * 1000;
  let next = 0;
  const t0 = performance.now();
  const worker = async () => {
    while (next < n && performance.now() - t0 < limitMs) {
      next++;
      const s = performance.now();
      let status: string;
      try {
        const res = await send();
        await res.arrayBuffer();
        status = String(res.status);
      } catch (e) {
        status = e instanceof Error ? e.name : 'error';
      }
      latencies.push(performance.now() - s);
      statuses[status] = (statuses[status] ?? 0) + 1;
    }
  };
  await Promise.all(Array.from({ length: Math.min(c, n) }, worker));
  return { requests: latencies.length, wallMs: performance.now() - t0, latencies, statuses, truncated: latencies.length < n, cpu: { workerdMs: NaN, nodeMs: NaN } };
}

/** `load` against one instance, with the CPU time its workerd and this process spend meanwhile. */
async function run(i: Instance, n: number, c: number): Promise<LoadRun> {
  const w0 = cpuMsOf(i.workerdPid);
  const n0 = process.cpuUsage();
  const r = await load(sendTo(i), n, c);
  const w1 = cpuMsOf(i.workerdPid);
  const n1 = process.cpuUsage(n0);
  r.cpu = { workerdMs: w0 === undefined || w1 === undefined ? NaN : w1 - w0, nodeMs: (n1.user + n1.system) / 1000 };
  return r;
}

/** `c` requests at the same moment. */
const burst = (i: Instance, c: number) => run(i, c, c);

function merge(runs: LoadRun[]): LoadRun {
  const statuses: Record<string, number> = {};
  for (const r of runs) for (const [k, v] of Object.entries(r.statuses)) statuses[k] = (statuses[k] ?? 0) + v;
  return {
    requests: runs.reduce((a, r) => a + r.requests, 0),
    wallMs: runs.reduce((a, r) => a + r.wallMs, 0),
    latencies: runs.flatMap((r) => r.latencies),
    statuses,
    truncated: runs.some((r) => r.truncated),
    cpu: {
      workerdMs: runs.reduce((a, r) => a + r.cpu.workerdMs, 0),
      nodeMs: runs.reduce((a, r) => a + r.cpu.nodeMs, 0),
    },
  };
}

// ---------------------------------------------------------------------------------------------
// Statistics and measurements
// ---------------------------------------------------------------------------------------------

interface Summary {
  requests: number;
  concurrency: number;
  reqPerSec: number;
  p50: number;
  p95: number;
  p99: number;
  max: number;
  errors: number;
  statuses: Record<string, number>;
  truncated: boolean;
  /** CPU per request (µs) of the instance's workerd process, and of the Node load generator + stand-in. */
  workerdCpuUsPerReq: number;
  nodeCpuUsPerReq: number;
}

function summarise(run: LoadRun, concurrency: number): Summary {
  const sorted = Float64Array.from(run.latencies).sort();
  const pct = (p: number) => (sorted.length === 0 ? NaN : sorted[Math.min(sorted.length - 1, Math.ceil((p / 100) * sorted.length) - 1)]!);
  return {
    requests: run.requests,
    concurrency,
    reqPerSec: run.requests / (run.wallMs / 1000),
    p50: pct(50),
    p95: pct(95),
    p99: pct(99),
    max: sorted.length === 0 ? NaN : sorted[sorted.length - 1]!,
    errors: Object.entries(run.statuses).reduce((a, [k, v]) => (k === '200' ? a : a + v), 0),
    statuses: run.statuses,
    truncated: run.truncated,
    workerdCpuUsPerReq: (run.cpu.workerdMs * 1000) / run.requests,
    nodeCpuUsPerReq: (run.cpu.nodeMs * 1000) / run.requests,
  };
}

const median = (xs: number[]) => {
  const s = [...xs].sort((a, b) => a - b);
  return s.length === 0 ? NaN : s.length % 2 === 1 ? s[(s.length - 1) / 2]! : (s[s.length / 2 - 1]! + s[s.length / 2]!) / 2;
};

/** A DevTools protocol session with one Worker's isolate, through Miniflare's inspector proxy. */
class Inspector {
  private ws: WebSocket;
  private seq = 0;
  private waiting = new Map<number, { resolve: (v: unknown) => void; reject: (e: Error) => void }>();

  private constructor(ws: WebSocket) {
    this.ws = ws;
    ws.onmessage = (m) => {
      const msg = JSON.parse(String(m.data)) as { id?: number; result?: unknown; error?: { message: string } };
      const w = msg.id === undefined ? undefined : this.waiting.get(msg.id);
      if (w === undefined) return;
      this.waiting.delete(msg.id!);
      if (msg.error !== undefined) w.reject(new Error(msg.error.message));
      else w.resolve(msg.result);
    };
  }

  static async open(i: Pick<Instance, 'mf' | 'name'>): Promise<Inspector> {
    const url = await i.mf.getInspectorURL();
    // The proxy refuses upgrades without a local Origin.
    const ws = new WebSocket(`ws://${url.host}/${i.name}`, { headers: { Origin: 'http://localhost' } });
    await new Promise<void>((resolve, reject) => {
      ws.onopen = () => resolve();
      ws.onerror = () => reject(new Error('inspector connection failed'));
      setTimeout(() => reject(new Error('inspector connection timed out')), 5000).unref();
    });
    return new Inspector(ws);
  }

  send<T>(method: string, params: Record<string, unknown> = {}): Promise<T> {
    const id = ++this.seq;
    return new Promise<T>((resolve, reject) => {
      this.waiting.set(id, { resolve: resolve as (v: unknown) => void, reject });
      this.ws.send(JSON.stringify({ id, method, params }));
      setTimeout(() => reject(new Error(`${method} timed out`)), 10_000).unref();
    });
  }

  close(): void {
    this.ws.close();
  }
}

interface HeapUsage {
  /** Used before the GC: live data plus garbage not yet collected. */
  beforeGcMiB: number;
  /** Live data after a full GC. */
  usedMiB: number;
  /** Heap V8 holds after the GC. */
  totalMiB: number;
}

/**
 * The isolate's V8 heap (the Worker and its Durable Object share one isolate), before and after a
 * full GC. workerd's inspector does not answer `HeapProfiler.collectGarbage`; a heap snapshot
 * forces the GC instead (its chunks are discarded).
 */
async function heapOf(i: Instance): Promise<HeapUsage | { error: string }> {
  let insp: Inspector | undefined;
  try {
    insp = await Inspector.open(i);
    const before = await insp.send<{ usedSize: number }>('Runtime.getHeapUsage');
    await insp.send('HeapProfiler.takeHeapSnapshot', { reportProgress: false });
    const h = await insp.send<{ usedSize: number; totalSize: number }>('Runtime.getHeapUsage');
    return { beforeGcMiB: before.usedSize / 2 ** 20, usedMiB: h.usedSize / 2 ** 20, totalMiB: h.totalSize / 2 ** 20 };
  } catch (e) {
    return { error: e instanceof Error ? e.message : String(e) };
  } finally {
    insp?.close();
  }
}

interface ProfileNode {
  id: number;
  callFrame: { functionName: string; url: string; lineNumber: number; columnNumber: number };
  hitCount?: number;
}

interface HotSpot {
  self: number;
  where: string;
}

/** Self time by function during `run`, mapped back to src/ through the bundle's source map. */
async function profile(i: Pick<Instance, 'mf' | 'name'>, work: () => Promise<unknown>, file = 'injector.cpuprofile'): Promise<{ samples: number; top: HotSpot[] }> {
  const insp = await Inspector.open(i);
  try {
    await insp.send('Profiler.enable');
    await insp.send('Profiler.setSamplingInterval', { interval: 100 });
    await insp.send('Profiler.start');
    await work();
    const { profile: p } = await insp.send<{ profile: { nodes: ProfileNode[] } }>('Profiler.stop');
    writeFileSync(join(OUT_DIR, file), JSON.stringify(p));
    let map: SourceMap | undefined;
    try {
      map = new SourceMap(JSON.parse(readFileSync(`${SCRIPT_PATH}.map`, 'utf8')));
    } catch {
      map = undefined;
    }
    const byPlace = new Map<string, number>();
    let samples = 0;
    for (const n of p.nodes) {
      const hits = n.hitCount ?? 0;
      if (hits === 0) continue;
      samples += hits;
      const f = n.callFrame;
      let where = f.functionName !== '' ? f.functionName : f.url === '' ? '(runtime: native work with no JS frame)' : '(anonymous)';
      if (f.url === '' && f.functionName !== '' && !f.functionName.startsWith('(')) where += ' (built-in)';
      if (f.url !== '') {
        const e = map?.findEntry(f.lineNumber, f.columnNumber);
        where +=
          e !== undefined && 'originalSource' in e && e.originalSource !== undefined
            ? ` ${shortSource(e.originalSource)}:${e.originalLine + 1}`
            : ` ${f.url.split('/').pop()}:${f.lineNumber + 1}`;
      }
      byPlace.set(where, (byPlace.get(where) ?? 0) + hits);
    }
    const top = [...byPlace].sort((a, b) => b[1] - a[1]).slice(0, 20).map(([where, hits]) => ({ where, self: hits / samples }));
    return { samples, top };
  } finally {
    insp.close();
  }
}

function shortSource(s: string): string {
  const path = s.replace(/^file:\/\//, '');
  const m = /node_modules\/(.+)$/.exec(path);
  return m ? m[1]! : path.startsWith('/') ? relative(ROOT, path) : path.replace(/^(\.\.\/)+/, '');
}

// ---------------------------------------------------------------------------------------------
// Scenarios
// ---------------------------------------------------------------------------------------------

function build(): void {
  if (ARGS.has('--no-build') || process.env.BENCH_SCRIPT) return;
  rmSync(OUT_DIR, { recursive: true, force: true });
  mkdirSync(OUT_DIR, { recursive: true });
  const r = spawnSync(process.execPath, [join(ROOT, 'node_modules/wrangler/bin/wrangler.js'), 'deploy', '--dry-run', '--outdir', OUT_DIR], {
    cwd: ROOT,
    env: { ...process.env, WRANGLER_SEND_METRICS: 'false', CI: '1' },
    encoding: 'utf8',
  });
  if (r.status !== 0) {
    process.stderr.write(r.stdout + r.stderr);
    throw new Error(`wrangler build failed (exit ${r.status})`);
  }
}

const overTime = () => (performance.now() - started) / 1000 > PARAMS.totalSeconds;
const log = (s: string) => process.stderr.write(`[bench ${((performance.now() - started) / 1000).toFixed(1)}s] ${s}\n`);

interface Results {
  [key: string]: unknown;
}

async function main(): Promise<void> {
  const results: Results = {
    when: new Date().toISOString(),
    command: `node bench/run.ts ${process.argv.slice(2).join(' ')}`.trim(),
    node: process.version,
    miniflare: JSON.parse(readFileSync(join(ROOT, 'node_modules/miniflare/package.json'), 'utf8')).version as string,
    machine: { cpus: cpus().length, loadavg1: loadavg()[0], totalMemMiB: Math.round(totalmem() / 2 ** 20) },
    params: PARAMS,
  };
  log(ARGS.has('--no-build') || process.env.BENCH_SCRIPT ? `using ${relative(ROOT, SCRIPT_PATH)} as built` : 'building the Worker bundle');
  const tb = performance.now();
  build();
  results.buildMs = Math.round(performance.now() - tb);
  results.bundleKiB = Math.round(readFileSync(SCRIPT_PATH).length / 1024);

  let text = ARGS.has('--only-pacing') ? header(results) : await injector(results);
  if (PACING) {
    // Its own instances and its own time bound (≈ 60 s): not cut short by BENCH_TOTAL_SECONDS.
    log('pacing and coalescing');
    const pacing = await benchPacing({
      scriptPath: SCRIPT_PATH,
      compatibilityDate: COMPATIBILITY_DATE,
      compatibilityFlags: COMPATIBILITY_FLAGS,
      apiDelayMs: PARAMS.apiDelayMs,
      onLog: countLog,
      log,
      ...(ARGS.has('--profile') ? { profile: (mf: Miniflare, work: () => Promise<unknown>) => profile({ mf, name: 'injector' }, work, 'pacing.cpuprofile') } : {}),
      track: (mf) => live.add(mf),
      untrack: (mf) => live.delete(mf),
    });
    results.pacing = pacing;
    text += `${pacingReport(pacing).join('\n')}\n`;
  }
  const logged = Object.entries(events).map(([k, v]) => `${k} ×${v}`);
  text += `\nLogged by the Worker and its Durable Objects (all instances): ${logged.length === 0 ? 'nothing' : logged.join(', ')}.\n`;
  Object.assign(results, { events, otherLogLines, totalSeconds: (performance.now() - started) / 1000 });
  writeFileSync(RESULTS_PATH, `${JSON.stringify(results, null, 2)}\n`);
  process.stdout.write(text);
}

/** Scenarios (a)–(d): the injector against the pass-through baseline. Returns their report. */
async function injector(results: Results): Promise<string> {
  const checks: string[] = [];
  const expect = (what: string, got: number, want: number) => {
    if (got !== want) checks.push(`${what}: ${got}, expected ${want}`);
  };

  const { concurrency: C, rounds } = PARAMS;
  const perRound = Math.max(1, Math.floor(PARAMS.requests / rounds));

  // (a, b) Baseline and warm injector, alternating rounds on two long-lived instances.
  log('starting baseline and injector');
  const base = await startInstance('baseline', 'baseline');
  const inj = await startInstance('injector', 'injector');
  await run(base, PARAMS.warmup, C);
  await run(inj, PARAMS.warmup, C);
  expect('warm-up token requests', inj.standIn.stats.tokenRequests, 1);
  // Live heap now and after the measured load: growth between the two would be retention.
  const injectorHeapAfterWarmup = await heapOf(inj);
  const tokensBeforeWarm = inj.standIn.stats.tokenRequests;
  const baseRuns: LoadRun[] = [];
  const warmRuns: LoadRun[] = [];
  for (let r = 0; r < rounds && !overTime(); r++) {
    log(`round ${r + 1}/${rounds}: ${perRound} requests each, C=${C}`);
    // Alternate which goes first, so neither always runs on a machine the other has just heated.
    const order = r % 2 === 0 ? [base, inj] : [inj, base];
    for (const i of order) (i === base ? baseRuns : warmRuns).push(await run(i, perRound, C));
  }
  const warmTokenRequests = inj.standIn.stats.tokenRequests - tokensBeforeWarm;
  expect('token requests during warm load', warmTokenRequests, 0);
  const baseline = summarise(merge(baseRuns), C);
  const warm = summarise(merge(warmRuns), C);
  // Injector / baseline per round (each pair ran back to back), then the median over rounds: one
  // round disturbed by another process on the machine moves the median little.
  const pairs = warmRuns.flatMap((w, k) => (baseRuns[k] === undefined ? [] : [[summarise(w, C), summarise(baseRuns[k]!, C)] as const]));
  const ratioOf = (key: RatioKey): RatioStat => {
    const perRound = pairs.map(([w, b]) => w[key] / b[key]);
    return { median: median(perRound), min: Math.min(...perRound), max: Math.max(...perRound), perRound };
  };
  const ratio: Ratio = {
    reqPerSec: ratioOf('reqPerSec'),
    p50: ratioOf('p50'),
    p95: ratioOf('p95'),
    p99: ratioOf('p99'),
    workerdCpuUsPerReq: ratioOf('workerdCpuUsPerReq'),
  };

  // Memory after the warm load, before anything else runs on these instances.
  const memory: Memory = {
    baselineHeap: await heapOf(base),
    injectorHeapAfterWarmup,
    injectorHeap: await heapOf(inj),
    baselineWorkerdRss: rssOf(base.workerdPid),
    injectorWorkerdRss: rssOf(inj.workerdPid),
    nodeRssMiB: process.memoryUsage().rss / 2 ** 20,
  };

  // (d) Token rejection: a warm reference burst, then a burst against a revoked token.
  const refRuns: LoadRun[] = [];
  const recRuns: LoadRun[] = [];
  const recoveryTokens: number[] = [];
  const recoveryRejections: number[] = [];
  for (let r = 0; r < PARAMS.recoveryRounds && !overTime(); r++) {
    refRuns.push(await burst(inj, C));
    const s = inj.standIn.stats;
    const [tokens, rejected] = [s.tokenRequests, s.apiRejected];
    inj.standIn.revokeCurrent();
    recRuns.push(await burst(inj, C));
    recoveryTokens.push(s.tokenRequests - tokens);
    recoveryRejections.push(s.apiRejected - rejected);
    expect(`recovery round ${r + 1} token requests`, s.tokenRequests - tokens, 1);
  }
  log(`recovery: ${recRuns.length} rounds, token requests per round ${recoveryTokens.join(',')}`);

  // Optional CPU profile of the warm injector isolate (not part of the table).
  let hotSpots: Profile | undefined;
  if (ARGS.has('--profile') && !overTime()) {
    log('profiling the warm injector isolate');
    hotSpots = await profile(inj, () => run(inj, perRound, C));
  }
  await stop(base);
  await stop(inj);

  // (c) A burst on a fresh Miniflare, then a warm burst on the same instance for reference;
  // (c′) the same storage behind a fresh isolate: the token comes from the Durable Object.
  const coldRuns: LoadRun[] = [];
  const afterColdRuns: LoadRun[] = [];
  const restartRuns: LoadRun[] = [];
  const coldTokens: number[] = [];
  const restartTokens: number[] = [];
  const startups: number[] = [];
  for (let r = 0; r < PARAMS.coldRounds && !overTime(); r++) {
    const persist = join(OUT_DIR, `state-${r}`);
    rmSync(persist, { recursive: true, force: true });
    const cold = await startInstance('injector', 'injector', persist);
    startups.push(cold.startupMs);
    coldRuns.push(await burst(cold, C));
    coldTokens.push(cold.standIn.stats.tokenRequests);
    expect(`cold round ${r + 1} token requests`, cold.standIn.stats.tokenRequests, 1);
    afterColdRuns.push(await burst(cold, C));
    await stop(cold);
    const again = await startInstance('injector', 'injector', persist, cold.standIn.issued);
    restartRuns.push(await burst(again, C));
    restartTokens.push(again.standIn.stats.tokenRequests);
    expect(`restart round ${r + 1} token requests`, again.standIn.stats.tokenRequests, 0);
    await stop(again);
  }
  log(`cold: ${coldRuns.length} rounds, token requests ${coldTokens.join(',')}; restart: ${restartTokens.join(',')}`);

  const burstOf = (runs: LoadRun[], label: string, what: string, tokens: string): Scenario => ({
    ...summarise(merge(runs), C),
    label,
    what,
    tokens,
    rounds: runs.length,
    burstWallMsMedian: median(runs.map((r) => r.wallMs)),
  });
  const per = (xs: number[]) => (xs.length === 0 ? '–' : `${xs.join(', ')} (per burst)`);
  const scenarios: Record<string, Scenario> = {
    baseline: { ...baseline, label: '(a) baseline: pass-through Worker', what: 'cost floor: workerd + Miniflare + stand-in', tokens: '–' },
    warm: { ...warm, label: '(b) injector, warm', what: 'token cached in the isolate', tokens: String(warmTokenRequests) },
    cold: burstOf(coldRuns, `(c) injector, cold burst ×${coldRuns.length}`, 'fresh Miniflare, C requests at once (start-up not included)', per(coldTokens)),
    afterCold: burstOf(afterColdRuns, '(c) ref: next burst, same instance', 'warm burst right after each cold burst', '0'),
    restart: burstOf(restartRuns, `(c′) fresh isolate, token in the DO ×${restartRuns.length}`, 'restart over the same storage: token from the TokenStore', per(restartTokens)),
    recoveryReference: burstOf(refRuns, '(d) ref: warm burst', 'warm burst just before each rejection', '0'),
    recovery: burstOf(recRuns, `(d) token rejected once ×${recRuns.length}`, 'the API answers 401 to the current token', per(recoveryTokens)),
  };
  for (const [name, s] of Object.entries(scenarios)) if (s.errors > 0) checks.push(`${name}: ${s.errors} non-200 answers ${JSON.stringify(s.statuses)}`);
  const extra = {
    coldBurstMs: scenarios.cold!.burstWallMsMedian! - scenarios.afterCold!.burstWallMsMedian!,
    restartBurstMs: scenarios.restart!.burstWallMsMedian! - scenarios.afterCold!.burstWallMsMedian!,
    recoveryBurstMs: scenarios.recovery!.burstWallMsMedian! - scenarios.recoveryReference!.burstWallMsMedian!,
    recoveryP50Ms: scenarios.recovery!.p50 - scenarios.recoveryReference!.p50,
    recoveryApiRejectionsPerBurst: recoveryRejections,
    startupMsMedian: median(startups),
  };

  Object.assign(results, { scenarios, ratio, extra, memory, memoryNote: MEMORY_NOTE, profile: hotSpots, checks });
  return report(results, scenarios, ratio, extra, memory, hotSpots, checks);
}

// ---------------------------------------------------------------------------------------------
// Report
// ---------------------------------------------------------------------------------------------

interface Scenario extends Summary {
  label: string;
  what: string;
  /** Token requests the stand-in saw. */
  tokens: string;
  rounds?: number;
  /** Bursts: median time from the first request sent to the last answer read. */
  burstWallMsMedian?: number;
}

type RatioKey = 'reqPerSec' | 'p50' | 'p95' | 'p99' | 'workerdCpuUsPerReq';

/** Injector / baseline over the alternating rounds. */
interface RatioStat {
  median: number;
  min: number;
  max: number;
  perRound: number[];
}

type Ratio = Record<RatioKey, RatioStat>;

interface Memory {
  baselineHeap: HeapUsage | { error: string };
  injectorHeapAfterWarmup: HeapUsage | { error: string };
  injectorHeap: HeapUsage | { error: string };
  baselineWorkerdRss: { rssMiB: number; peakMiB: number } | undefined;
  injectorWorkerdRss: { rssMiB: number; peakMiB: number } | undefined;
  nodeRssMiB: number;
}

type Profile = Awaited<ReturnType<typeof profile>>;

const MEMORY_NOTE =
  'workerd reports no per-isolate RSS. The per-Worker figure is the isolate\'s V8 heap (inspector Runtime.getHeapUsage, after a heap ' +
  'snapshot has forced a full GC); the injector isolate also hosts its TokenStore Durable Object. workerd RSS covers the ' +
  'runtime and Miniflare\'s internal Workers too; the Node RSS is the load generator and stand-in, not a Worker.';

/** The report's title and the run's conditions. */
function header(results: Results): string {
  const m = results.machine as { cpus: number; loadavg1: number };
  return [
    `## edge-token-injector under Miniflare ${results.miniflare as string} (${results.when as string})`,
    '',
    `Node ${results.node as string}, ${m.cpus} CPUs (load ${m.loadavg1.toFixed(2)} at start); bundle ${results.bundleKiB as number} KiB; C = ${PARAMS.concurrency}. ` +
      'Load generator, stand-in upstream and workerd share the machine: compare rows of one run, not absolute numbers.',
    '',
  ].join('\n');
}

function report(results: Results, s: Record<string, Scenario>, ratio: Ratio, extra: Record<string, number | number[]>, memory: Memory, hot: Profile | undefined, checks: string[]): string {
  const f = (x: number | undefined, d = 1) => (x === undefined || Number.isNaN(x) ? '–' : x.toFixed(d));
  const lines = [
    header(results),
    '| Scenario | Requests | req/s | p50 ms | p95 ms | p99 ms | burst ms (median) | workerd CPU µs/req | Node CPU µs/req | Token requests |',
    '|---|---:|---:|---:|---:|---:|---:|---:|---:|---|',
  ];
  for (const x of Object.values(s)) {
    lines.push(
      `| ${x.label} | ${x.requests}${x.truncated ? ' (time limit)' : ''} | ${f(x.reqPerSec, 0)} | ${f(x.p50)} | ${f(x.p95)} | ${f(x.p99)} | ` +
        `${f(x.burstWallMsMedian)} | ${f(x.workerdCpuUsPerReq, 0)} | ${f(x.nodeCpuUsPerReq, 0)} | ${x.tokens} |`,
    );
  }
  const n = (k: string) => extra[k] as number;
  const signed = (x: number) => (Number.isNaN(x) ? '–' : `${x < 0 ? '−' : '+'}${f(Math.abs(x), 0)}`);
  lines.push(
    '',
    `**Injector / baseline**, median of ${ratio.p50.perRound.length} back-to-back rounds (min–max): ` +
      (
        [
          ['workerd CPU per request', 'workerdCpuUsPerReq'],
          ['req/s', 'reqPerSec'],
          ['p50', 'p50'],
          ['p95', 'p95'],
          ['p99', 'p99'],
        ] as const
      )
        .map(([label, k]) => `${label} ×${f(ratio[k].median, 2)} (${f(ratio[k].min, 2)}–${f(ratio[k].max, 2)})`)
        .join(', ') +
      '. CPU per request is the steadiest figure here; latency moves with whatever else the machine runs.',
    `**Cold:** a burst on a fresh instance vs the next burst on it: ${signed(n('coldBurstMs'))} ms (median); ` +
      `a fresh isolate over a stored token: ${signed(n('restartBurstMs'))} ms; Miniflare start-up ${f(n('startupMsMedian'), 0)} ms (not in the bursts).`,
    `**Token rejection:** ${signed(n('recoveryBurstMs'))} ms per burst (median), p50 ${signed(n('recoveryP50Ms'))} ms; ` +
      `API 401s per burst: ${(extra.recoveryApiRejectionsPerBurst as number[]).join(', ')}.`,
    '',
    '| Memory | Figure |',
    '|---|---|',
  );
  const heap = (h: HeapUsage | { error: string }) =>
    'error' in h ? `n/a (${h.error})` : `${f(h.usedMiB, 2)} MiB live after GC (${f(h.beforeGcMiB, 2)} MiB before; ${f(h.totalMiB, 2)} MiB held)`;
  const rss = (r: { rssMiB: number; peakMiB: number } | undefined) => (r === undefined ? 'n/a' : `${f(r.rssMiB, 0)} MiB (peak ${f(r.peakMiB, 0)} MiB)`);
  lines.push(
    `| V8 heap, baseline isolate, after the load | ${heap(memory.baselineHeap)} |`,
    `| V8 heap, injector isolate (incl. TokenStore), after warm-up | ${heap(memory.injectorHeapAfterWarmup)} |`,
    `| V8 heap, injector isolate (incl. TokenStore), after the load | ${heap(memory.injectorHeap)} |`,
    `| workerd RSS, baseline instance | ${rss(memory.baselineWorkerdRss)} |`,
    `| workerd RSS, injector instance | ${rss(memory.injectorWorkerdRss)} |`,
    `| Node RSS (load generator + stand-in, not a Worker) | ${f(memory.nodeRssMiB, 0)} MiB |`,
    '',
    MEMORY_NOTE,
  );
  if (hot !== undefined) {
    lines.push('', `**CPU profile, warm injector isolate** (${hot.samples} samples at 100 µs, self time; bench/.out/injector.cpuprofile):`, '', '| Self | Where |', '|---:|---|');
    for (const h of hot.top) lines.push(`| ${(h.self * 100).toFixed(1)} % | ${h.where.replace(/\|/g, '\\|')} |`);
  }
  lines.push('', checks.length === 0 ? 'Checks: as expected (token requests counted, every answer 200).' : `**Unexpected:** ${checks.join('; ')}`, '');
  return lines.join('\n');
}

// ---------------------------------------------------------------------------------------------

function envInt(name: string, fallback: number): number {
  const v = Number(process.env[name]);
  return Number.isInteger(v) && v > 0 ? v : fallback;
}

function sleep(ms: number): Promise<void> {
  return new Promise((r) => setTimeout(r, ms));
}

async function disposeAll(): Promise<void> {
  await Promise.allSettled([...live].map((mf) => mf.dispose()));
}

process.on('SIGINT', () => void disposeAll().finally(() => process.exit(130)));

try {
  await main();
} catch (e) {
  process.stderr.write(`bench failed: ${e instanceof Error ? (e.stack ?? e.message) : String(e)}\n`);
  process.exitCode = 1;
} finally {
  await disposeAll();
}
