/**
 * @module Pacer Durable Object: the one place that sees every call to a rate-limited upstream, so
 * calls leave at the API's pace and within its daily quota, and single-record submissions wait for
 * the next slot together and leave as one batch call.
 *
 * One object per credential set (named like its TokenStore, placed with the same location hint).
 * The rules live in policy.ts and coalesce.ts; this class holds the queue and applies them:
 * - `reserve`: a time for one call to leave at (the caller sleeps until then, then sends it);
 * - `submit`: a record joins the batch of submissions that agree on everything but the record; at
 *   each slot the oldest batch leaves (the token and egress are the upstream's, the answer goes
 *   through the usual answer path), and each submitter gets its own record's result. A batch the
 *   API refuses as a whole is split in halves, each paced as its own call, until the record it
 *   refuses is alone: only its submitter gets the refusal.
 * Nobody waits past the longest hold for a slot (503 + Retry-After) and a spent daily quota is a
 * 429 until the API's day ends. The pace (next free slot, the day's count) is in storage, so a
 * restart never allows a burst; waiting submitters are in memory, so a restart ends their calls
 * with an error their isolate turns into a clear 503 (never silence).
 */
import { DurableObject } from 'cloudflare:workers';
import { clock, secondsUntil } from '../clock';
import { ConfigError, type RouteConfig } from '../config/schema';
import { ACCEPT_ENCODING } from '../decode';
import type { Env } from '../env';
import { readFailure } from '../gateway/answer';
import { forward } from '../gateway/forward';
import { apiUrl, type ApiCall } from '../gateway/request';
import { logEvent } from '../log';
import { problem, ProblemError } from '../problem';
import { wiringFor, type Upstream } from '../upstream';
import { batchBody, halves, resultsById } from './coalesce';
import type { BatchItem, BatchOutcome, PacerApi, PacerRef, PacerUnavailable, PacingStatus } from './pacer-api';
import { emptyPaceState, paceRulesOf, quotaLeft, reserveSlot, type PaceRules, type PaceState, type SlotVerdict } from './policy';

/** A submitter waiting for its record's answer. */
interface Waiting {
  item: BatchItem;
  /** What its record and shared body weigh (JSON bytes): the queue's memory is bounded by it. */
  bytes: number;
  arrivedAt: number;
  /** When it stops waiting for a slot (arrival + the longest hold). */
  deadline: number;
  resolve: (o: BatchOutcome) => void;
}

/** Records that leave together: one key, the order they came in. */
interface Batch {
  key: string;
  route: RouteConfig;
  items: Waiting[];
  /** For the halves of a refused batch: the refusals spent on the batch they came from, and the most allowed. */
  split?: { refused: number; limit: number };
}

/** How many recent waits the percentiles are taken over. */
const WAIT_SAMPLES = 1_000;
/**
 * Most bytes of records waiting at once (a Durable Object has 128 MB): beyond it a submission is
 * told to come back (503), whatever the pace would allow.
 */
const MAX_WAITING_BYTES = 24 * 1024 * 1024;
/** Most bytes of one batch answer read (each record's result is limited by its route's max_answer_bytes). */
const MAX_BATCH_ANSWER_BYTES = 24 * 1024 * 1024;

export class Pacer extends DurableObject<Env> implements PacerApi {
  private state: PaceState | undefined;
  /** Submissions not yet sent, by batch key, in order of their oldest (a Map keeps insertion order). */
  private readonly queues = new Map<string, { route: RouteConfig; items: Waiting[] }>();
  /** Halves of a refused batch: they leave before anything new, each as its own call. */
  private readonly isolating: Batch[] = [];
  private readonly byId = new Map<string, Waiting>();
  private pumping = false;
  /** Wakes the pump from its sleep when a submission comes in. */
  private wake: (() => void) | undefined;
  /**
   * The pump's one timer, and when it fires. A wake-up that sleeps on to the same time reuses it:
   * a new timer per submission (300 a slot) all fire at the slot, and working through them held
   * each batch call ~0.3 s past its slot, so calls reached the API under 1 s apart (bench/).
   */
  private timer: { until: number; fired: Promise<void> } | undefined;
  /** Bytes of the records waiting now (MAX_WAITING_BYTES). */
  private waitingBytes = 0;
  private readonly stats = { batchesSent: 0, recordsSent: 0, largestBatch: 0, calls: [] as number[], waits: [] as number[] };

