/**
 * @module Request bodies: read what a client sent, check it, and turn it into the body the API gets.
 *
 * JSON (any value, any `+json` type) goes byte for byte with the Content-Type the client sent,
 * unless the route maps fields; urlencoded and multipart forms become JSON. A route's `form`
 * mapping places each field at a JSON path over a fixed template, for every encoding, so a `fetch`
 * client and a plain HTML form produce the same API request; a field marked `list` collects every
 * value given (checkboxes, multi-selects) into an array. Media types a route lists in
 * `opaque_types` pass untouched. A request with no body is forwarded without one only where the
 * route says so; a body is never dropped: it is forwarded or refused.
 *
 * Two fields are the Worker's own and never reach the API, a mapping or a field check: a route's
 * `honeypot` (filled: the submission is a trap, and is read no further) and, on a Turnstile route,
 * the widget's `cf-turnstile-response` (handed to turnstile.ts).
 */
import { utf8Strict } from '../bytes';
import { PARSED_TYPES, TURNSTILE_FIELD, type RouteConfig } from '../config/schema';
import { problem } from '../problem';
import { parseMediaType } from '../media-type';

type FieldType = 'string' | 'integer' | 'number' | 'boolean';

/** The body to send to the API. */
export interface OutgoingBody {
  bytes: Uint8Array;
  /** The Content-Type header to send with it. */
  contentType: string;
}

/** What a request's body comes to: what goes up, and what the Worker took out of it for itself. */
export interface Submission {
  /** The body to send to the API; undefined: none. */
  body: OutgoingBody | undefined;
  /** The Turnstile token sent as the `cf-turnstile-response` field (routes with `turnstile` only). */
  turnstileField?: string;
  /** The route's honeypot field was filled: nothing is sent, and the caller answers as if accepted. */
  trapped: boolean;
}

const NO_BODY: Submission = { body: undefined, trapped: false };
const TRAPPED: Submission = { body: undefined, trapped: true };

const FORM_TYPES = ['application/x-www-form-urlencoded', 'multipart/form-data'];
const BODILESS_METHODS = new Set(['GET', 'HEAD']);
const BODY_EXPECTED_METHODS = new Set(['POST', 'PUT', 'PATCH']);

const isJsonType = (type: string) => type === 'application/json' || type.endsWith('+json');

/** The media types a route takes, for 415 answers and `Accept-Post`. */
function acceptedTypes(route: RouteConfig): string[] {
  return [...PARSED_TYPES, ...route.opaque_types];
}

/**
 * Read, check and map the body of `request` for `route`. The body has already passed the size
 * limit. A filled honeypot ends the reading before any field check (a trap must not answer like a
 * form). Throws `ProblemError`: 415 wrong or missing type, 400 a body where none is taken or a
 * malformed one, 422 missing, too long or wrongly typed fields, and for the Turnstile field 400
 * given twice or 403 not a string.
 */
export async function readBody(request: Request, route: RouteConfig): Promise<Submission> {
  const contentType = request.headers.get('Content-Type');
  const bytes = request.body === null ? new Uint8Array(0) : new Uint8Array(await request.arrayBuffer());
  if (bytes.length === 0 && contentType === null) {
    if (BODY_EXPECTED_METHODS.has(request.method) && route.body === 'required') {
      throw problem('body-required', `this route needs a body: send ${acceptedTypes(route).join(', ')}`, { headers: { 'Accept-Post': acceptedTypes(route).join(', ') } });
    }
    return NO_BODY;
  }
  if (BODILESS_METHODS.has(request.method)) throw problem('body-not-allowed', `a ${request.method} request carries no body`);
  if (route.body === 'none') throw problem('body-not-allowed', 'this route takes no body');

  // Strictly one media type: `text/csv;, application/json` is CSV to a first-type reader and
  // JSON to the API's (the last), so a list or a malformed type is refused, never half-read.
  const given = (contentType ?? '').trim() !== '';
  const parsed = given ? parseMediaType(contentType!) : undefined;
  if (parsed === undefined) {
    throw problem('unsupported-content-type', `send ${acceptedTypes(route).join(', ')}${given ? ' (got a list or a malformed type: send exactly one)' : ''}`, {
      headers: { 'Accept-Post': acceptedTypes(route).join(', ') },
    });
  }
  const type = parsed.essence;
  if (isJsonType(type)) return readJson(bytes, contentType!, route);
  if (FORM_TYPES.includes(type)) return readForm(request, bytes, contentType!, route);
  // An opaque body has no fields: a Turnstile token can only come as the header.
  if (route.opaque_types.includes(type)) return { body: { bytes, contentType: contentType! }, trapped: false };
  throw problem('unsupported-content-type', `send ${acceptedTypes(route).join(', ')} (got ${type.slice(0, 80)})`, {
    headers: { 'Accept-Post': acceptedTypes(route).join(', ') },
  });
}

