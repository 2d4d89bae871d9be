/**
 * @module Submission bodies: read JSON, urlencoded and multipart submissions, check them, and turn
 * them into the JSON the API wants.
 *
 * A submission's "fields" are the top-level keys of a JSON object or the fields of a form. A route's
 * `form` mapping places each field at a JSON path over a fixed template, for every encoding, so a
 * `fetch` client and a plain HTML form produce the same API request.
 */
import type { RouteConfig } from '../config';
import { problem } from '../problem';

type FieldType = 'string' | 'integer' | 'number' | 'boolean';

/** The JSON to send to the API, serialised. */
export interface MappedBody {
  json: string;
}

const JSON_TYPES = ['application/json'];
const FORM_TYPES = ['application/x-www-form-urlencoded', 'multipart/form-data'];

/** Media type without parameters, lower-cased. */
function mediaType(contentType: string | null): string {
  return (contentType ?? '').split(';')[0]!.trim().toLowerCase();
}

/**
 * Read, check and map the body of `request` for `route`. The body has already passed the size limit.
 * Throws `ProblemError`: 415 unsupported type, 400 malformed, 422 missing/too long/wrong-typed field.
 */
export async function readSubmission(request: Request, route: RouteConfig): Promise<MappedBody> {
  const type = mediaType(request.headers.get('Content-Type'));
  let fields: Record<string, unknown>;
  /** A JSON body as it came, sent on unchanged when the route maps nothing. */
  let sent: string | undefined;
  if (JSON_TYPES.includes(type) || type.endsWith('+json')) {
    const text = await request.text();
    sent = text;
    try {
      fields = JSON.parse(text) as Record<string, unknown>;
    } catch (e) {
      // The parser's message quotes the body; say only where it broke.
      const at = e instanceof Error ? /position (\d+)/.exec(e.message)?.[1] : undefined;
      throw problem(400, 'Malformed JSON', `the body is not valid JSON${at === undefined ? '' : ` (at character ${at})`}`);
    }
    if (typeof fields !== 'object' || fields === null || Array.isArray(fields)) {
      throw problem(400, 'Malformed JSON', 'the body must be a JSON object');
    }
  } else if (FORM_TYPES.includes(type)) {
    let form: FormData;
    try {
      form = await request.formData();
    } catch {
      throw problem(400, 'Malformed form body', `the body could not be read as ${type}`);
    }
    // No prototype: a field may be called `constructor` or `__proto__` like any other.
    fields = Object.create(null) as Record<string, unknown>;
    for (const [name, value] of form) {
      if (typeof value !== 'string') throw invalid('Files are not accepted', new Map([[name, 'is a file; this route takes text fields only']]));
      if (name in fields) throw invalid('Repeated field', new Map([[name, 'is given more than once']]));
      fields[name] = value;
    }
  } else {
    throw problem(415, 'Unsupported content type', `send ${[...JSON_TYPES, ...FORM_TYPES].join(', ')}${type === '' ? '' : ` (got ${type.slice(0, 80)})`}`, {
      headers: { 'Accept-Post': [...JSON_TYPES, ...FORM_TYPES].join(', ') },
    });
  }

  checkFields(fields, route);
  if (route.form !== undefined) return { json: JSON.stringify(mapFields(fields, route.form)) };
  // No mapping: a JSON body goes byte for byte as sent (re-serialising would round numbers past
  // 2^53 and reorder nothing useful), a form as a flat object of its fields.
  return { json: sent ?? JSON.stringify(fields) };
}

/** A submitted field's value; never one inherited from `Object.prototype` (`toString`, …). */
function field(fields: Record<string, unknown>, name: string): unknown {
  return Object.hasOwn(fields, name) ? fields[name] : undefined;
}

/** Field errors in the order found; a Map, so a field may be called `__proto__`. */
type FieldErrors = Map<string, string>;

/** Most field errors one answer lists (a hostile body can have thousands). */
const MAX_LISTED_ERRORS = 20;

/** A 422 naming each bad field (detail for people, `errors` for scripts), bounded in size. */
function invalid(title: string, errors: FieldErrors) {
  const listed = [...errors].slice(0, MAX_LISTED_ERRORS);
  const more = errors.size - listed.length;
  const detail = listed.map(([name, message]) => `${name.slice(0, 100)} ${message}`).join('; ') + (more > 0 ? `; and ${more} more` : '');
  return problem(422, title, detail, { extensions: { errors: listed.map(([field, message]) => ({ field: field.slice(0, 100), message })) } });
}

/** Required fields present and non-empty; every string within the length limit (at any depth). */
function checkFields(fields: Record<string, unknown>, route: RouteConfig): void {
  const errors: FieldErrors = new Map();
  for (const name of route.required_fields) {
    const v = field(fields, name);
    if (v === undefined || v === null || (typeof v === 'string' && v.trim() === '')) errors.set(name, 'is required');
  }
  // Iterative, so a deeply nested JSON body cannot exhaust the stack.
  const stack: Array<[unknown, string]> = [[fields, '']];
  for (let item = stack.pop(); item !== undefined; item = stack.pop()) {
    const [v, path] = item;
    if (typeof v === 'string') {
      if (v.length > route.max_field_length) errors.set(path, `is longer than ${route.max_field_length} characters`);
    } else if (typeof v === 'object' && v !== null) {
      const children = Object.entries(v);
      for (let i = children.length - 1; i >= 0; i--) {
        const [k, child] = children[i]!;
        stack.push([child, path === '' ? k : `${path}.${k}`]);
      }
    }
  }
  if (errors.size > 0) throw invalid('Invalid submission', errors);
}

/** Place each submitted field at its JSON path over a deep copy of the template. */
function mapFields(fields: Record<string, unknown>, form: NonNullable<RouteConfig['form']>): unknown {
  const out = structuredClone(form.template) as Record<string, unknown>;
  const errors: FieldErrors = new Map();
  for (const [name, spec] of Object.entries(form.fields)) {
    const raw = field(fields, name);
    if (raw === undefined) continue;
    const { path, type } = typeof spec === 'string' ? { path: spec, type: 'string' as FieldType } : spec;
    const value = coerce(raw, type);
    if (value === undefined) {
      errors.set(name, `must be ${type === 'integer' ? 'an integer' : `a ${type}`}`);
      continue;
    }
    setPath(out, path, value);
  }
  if (errors.size > 0) throw invalid('Invalid submission', errors);
  return out;
}

function coerce(raw: unknown, type: FieldType): unknown {
  if (type === 'string') return typeof raw === 'string' ? raw : typeof raw === 'number' || typeof raw === 'boolean' ? String(raw) : undefined;
  if (type === 'boolean') {
    if (typeof raw === 'boolean') return raw;
    if (raw === 'true' || raw === 'on' || raw === '1') return true;
    if (raw === 'false' || raw === 'off' || raw === '0') return false;
    return undefined;
  }
  const n = typeof raw === 'number' ? raw : typeof raw === 'string' && raw.trim() !== '' ? Number(raw) : NaN;
  if (!Number.isFinite(n)) return undefined;
  if (type === 'integer' && !Number.isInteger(n)) return undefined;
  return n;
}

function setPath(target: Record<string, unknown>, path: string, value: unknown): void {
  const parts = path.split('.');
  let node = target;
  for (const part of parts.slice(0, -1)) {
    const next = node[part];
    if (typeof next !== 'object' || next === null || Array.isArray(next)) node[part] = {};
    node = node[part] as Record<string, unknown>;
  }
  node[parts[parts.length - 1]!] = value;
}