  async reserve(ref: PacerRef): Promise<SlotVerdict | PacerUnavailable> {
    const opened = await this.open(ref);
    if ('kind' in opened) return opened;
    const now = clock.now();
    const verdict = reserveSlot(this.pace(), opened.rules, now);
    if (verdict.kind === 'slot') this.took(verdict.at, now);
    return verdict;
  }

  async submit(ref: PacerRef, item: BatchItem): Promise<BatchOutcome | PacerUnavailable> {
    const opened = await this.open(ref);
    if ('kind' in opened) return opened;
    const { rules } = opened;
    const route = (await wiringFor(this.env)).config.routes[item.route];
    if (route === undefined || route.coalesce === undefined || route.upstream !== ref.upstream) {
      return { kind: 'unavailable', slug: 'config-changing', detail: 'the configuration is being updated; try again' };
    }
    const now = clock.now();
    const quota = quotaLeft(this.pace(), rules, Math.max(now, this.pace().nextAt));
    if (quota !== undefined && quota.left === 0) return quotaProblem(quota.resetsAt, rules.perDay!, now);
    // Hopeless already: more batches ahead of it than slots within the longest hold.
    const ahead = this.slotsAhead(item, route);
    const leavesAt = Math.max(now, this.pace().nextAt) + ahead * rules.intervalMs;
    if (leavesAt - now > rules.maxWaitMs) return busyProblem(leavesAt, now);
    const bytes = item.shared.length + JSON.stringify(item.record).length;
    if (this.waitingBytes + bytes > MAX_WAITING_BYTES) return busyProblem(Math.max(now, this.pace().nextAt) + rules.intervalMs, now);
    this.waitingBytes += bytes;
    return new Promise<BatchOutcome>((resolve) => {
      const w: Waiting = { item, bytes, arrivedAt: now, deadline: now + rules.maxWaitMs, resolve };
      this.byId.set(item.id, w);
      const key = batchKey(item);
      const q = this.queues.get(key) ?? { route, items: [] };
      q.items.push(w);
      this.queues.set(key, q);
      this.kick(opened.upstream, rules);
    });
  }

  async withdraw(ref: PacerRef, id: string): Promise<void> {
    const w = this.byId.get(id);
    // Already in a batch that left: too late, its answer is dropped.
    if (w === undefined || !this.takeOut(w)) return;
    this.answer(w, { kind: 'problem', slug: 'upstream-timeout', detail: 'the submitter went away before its batch was sent' });
    logEvent('pacing_withdrawn', { upstream: ref.upstream, route: w.item.route });
  }

  /**
   * Take `w` out of its queue, or out of a half of a refused batch not yet sent (a half is sent
   * again and again as it is split: no call is spent on a submitter gone). False once it has left.
   */
  private takeOut(w: Waiting): boolean {
    for (const [key, q] of this.queues) {
      const i = q.items.indexOf(w);
      if (i < 0) continue;
      q.items.splice(i, 1);
      if (q.items.length === 0) this.queues.delete(key);
      return true;
    }
    for (const [n, half] of this.isolating.entries()) {
      const i = half.items.indexOf(w);
      if (i < 0) continue;
      half.items.splice(i, 1);
      if (half.items.length === 0) this.isolating.splice(n, 1);
      return true;
    }
    return false;
  }