function readJson(bytes: Uint8Array, contentType: string, route: RouteConfig): Submission {
  let value: unknown;
  try {
    value = JSON.parse(utf8Strict(bytes));
  } catch (e) {
    // The parser's message quotes the body; say only where it broke.
    const at = e instanceof SyntaxError ? /position (\d+)/.exec(e.message)?.[1] : undefined;
    throw problem('malformed-json', `the body is not valid JSON in UTF-8${at === undefined ? '' : ` (at character ${at})`}`);
  }
  const needsFields = route.form !== undefined || route.required_fields.length > 0;
  const isObject = typeof value === 'object' && value !== null && !Array.isArray(value);
  if (needsFields && !isObject) {
    throw problem('json-object-required', 'this route reads named fields: the body must be a JSON object');
  }
  const taken = isObject ? takeControls(value as Record<string, unknown>, route) : NOTHING_TAKEN;
  if (taken.trapped) return TRAPPED;
  checkFields(value, route, needsFields);
  const turnstile = taken.turnstileField === undefined ? {} : { turnstileField: taken.turnstileField };
  // No mapping: the bytes go as sent (re-serialising would round numbers past 2^53), with the
  // client's own media type (`application/merge-patch+json` stays what it is); only a body the
  // Worker took a field out of is written anew.
  if (route.form === undefined) return { body: { bytes: taken.removed ? utf8(value) : bytes, contentType }, trapped: false, ...turnstile };
  return { body: { bytes: utf8(mapFields(value as Record<string, unknown>, route.form)), contentType }, trapped: false, ...turnstile };
}

/** What `takeControls` found. */
interface Controls {
  trapped: boolean;
  turnstileField?: string;
  /** A field was taken out (the rest must be written anew). */
  removed: boolean;
}

const NOTHING_TAKEN: Controls = { trapped: false, removed: false };

/** The Worker's own fields on `route`: its honeypot, and the Turnstile widget's field. */
function controlFields(route: RouteConfig): string[] {
  return [...(route.honeypot === undefined ? [] : [route.honeypot]), ...(route.turnstile === undefined ? [] : [TURNSTILE_FIELD])];
}

/** Whether a honeypot value counts as filled: anything but absent, null, false, blank, or a list of those. */
function filled(v: unknown): boolean {
  if (Array.isArray(v)) return v.some(filled);
  return !(v === false || blank(v));
}

/**
 * Take the route's own fields out of a submission, in place: the honeypot (filled: a trap) and the
 * Turnstile token (a form field given more than once is collected as a list, and refused).
 */
function takeControls(fields: Record<string, unknown>, route: RouteConfig): Controls {
  let removed = false;
  if (route.honeypot !== undefined && Object.hasOwn(fields, route.honeypot)) {
    if (filled(fields[route.honeypot])) return { trapped: true, removed: true };
    delete fields[route.honeypot];
    removed = true;
  }
  if (route.turnstile === undefined || !Object.hasOwn(fields, TURNSTILE_FIELD)) return { trapped: false, removed };
  const token = fields[TURNSTILE_FIELD];
  delete fields[TURNSTILE_FIELD];
  if (Array.isArray(token)) {
    if (token.length > 1) throw problem('turnstile-ambiguous', `${TURNSTILE_FIELD} is given more than once; send one token`);
    return { trapped: false, removed: true, ...(typeof token[0] === 'string' ? { turnstileField: token[0] } : {}) };
  }
  if (typeof token !== 'string') throw problem('turnstile-failed', `${TURNSTILE_FIELD} must be a string`);
  return { trapped: false, removed: true, turnstileField: token };
}

async function readForm(request: Request, bytes: Uint8Array, contentType: string, route: RouteConfig): Promise<Submission> {
  let form: FormData;
  try {
    form = await new Request(request.url, { method: 'POST', headers: { 'Content-Type': contentType }, body: bytes }).formData();
  } catch {
    throw problem('malformed-form', `the body could not be read as ${parseMediaType(contentType)?.essence ?? 'a form'}`);
  }
  // The Worker's own fields are collected like lists, so a repeat can be judged (after the honeypot).
  const lists = new Set([...listFields(route), ...controlFields(route)]);
  // No prototype: a field may be called `constructor` or `__proto__` like any other.
  const fields = Object.create(null) as Record<string, string | string[]>;
  // Reported after the honeypot is looked at: a trap is answered as accepted whatever else is wrong.
  const errors: FieldErrors = new Map();
  for (const [name, value] of form) {
    const seen = fields[name];
    if (typeof value !== 'string') errors.set(name, 'is a file; this route takes text fields only');
    else if (lists.has(name)) fields[name] = [...((seen as string[] | undefined) ?? []), value];
    else if (seen !== undefined) errors.set(name, 'is given more than once (only list fields may repeat)');
    else fields[name] = value;
  }
  const taken = takeControls(fields, route);
  if (taken.trapped) return TRAPPED;
  if (errors.size > 0) throw invalid(errors);
  checkFields(fields, route, true);
  const json = route.form === undefined ? fields : mapFields(fields, route.form);
  return { body: { bytes: utf8(json), contentType: 'application/json' }, trapped: false, ...(taken.turnstileField === undefined ? {} : { turnstileField: taken.turnstileField }) };
}

