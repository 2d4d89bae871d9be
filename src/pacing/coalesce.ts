/**
 * @module Coalescing, pure: a submission's one record taken apart from what it shares with others,
 * checked on its own, put into a batch body under the Worker's own record ids, and the batch answer
 * taken apart again into each record's own result, in the shape a single call returns.
 */
import type { CoalesceConfig } from '../config/schema';

/** A JSON object as parsed (its members' values are whatever JSON holds). */
type JsonObject = Record<string, unknown>;

const isObject = (v: unknown): v is JsonObject => typeof v === 'object' && v !== null && !Array.isArray(v);

/** The value at a dot path ('' is the value itself). */
export function atPath(value: unknown, path: string): unknown {
  if (path === '') return value;
  let node = value;
  for (const key of path.split('.')) {
    if (!isObject(node) || !Object.hasOwn(node, key)) return undefined;
    node = node[key];
  }
  return node;
}

/** A copy of `value` with `path` set to `v` (objects along the way created as needed). */
function withPath(value: JsonObject, path: string, v: unknown): JsonObject {
  const [key, ...rest] = path.split('.');
  const out: JsonObject = { ...value };
  if (rest.length === 0) {
    if (v === undefined) delete out[key!];
    else out[key!] = v;
    return out;
  }
  const child = out[key!];
  out[key!] = withPath(isObject(child) ? child : {}, rest.join('.'), v);
  return out;
}

/** JSON with object members in sorted order, so equal bodies have equal text. */
export function canonicalJson(value: unknown): string {
  return JSON.stringify(value, (_key, v: unknown) =>
    isObject(v) ? Object.fromEntries(Object.keys(v).sort().map((k) => [k, v[k]])) : v,
  );
}

/** A submission taken apart: its one record, and the rest of its body (what a batch shares). */
export type Submission = { ok: true; record: JsonObject; shared: string } | { ok: false; detail: string };

/** The record at `spec.record` of the route's JSON body, and the body without it. */
export function takeApart(body: unknown, spec: Pick<CoalesceConfig, 'record'>): Submission {
  if (!isObject(body)) return { ok: false, detail: 'this route takes a JSON object' };
  const record = atPath(body, spec.record);
  if (!isObject(record)) return { ok: false, detail: `this route takes one record, as a JSON object at "${spec.record}"` };
  return { ok: true, record, shared: canonicalJson(withPath(body, spec.record, undefined)) };
}

/** Characters as a person counts them (Unicode code points, not UTF-16 units). */
const chars = (s: string) => [...s].length;

/**
 * What breaks the record's limits across fields (`occp_text` and `tasks_text` together at most 100
 * characters), by field: empty when it may join a batch. A field that is not a string counts 0.
 */
export function recordIssues(record: JsonObject, limits: CoalesceConfig['limits']): Map<string, string> {
  const issues = new Map<string, string>();
  for (const limit of limits) {
    const total = limit.fields.reduce((n, f) => n + (typeof record[f] === 'string' ? chars(record[f]) : 0), 0);
    if (total > limit.max_chars) {
      const which = limit.fields.length === 1 ? `is longer than ${limit.max_chars} characters` : `and ${limit.fields.slice(1).join(', ')} together are longer than ${limit.max_chars} characters (${total})`;
      issues.set(limit.fields[0]!, which);
    }
  }
  return issues;
}

/** The batch body: the shared body with the records at `spec.records`, each carrying its Worker id. */
export function batchBody(shared: string, records: Array<{ id: string; record: JsonObject }>, spec: Pick<CoalesceConfig, 'records' | 'record_id'>): string {
  const base: unknown = JSON.parse(shared);
  const list: unknown[] = records.map((r) => ({ ...r.record, [spec.record_id]: r.id }));
  return JSON.stringify(withPath(isObject(base) ? base : {}, spec.records, list));
}

/**
 * Each record's own result in a batch answer, by the Worker's id, with that id taken out (a single
 * call's answer carries none of ours). Undefined when the answer has no results array where the
 * config says; a result without a known id is left out.
 */
export function resultsById(answer: unknown, ids: ReadonlySet<string>, spec: Pick<CoalesceConfig, 'results' | 'record_id'>): Map<string, JsonObject> | undefined {
  const results = atPath(answer, spec.results);
  if (!Array.isArray(results)) return undefined;
  const out = new Map<string, JsonObject>();
  for (const r of results) {
    if (!isObject(r)) continue;
    const id = r[spec.record_id];
    if (typeof id !== 'string' || !ids.has(id) || out.has(id)) continue;
    const own: JsonObject = { ...r };
    delete own[spec.record_id];
    out.set(id, own);
  }
  return out;
}

/** A batch the API refused as a whole, split in two to find the record it refused. */
export function halves<T>(items: readonly T[]): [T[], T[]] {
  const mid = Math.ceil(items.length / 2);
  return [items.slice(0, mid), items.slice(mid)];
}