  async status(ref: PacerRef): Promise<PacingStatus | PacerUnavailable> {
    const opened = await this.open(ref);
    if ('kind' in opened) return opened;
    const { rules, upstream } = opened;
    const now = clock.now();
    const s = this.pace();
    const quota = quotaLeft(s, rules, now);
    const sorted = [...this.stats.waits].sort((a, b) => a - b);
    const pct = (p: number) => (sorted.length === 0 ? undefined : sorted[Math.min(sorted.length - 1, Math.floor(p * sorted.length))]);
    const p50 = pct(0.5);
    const p99 = pct(0.99);
    return {
      requestsPerSecond: upstream.settings.pacing!.requests_per_second,
      ...(rules.perDay === undefined ? {} : { perDay: rules.perDay }),
      callsLastMinute: this.stats.calls.filter((t) => now - t < 60_000).length,
      callsToday: quota === undefined ? this.stats.calls.length : rules.perDay! - quota.left,
      ...(quota === undefined ? {} : { quotaLeft: quota.left, quotaResetsAt: quota.resetsAt }),
      waitingNow: [...this.queues.values()].reduce((n, q) => n + q.items.length, 0) + this.isolating.reduce((n, b) => n + b.items.length, 0),
      batchesSent: this.stats.batchesSent,
      recordsSent: this.stats.recordsSent,
      largestBatch: this.stats.largestBatch,
      ...(p50 === undefined ? {} : { waitP50Ms: p50 }),
      ...(p99 === undefined ? {} : { waitP99Ms: p99 }),
    };
  }

  // ---- the pace ------------------------------------------------------------------------------

  /** The pace state, loaded once (its row is small; the synchronous KV read costs nothing). */
  private pace(): PaceState {
    this.state ??= this.ctx.storage.kv.get<PaceState>('pace') ?? emptyPaceState();
    return this.state;
  }

  /** A slot was taken: persist (a restart must not allow a burst) and count it. */
  private took(at: number, now: number): void {
    this.ctx.storage.kv.put('pace', this.pace());
    this.stats.calls = [...this.stats.calls.filter((t) => now - t < 60_000), at].slice(-10_000);
  }

  private sample(waitMs: number): void {
    this.stats.waits.push(waitMs);
    if (this.stats.waits.length > WAIT_SAMPLES) this.stats.waits.splice(0, this.stats.waits.length - WAIT_SAMPLES);
  }

  /** The credential set, once the caller is known to run the same config. */
  private async open(ref: PacerRef): Promise<{ upstream: Upstream; rules: PaceRules } | PacerUnavailable> {
    let upstream: Upstream | undefined;
    try {
      upstream = (await wiringFor(this.env)).upstreams.get(ref.upstream);
    } catch (e) {
      if (!(e instanceof ConfigError)) throw e;
      return { kind: 'unavailable', slug: 'invalid-configuration', detail: 'the Worker is misconfigured' };
    }
    if (upstream === undefined || upstream.fingerprint !== ref.fp || upstream.settings.pacing === undefined) {
      return { kind: 'unavailable', slug: 'config-changing', detail: 'the configuration is being updated; try again' };
    }
    return { upstream, rules: paceRulesOf(upstream.settings.pacing) };
  }

  // ---- batches -------------------------------------------------------------------------------

  /** Slots needed before a new record of `item`'s key could leave (whole batches ahead of it). */
  private slotsAhead(item: BatchItem, route: RouteConfig): number {
    const size = route.coalesce!.batch_size;
    let ahead = this.isolating.length;
    for (const [key, q] of this.queues) {
      ahead += key === batchKey(item) ? Math.floor(q.items.length / size) : Math.ceil(q.items.length / size);
    }
    return ahead;
  }

  /** Start the pump unless it runs; a sleeping pump is woken to look again. */
  private kick(upstream: Upstream, rules: PaceRules): void {
    if (this.pumping) {
      this.wake?.();
      return;
    }
    this.pumping = true;
    void this.pump(upstream, rules)
      .catch((e: unknown) => logEvent('pacing_pump_failed', { upstream: upstream.name, error: e instanceof Error ? e.name : typeof e }, 'error'))
      .finally(() => {
        this.pumping = false;
      });
  }

