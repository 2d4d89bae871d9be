/**
 * @module Load generator for the pacing bench, in its own process so its CPU is its own: sends
 * single-record coding submissions to the Worker's socket open-loop (each at its scheduled time,
 * however many are still waiting) or all at once, and reports each one's latency, status and
 * whether the answer carried the submitter's own codes.
 *
 * `node bench/load.ts '<LoadSpec as JSON>'` writes one `LoadReport` as JSON to stdout. Latency is
 * taken from the scheduled send time, so a generator that falls behind shows up as latency (and as
 * `lagMs`), never as load quietly not offered.
 */
import { Agent, request } from 'node:http';
import { codesFor } from '../test/standin/coder.ts';

export interface LoadSpec {
  /** The Worker's direct socket and path, e.g. http://127.0.0.1:PORT/api/code/occp. */
  url: string;
  headers: Record<string, string>;
  /** Makes each submission's text unique across phases and runs. */
  tag: string;
  /** Open loop: `rate` submissions per second for `seconds`; burst: `count` at once. */
  load: { kind: 'rate'; rate: number; seconds: number } | { kind: 'burst'; count: number };
  /** A submission not answered within this long counts as `timeout`. */
  timeoutMs: number;
}

/** One submission: [scheduled ms after t0, send lag ms, latency ms from scheduled, status, own codes 1/0]. */
export type Sample = [number, number, number, string, 0 | 1];

export interface LoadReport {
  /** t0 as epoch ms (the stand-in's clock is Date.now() in another process on this machine). */
  t0Epoch: number;
  samples: Sample[];
  /** This process's CPU time while sending and reading (ms). */
  cpuMs: number;
  wallMs: number;
  /** Sockets the agent opened (each is a connection workerd accepted). */
  sockets: number;
}

/** The body of submission `i`: a text of its own, within the API's 100 characters for both fields. */
export function submission(tag: string, i: number): { occp_text: string; tasks_text: string } {
  return { occp_text: `bench occupation ${tag}-${i}`, tasks_text: 'patient care, ward rounds' };
}

async function main(spec: LoadSpec): Promise<LoadReport> {
  const agent = new Agent({ keepAlive: true, maxSockets: Infinity });
  let sockets = 0;
  const url = new URL(spec.url);
  const samples: Sample[] = [];
  const cpu0 = process.cpuUsage();
  const t0 = performance.now();
  const t0Epoch = Date.now();

  const send = (i: number, scheduled: number) =>
    new Promise<void>((done) => {
      const sub = submission(spec.tag, i);
      const body = JSON.stringify(sub);
      const own = codesFor(sub.occp_text, sub.tasks_text)[0]!.codeCategory;
      const lag = performance.now() - t0 - scheduled;
      let settled = false;
      const finish = (status: string, ok: boolean) => {
        if (settled) return;
        settled = true;
        samples.push([scheduled, lag, performance.now() - t0 - scheduled, status, ok ? 1 : 0]);
        done();
      };
      const req = request(
        { agent, host: url.hostname, port: url.port, path: url.pathname, method: 'POST', headers: { ...spec.headers, 'Content-Length': Buffer.byteLength(body) } },
        (res) => {
          const chunks: Buffer[] = [];
          res.on('data', (c: Buffer) => chunks.push(c));
          res.on('end', () => {
            let ok = false;
            if (res.statusCode === 200) {
              try {
                const a = JSON.parse(Buffer.concat(chunks).toString('utf8')) as { input?: { occp_text?: unknown }; result?: Array<{ codeCategory?: unknown }> };
                ok = a.input?.occp_text === sub.occp_text && a.result?.[0]?.codeCategory === own;
              } catch {
                ok = false;
              }
            }
            finish(String(res.statusCode), ok);
          });
          res.on('error', () => finish('reset', false));
        },
      );
      req.on('socket', (s) => {
        if (!(s as { counted?: boolean }).counted) {
          (s as { counted?: boolean }).counted = true;
          sockets++;
        }
      });
      req.setTimeout(spec.timeoutMs, () => {
        finish('timeout', false);
        req.destroy();
      });
      req.on('error', (e) => finish((e as NodeJS.ErrnoException).code ?? 'error', false));
      req.end(body);
    });

  const pending: Array<Promise<void>> = [];
  if (spec.load.kind === 'burst') {
    for (let i = 0; i < spec.load.count; i++) pending.push(send(i, 0));
  } else {
    const { rate, seconds } = spec.load;
    const total = Math.round(rate * seconds);
    const at = (i: number) => (i * 1000) / rate;
    let i = 0;
    await new Promise<void>((all) => {
      // Each tick sends everything due by now (a late timer sends a few at once, still at their slot).
      const tick = () => {
        const now = performance.now() - t0;
        while (i < total && at(i) <= now) pending.push(send(i, at(i++)));
        if (i < total) setTimeout(tick, Math.max(0, at(i) - (performance.now() - t0)));
        else all();
      };
      tick();
    });
  }
  await Promise.all(pending);
  const wallMs = performance.now() - t0;
  const cpu = process.cpuUsage(cpu0);
  agent.destroy();
  return { t0Epoch, samples, cpuMs: (cpu.user + cpu.system) / 1000, wallMs, sockets };
}

if (import.meta.url === `file://${process.argv[1]}`) {
  const spec = JSON.parse(process.argv[2] ?? '') as LoadSpec;
  process.stdout.write(JSON.stringify(await main(spec)));
}
