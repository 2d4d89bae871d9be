/**
 * @module A stand-in of the ABS Coding Service's synchronous endpoint for the pacing tests, with its
 * limits: `POST /v1/topics/{topic}/code` takes one record (`{"record":…}`) or up to `maxRecords`
 * (`{"records":[{recordId,…}]}`); one malformed record (a missing `occp_text`, `occp_text` and
 * `tasks_text` together over `maxChars`) fails the whole batch with 400; more than `perSecond`
 * calls in a second (by arrival) or `perDay` in all get 429. Each record's codes are derived from
 * its own text, so a test can tell whose answer a submitter got. Every arrival is recorded.
 */

/** What the coder enforces (the ABS public tier: 1 per second, 1,000 a day, 300 records, 100 characters). */
export interface CoderLimits {
  perSecond: number;
  perDay?: number;
  maxRecords: number;
  maxChars: number;
  /** Answer after this many ms. */
  delayMs?: number;
  /** A body longer than this many bytes is refused with 413, as API Gateway refuses one past its payload limit. */
  maxBodyBytes?: number;
  /** A broken or hostile coder: answer accepted calls this way instead (see `CoderMangle`). */
  mangle?: CoderMangle;
}

/**
 * How a broken or hostile coder answers an accepted call: `reject-all` 400 to every call (a 400
 * not about any record); `error-echo` 500 quoting the request body; results
 * `drop-first` (the first record's left out), `duplicate` (each twice, the copy with other codes),
 * `other-ids` (a result with an id nobody sent), `not-array` (an object instead of the list),
 * `echo-token` (the token the call carried, inside the first record's result).
 */
export type CoderMangle = 'reject-all' | 'error-echo' | 'drop-first' | 'duplicate' | 'other-ids' | 'not-array' | 'echo-token';

/** One call that reached the coder. */
export interface CoderCall {
  /** Arrival, ms since the epoch (Node's clock). */
  at: number;
  records: number;
  status: number;
}

export interface CoderState {
  limits: CoderLimits;
  calls: CoderCall[];
  /** Arrival times of calls that were accepted (not refused by rate or quota). */
  accepted: number[];
}

/** The codes the coder gives a text: stable, and different for different texts. */
export function codesFor(occp: string, tasks = ''): Array<{ codeCategory: string; codeLabel: string; codeConfidence: number }> {
  let h = 2166136261;
  for (const c of `${occp}|${tasks}`) h = Math.imul(h ^ c.charCodeAt(0), 16777619) >>> 0;
  return [{ codeCategory: String(100000 + (h % 900000)), codeLabel: `Label of ${occp.slice(0, 40)}`, codeConfidence: 0.9 }];
}

const json = (v: unknown, status = 200) => new Response(JSON.stringify(v), { status, headers: { 'Content-Type': 'application/json' } });

function isObject(v: unknown): v is Record<string, unknown> {
  return typeof v === 'object' && v !== null && !Array.isArray(v);
}

/** Why a record would fail its batch, or undefined. */
function recordError(r: unknown, limits: CoderLimits): string | undefined {
  if (!isObject(r)) return 'a record must be an object';
  if (typeof r.occp_text !== 'string') return 'occp_text must be a string';
  if (r.tasks_text !== undefined && typeof r.tasks_text !== 'string') return 'tasks_text must be a string';
  const chars = [...r.occp_text].length + [...(typeof r.tasks_text === 'string' ? r.tasks_text : '')].length;
  if (chars > limits.maxChars) return `occp_text and tasks_text together are over ${limits.maxChars} characters`;
  if (r.occp_text === 'MALFORMED') return 'the model cannot read this record';
  return undefined;
}

/** Answer one call to the coding endpoint (the token has been checked; `token` is the one it carried). */
export async function coderAnswer(state: CoderState, body: string, token = ''): Promise<Response> {
  const at = Date.now();
  const { limits } = state;
  const inLastSecond = state.accepted.filter((t) => at - t < 1000).length;
  const record = (status: number, records: number) => state.calls.push({ at, records, status });
  if (inLastSecond >= limits.perSecond) {
    record(429, 0);
    return json({ message: 'Too Many Requests (rate)' }, 429);
  }
  if (limits.perDay !== undefined && state.accepted.length >= limits.perDay) {
    record(429, 0);
    return json({ message: 'Limit Exceeded (daily quota)' }, 429);
  }
  state.accepted.push(at);
  if (limits.delayMs !== undefined) await new Promise((r) => setTimeout(r, limits.delayMs));
  const sentRecords = (() => {
    try {
      const r = (JSON.parse(body) as { records?: unknown }).records;
      return Array.isArray(r) ? r.length : 1;
    } catch {
      return 0;
    }
  })();
  if (limits.maxBodyBytes !== undefined && new TextEncoder().encode(body).length > limits.maxBodyBytes) {
    record(413, sentRecords);
    return json({ message: 'Request Entity Too Large' }, 413);
  }
  switch (limits.mangle) {
    case 'reject-all':
      record(400, sentRecords);
      return json({ message: 'Invalid request body' }, 400);
    case 'error-echo':
      record(500, sentRecords);
      return json({ message: 'Internal server error', request: body }, 500);
  }
  let parsed: unknown;
  try {
    parsed = JSON.parse(body);
  } catch {
    record(400, 0);
    return json({ message: 'malformed JSON' }, 400);
  }
  if (!isObject(parsed)) {
    record(400, 0);
    return json({ message: 'a JSON object is required' }, 400);
  }
  if (parsed.record !== undefined) {
    const error = recordError(parsed.record, limits);
    record(error === undefined ? 200 : 400, 1);
    if (error !== undefined) return json({ message: error }, 400);
    const r = parsed.record as { occp_text: string; tasks_text?: string };
    return json({ codeStatus: 'successful', input: r, result: codesFor(r.occp_text, r.tasks_text) });
  }
  const records = parsed.records;
  if (!Array.isArray(records) || records.length === 0 || records.length > limits.maxRecords) {
    record(400, Array.isArray(records) ? records.length : 0);
    return json({ message: `records must be an array of 1 to ${limits.maxRecords}` }, 400);
  }
  for (const r of records) {
    const error = recordError(r, limits) ?? (isObject(r) && typeof r.recordId === 'string' ? undefined : 'recordId must be a string');
    if (error !== undefined) {
      // "If the syntax fails, the whole batch will fail."
      record(400, records.length);
      return json({ message: error }, 400);
    }
  }
  record(200, records.length);
  const results: Array<Record<string, unknown>> = records.map((r: { recordId: string; occp_text: string; tasks_text?: string }) => ({
    recordId: r.recordId,
    codeStatus: 'successful',
    input: { occp_text: r.occp_text, ...(r.tasks_text === undefined ? {} : { tasks_text: r.tasks_text }) },
    result: codesFor(r.occp_text, r.tasks_text),
  }));
  switch (limits.mangle) {
    case 'drop-first':
      return json(results.slice(1));
    case 'duplicate':
      return json([...results, ...results.map((r) => ({ ...r, result: codesFor('someone else') }))]);
    case 'other-ids':
      return json([{ ...results[0], recordId: 'not-sent-by-anyone', result: codesFor('someone else') }, ...results]);
    case 'not-array':
      return json({ codeStatus: 'successful', results });
    case 'echo-token':
      return json(results.map((r, i) => (i === 0 ? { ...r, debug: `called with ${token}` } : r)));
  }
  return json(results);
}