  /**
   * Send batches at the pace until nothing waits: at each slot the oldest batch (the halves of a
   * refused batch first), after gathering for `gather_ms` from its first record; anyone whose
   * longest hold passes first is answered 503.
   */
  private async pump(upstream: Upstream, rules: PaceRules): Promise<void> {
    for (;;) {
      const now = clock.now();
      this.expire(now);
      const next = this.isolating[0] ?? this.oldest();
      if (next === undefined) return;
      const gatherUntil = this.isolating.length > 0 ? now : next.items[0]!.arrivedAt + next.route.coalesce!.gather_ms;
      const full = next.items.length >= next.route.coalesce!.batch_size;
      const leaveAt = Math.max(this.pace().nextAt, full ? now : gatherUntil);
      if (leaveAt > now) {
        let earliestDeadline = Infinity;
        for (const w of this.allWaiting()) earliestDeadline = Math.min(earliestDeadline, w.deadline);
        await this.sleep(Math.min(leaveAt, earliestDeadline + 1), now);
        continue;
      }
      const batch = this.isolating.shift() ?? this.take(next);
      if (batch.split !== undefined && batch.split.refused >= batch.split.limit) {
        // The halving has spent what finding one bad record takes: this part is not sent.
        for (const w of batch.items) this.answer(w, abandoned());
        continue;
      }
      // The batch takes its slot once its token is in hand (at a rollover the token may be a few
      // seconds away): until then nothing else leaves, and nobody queued runs out of patience.
      const heldFrom = clock.now();
      const slot = await this.send(upstream, rules, batch);
      const held = clock.now() - heldFrom;
      if (held > 0) for (const w of this.allWaiting()) w.deadline += held;
      if (slot.kind === 'quota') {
        // The day's quota is spent: everyone waiting is told, nothing more leaves today.
        for (const w of this.allWaiting()) this.answer(w, quotaProblem(slot.resetsAt, slot.perDay, clock.now()));
        this.queues.clear();
        this.isolating.length = 0;
        return;
      }
    }
  }

  /** Sleep until `until`, or until woken by a new submission. */
  private async sleep(until: number, now: number): Promise<void> {
    if (this.timer?.until !== until) {
      const timer = { until, fired: clock.sleep(until - now) };
      this.timer = timer;
      void timer.fired.then(() => {
        if (this.timer === timer) this.timer = undefined;
      });
    }
    await Promise.race([this.timer.fired, new Promise<void>((r) => (this.wake = r))]);
    this.wake = undefined;
  }

  /** The queue whose first record came first. */
  private oldest(): { key: string; route: RouteConfig; items: Waiting[] } | undefined {
    let best: { key: string; route: RouteConfig; items: Waiting[] } | undefined;
    for (const [key, q] of this.queues) if (best === undefined || q.items[0]!.arrivedAt < best.items[0]!.arrivedAt) best = { key, ...q };
    return best;
  }

  /** Take up to a batch of `q`'s records off its queue. */
  private take(q: { key: string; route: RouteConfig; items: Waiting[] }): Batch {
    const size = q.route.coalesce!.batch_size;
    const items = q.items.splice(0, size);
    if (q.items.length === 0) this.queues.delete(q.key);
    return { key: q.key, route: q.route, items };
  }

  private allWaiting(): Waiting[] {
    return [...[...this.queues.values()].flatMap((q) => q.items), ...this.isolating.flatMap((b) => b.items)];
  }

  /** Anyone whose longest hold has passed before its record could leave: 503 + Retry-After. */
  private expire(now: number): void {
    for (const [key, q] of this.queues) {
      const gone = q.items.filter((w) => now > w.deadline);
      if (gone.length === 0) continue;
      q.items = q.items.filter((w) => now <= w.deadline);
      if (q.items.length === 0) this.queues.delete(key);
      const retryAt = Math.max(now, this.pace().nextAt) + 1000;
      for (const w of gone) this.answer(w, busyProblem(retryAt, now));
    }
  }

  private answer(w: Waiting, outcome: BatchOutcome): void {
    if (this.byId.delete(w.item.id)) this.waitingBytes -= w.bytes;
    w.resolve(outcome);
  }

