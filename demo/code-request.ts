/**
 * @module Reads the body of `POST /v1/topics/{topic}/code` as the ABS Coding Service takes it: one
 * record, or a small batch of up to 300, all or nothing.
 *
 * - `{"record":{"occp_text","tasks_text"},"numberOfSuggestions":N}`
 * - `{"records":[{"recordId","occp_text","tasks_text"}, ...],"numberOfSuggestions":N}`
 *
 * "When you are running a synchronous small batch, the whole packet needs to be syntactically
 * correct. If the syntax fails, the whole batch will fail": one bad record (a missing or non-string
 * text, an unknown field, over 100 characters, a missing or repeated `recordId`) or more than 300
 * records refuses the batch, with a message naming the first fault. "Text strings can be a maximum
 * of 100 characters only (a total of 100 characters for combined occupation and task input text
 * entries)": the two texts' characters (code points) are summed, for a single record too.
 */
import type { CodingInput } from './matcher.ts';

/** The most records a synchronous small batch holds. */
export const MAX_BATCH_RECORDS = 300;
/** The most characters of `occp_text` and `tasks_text` together. */
export const MAX_TEXT_CHARS = 100;

const DEFAULT_SUGGESTIONS = 5;
const MAX_SUGGESTIONS = 10;
const SINGLE_FIELDS = new Set(['occp_text', 'tasks_text']);
const BATCH_FIELDS = new Set(['recordId', 'occp_text', 'tasks_text']);

/** A valid request: one record, or a batch in the order given. */
export type CodeRequest =
  | { kind: 'single'; record: CodingInput; numberOfSuggestions: number }
  | { kind: 'batch'; records: { recordId: string; input: CodingInput }[]; numberOfSuggestions: number };

/** The request, or a message saying what is wrong with it (for a 400). */
export function parseCodeRequest(text: string): CodeRequest | string {
  let body: unknown;
  try {
    body = JSON.parse(text);
  } catch {
    return 'Request body must be JSON: {"record":{"occp_text":"...","tasks_text":"..."},"numberOfSuggestions":5}';
  }
  if (!isObject(body)) return 'Request body must be a JSON object with a "record" object or a "records" array';
  const { record, records } = body;

  const numberOfSuggestions = suggestions(body.numberOfSuggestions);
  if (typeof numberOfSuggestions === 'string') return numberOfSuggestions;

  if (record !== undefined && records !== undefined) return 'Give either "record" (one record) or "records" (a small batch), not both';
  if (record !== undefined) {
    const input = codingInput(record, 'record', SINGLE_FIELDS);
    return typeof input === 'string' ? input : { kind: 'single', record: input, numberOfSuggestions };
  }
  if (records === undefined) return 'Missing "record": expected {"record":{"occp_text":"...","tasks_text":"..."}} (or "records": [...] for a small batch)';

  const refused = (why: string) => `${why}; the whole batch is refused`;
  if (!Array.isArray(records)) return refused(`"records" must be an array of up to ${MAX_BATCH_RECORDS} records`);
  if (records.length === 0) return refused('"records" is empty: nothing to code');
  if (records.length > MAX_BATCH_RECORDS) return refused(`"records" holds ${records.length} records; a small batch holds at most ${MAX_BATCH_RECORDS}`);
  const seen = new Map<string, number>();
  const out: { recordId: string; input: CodingInput }[] = [];
  for (const [i, entry] of records.entries()) {
    const where = `records[${i}]`;
    const input = codingInput(entry, where, BATCH_FIELDS);
    if (typeof input === 'string') return refused(input);
    const recordId = (entry as Record<string, unknown>).recordId;
    if (typeof recordId !== 'string' || recordId === '') return refused(`"${where}.recordId" must be a non-empty string`);
    const first = seen.get(recordId);
    if (first !== undefined) return refused(`"${where}.recordId" ${JSON.stringify(recordId)} repeats records[${first}]`);
    seen.set(recordId, i);
    out.push({ recordId, input });
  }
  return { kind: 'batch', records: out, numberOfSuggestions };
}

/** One record's texts, or what is wrong with them; `where` names it in the message. */
function codingInput(value: unknown, where: string, allowed: ReadonlySet<string>): CodingInput | string {
  const expected = [...allowed].map((k) => `"${k}"`).join(', ');
  if (!isObject(value)) return `"${where}" must be an object with ${expected}`;
  const unknown = Object.keys(value).filter((k) => !allowed.has(k));
  if (unknown.length > 0) return `"${where}" has unknown field(s) ${unknown.map((k) => `"${k}"`).join(', ')}; expected ${expected}`;
  const { occp_text, tasks_text } = value;
  if (typeof occp_text !== 'string') return `"${where}.occp_text" must be a string`;
  if (tasks_text !== undefined && typeof tasks_text !== 'string') return `"${where}.tasks_text" must be a string when given`;
  const chars = codePoints(occp_text) + codePoints(tasks_text ?? '');
  if (chars > MAX_TEXT_CHARS) {
    return `"${where}.occp_text" and "${where}.tasks_text" hold ${chars} characters together; the limit is ${MAX_TEXT_CHARS} for both combined`;
  }
  if (occp_text.trim() === '' && (tasks_text ?? '').trim() === '') return `"${where}.occp_text" and "${where}.tasks_text" are both empty: nothing to code`;
  return tasks_text === undefined ? { occp_text } : { occp_text, tasks_text };
}

/** `numberOfSuggestions` clamped to 1…10 (default 5), or what is wrong with it. */
function suggestions(value: unknown): number | string {
  if (value === undefined) return DEFAULT_SUGGESTIONS;
  if (typeof value !== 'number' || !Number.isFinite(value)) return '"numberOfSuggestions" must be a number';
  return Math.min(MAX_SUGGESTIONS, Math.max(1, Math.trunc(value)));
}

/** Characters as people count them: an emoji is one, not two UTF-16 units. */
function codePoints(s: string): number {
  let n = 0;
  for (const _ of s) n++;
  return n;
}

function isObject(v: unknown): v is Record<string, unknown> {
  return typeof v === 'object' && v !== null && !Array.isArray(v);
}