const ENCODER = new TextEncoder();
const utf8 = (value: unknown) => ENCODER.encode(JSON.stringify(value));

/** Fields the route's mapping declares as lists. */
function listFields(route: RouteConfig): Set<string> {
  return new Set(Object.entries(route.form?.fields ?? {}).flatMap(([name, spec]) => (typeof spec !== 'string' && spec.list ? [name] : [])));
}

/** A submitted field's value; never one inherited from `Object.prototype` (`toString`, …). */
function field(fields: Record<string, unknown>, name: string): unknown {
  return Object.hasOwn(fields, name) ? fields[name] : undefined;
}

/** Field errors in the order found; a Map, so a field may be called `__proto__`. */
export type FieldErrors = Map<string, string>;

/** Most field errors one answer lists (a hostile body can have thousands). */
const MAX_LISTED_ERRORS = 20;

/**
 * A problem naming each bad field (detail for people, `errors` for scripts), bounded in size:
 * a 422 for the body's fields, or `reason` (the query's) with `tail` after the list.
 */
export function fieldProblem(errors: FieldErrors, reason: 'invalid-submission' | 'query-not-allowed' = 'invalid-submission', tail?: string) {
  const listed = [...errors].slice(0, MAX_LISTED_ERRORS).map(([field, message]) => ({ field: field.slice(0, 100), message }));
  const more = errors.size - listed.length;
  const detail = listed.map((e) => `${e.field} ${e.message}`).join('; ') + (more > 0 ? `; and ${more} more` : '') + (tail === undefined ? '' : `; ${tail}`);
  return problem(reason, detail, { extensions: { errors: listed } });
}

function invalid(errors: FieldErrors) {
  return fieldProblem(errors);
}

const blank = (v: unknown) => v === undefined || v === null || (typeof v === 'string' && v.trim() === '');

/**
 * Required fields present and non-empty (a list: at least one non-empty value), then every string
 * within the length limit at any depth (iterative: deep nesting cannot exhaust the stack).
 */
function checkFields(value: unknown, route: RouteConfig, named: boolean): void {
  const errors: FieldErrors = new Map();
  for (const name of named ? route.required_fields : []) {
    const v = field(value as Record<string, unknown>, name);
    if (Array.isArray(v) ? v.every(blank) : blank(v)) errors.set(name, 'is required');
  }
  const stack: Array<[unknown, string]> = [[value, '']];
  for (let item = stack.pop(); item !== undefined; item = stack.pop()) {
    const [v, path] = item;
    if (typeof v === 'string') {
      if (v.length > route.max_field_length) errors.set(path === '' ? '(body)' : path, `is longer than ${route.max_field_length} characters`);
    } else if (typeof v === 'object' && v !== null) {
      const children = Object.entries(v);
      for (let i = children.length - 1; i >= 0; i--) {
        const [k, child] = children[i]!;
        stack.push([child, path === '' ? k : `${path}.${k}`]);
      }
    }
  }
  if (errors.size > 0) throw invalid(errors);
}

/** Place each submitted field at its JSON path over a deep copy of the template. */
function mapFields(fields: Record<string, unknown>, form: NonNullable<RouteConfig['form']>): unknown {
  const out = structuredClone(form.template) as Record<string, unknown>;
  const errors: FieldErrors = new Map();
  for (const [name, spec] of Object.entries(form.fields)) {
    const raw = field(fields, name);
    if (raw === undefined) continue;
    const { path, type, list } = typeof spec === 'string' ? { path: spec, type: 'string' as FieldType, list: false } : spec;
    const kind = type === 'integer' ? 'an integer' : `a ${type}`;
    if (list) {
      const values = (Array.isArray(raw) ? raw : [raw]).map((v) => coerce(v, type));
      if (values.some((v) => v === undefined)) errors.set(name, `must be a list of ${type === 'integer' ? 'integers' : `${type}s`}`);
      else setPath(out, path, values);
      continue;
    }
    const value = coerce(raw, type);
    if (value === undefined) errors.set(name, `must be ${kind}`);
    else setPath(out, path, value);
  }
  if (errors.size > 0) throw invalid(errors);
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