  /**
   * One batch call, its answer taken apart; a batch refused as a whole is split and queued again.
   * Resolves as soon as the call has its slot (or will not get one), not when it is answered.
   */
  private send(upstream: Upstream, rules: PaceRules, batch: Batch): Promise<SlotVerdict | { kind: 'none' }> {
    let claimed!: (v: SlotVerdict | { kind: 'none' }) => void;
    const slot = new Promise<SlotVerdict | { kind: 'none' }>((r) => (claimed = r));
    void this.call(upstream, rules, batch, claimed)
      .catch((e: unknown) => {
        logEvent('pacing_batch_failed', { upstream: upstream.name, error: e instanceof Error ? e.name : typeof e }, 'error');
        for (const w of batch.items) this.answer(w, { kind: 'problem', slug: 'internal-error', detail: 'the batch call failed' });
      })
      .finally(() => claimed({ kind: 'none' }));
    return slot;
  }

  private async call(upstream: Upstream, rules: PaceRules, batch: Batch, claimed: (v: SlotVerdict) => void): Promise<void> {
    const spec = batch.route.coalesce!;
    const first = batch.items[0]!.item;
    this.stats.batchesSent++;
    this.stats.recordsSent += batch.items.length;
    this.stats.largestBatch = Math.max(this.stats.largestBatch, batch.items.length);
    const headers = new Headers(first.headers);
    headers.set('Content-Type', 'application/json');
    headers.set('Accept-Encoding', ACCEPT_ENCODING);
    const call: ApiCall = {
      method: 'POST',
      url: apiUrl(upstream.settings, first.target, first.search),
      headers,
      body: new TextEncoder().encode(batchBody(first.shared, batch.items.map((w) => ({ id: w.item.id, record: w.item.record })), spec)),
    };
    // Each call of the batch (a second one when a rejected token was replaced) takes its own slot,
    // once its token is in hand, so a token wait never bunches calls up.
    const pace = async (attempt: number) => {
      const now = clock.now();
      const v = reserveSlot(this.pace(), rules, now, Number.MAX_SAFE_INTEGER);
      if (attempt === 1) claimed(v);
      if (v.kind !== 'slot') throw asProblem(v.kind === 'quota' ? quotaProblem(v.resetsAt, v.perDay, now) : busyProblem(v.retryAt, now));
      this.took(v.at, now);
      if (attempt === 1) for (const w of batch.items) this.sample(v.at - w.arrivedAt);
      await clock.sleep(v.at - clock.now());
      // A call that leaves late (a busy event loop) pushes the next slot back by as much: the API
      // counts arrivals, and the next call would otherwise follow this one too closely.
      const left = clock.now();
      if (left > v.at && left + rules.intervalMs > this.pace().nextAt) {
        this.pace().nextAt = left + rules.intervalMs;
        this.ctx.storage.kv.put('pace', this.pace());
      }
    };
    // The batch answer carries every record's result: each may be as large as the route allows one.
    const maxAnswerBytes = Math.min(batch.route.max_answer_bytes * batch.items.length, MAX_BATCH_ANSWER_BYTES);
    const forwarded = await forward({ upstream, scope: first.scope, answer: { maxAnswerBytes, activeContent: 'refuse' }, pace }, call);
    if (!forwarded.ok) {
      const p = forwarded.problem.problem;
      const refusal: Refusal = { kind: 'problem', slug: p.reason, detail: p.detail ?? p.title, ...(p.retryAfter === undefined ? {} : { retryAfterS: p.retryAfter }), ...(p.extensions === undefined ? {} : { extensions: p.extensions }) };
      for (const w of batch.items) this.answer(w, refusal);
      return;
    }
    const res = forwarded.response;
    // 413: the batch is larger than the API takes (a visitor's bulky records); halves are smaller.
    if (spec.rejected_statuses.includes(res.status) || res.status === 413) {
      await res.body?.cancel();
      if (batch.items.length === 1) {
        this.answer(batch.items[0]!, { kind: 'problem', slug: 'record-rejected', detail: `the API refused this record (it answered ${res.status})` });
        return;
      }
      // Finding one bad record costs about 2 log2(n) refused calls. Far more, and it is not about
      // a record (the shared part, the API itself): stop spending the quota on halves.
      const split = batch.split ?? { refused: 0, limit: 2 * Math.ceil(Math.log2(batch.items.length)) + 2 };
      split.refused++;
      if (split.refused >= split.limit) {
        for (const w of batch.items) this.answer(w, abandoned());
        logEvent('pacing_split_abandoned', { upstream: upstream.name, route: first.route, records: batch.items.length, refused: split.refused });
        return;
      }
      for (const half of halves(batch.items)) this.isolating.push({ key: batch.key, route: batch.route, items: half, split });
      logEvent('pacing_batch_split', { upstream: upstream.name, route: first.route, records: batch.items.length, status: res.status });
      this.kick(upstream, rules);
      return;
    }
    let text: string;
    try {
      text = await res.text();
    } catch (e) {
      // A stall past the first 64 KiB ends by the API timeout: a 504, like a stall before them.
      const p = (e instanceof ProblemError ? e : readFailure(e)).problem;
      for (const w of batch.items) this.answer(w, { kind: 'problem', slug: p.reason, detail: p.detail ?? p.title });
      return;
    }
    const contentType = res.headers.get('Content-Type');
    if (res.status < 200 || res.status > 299) {
      // Not about one record (an outage, a limit): each submitter gets the status and Retry-After a
      // single call would have. The body only when its record was alone: an error about a batch may
      // quote the other submitters' records.
      const alone = batch.items.length === 1;
      const retryAfter = res.headers.get('Retry-After');
      const outcome: BatchOutcome = { kind: 'answer', status: res.status, contentType: alone ? contentType : null, body: alone ? text : '', ...(retryAfter === null ? {} : { retryAfter }) };
      for (const w of batch.items) this.answer(w, outcome);
      return;
    }
    let parsed: unknown;
    try {
      parsed = JSON.parse(text);
    } catch {
      parsed = undefined;
    }
    const results = resultsById(parsed, new Set(batch.items.map((w) => w.item.id)), spec);
    for (const w of batch.items) {
      const own = results?.get(w.item.id);
      this.answer(
        w,
        own === undefined
          ? { kind: 'problem', slug: 'batch-answer-incomplete', detail: results === undefined ? 'the API answered the batch without a results list' : 'the API answered the batch without this record\'s result' }
          : { kind: 'answer', status: res.status, contentType: contentType ?? 'application/json', body: JSON.stringify(own) },
      );
    }
  }
}

/** Submissions that agree on all but the record share a batch: route, target, shared body, headers, scope. */
function batchKey(item: BatchItem): string {
  return JSON.stringify([item.route, item.target, item.search, item.shared, item.headers, item.scope]);
}

/** A record in a batch the API refused in every part tried: it may not be about this record. */
function abandoned(): Refusal {
  return { kind: 'problem', slug: 'record-rejected', detail: 'the API refused every part of the batch this record was in: it may not be about this record' };
}

/** A refusal as the error `forward` ends with (it comes back as the batch's problem). */
function asProblem(o: Refusal): ProblemError {
  return problem(o.slug, o.detail, { ...(o.retryAfterS === undefined ? {} : { retryAfter: o.retryAfterS }), ...(o.extensions === undefined ? {} : { extensions: o.extensions }) });
}

type Refusal = Extract<BatchOutcome, { kind: 'problem' }>;

function quotaProblem(resetsAt: number, perDay: number, now: number): Refusal {
  return { kind: 'problem', slug: 'quota-exhausted', detail: `the API's daily quota (${perDay} calls) is spent; it resets at ${new Date(resetsAt).toISOString()}`, retryAfterS: secondsUntil(resetsAt, now, 1), extensions: { resets_at: new Date(resetsAt).toISOString() } };
}

function busyProblem(retryAt: number, now: number): Refusal {
  return { kind: 'problem', slug: 'pacing-busy', detail: 'the API takes calls at a set pace and the next free slot is further away than this route waits', retryAfterS: secondsUntil(retryAt, now, 1) };
}
