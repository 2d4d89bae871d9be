/**
 * Gateway: submissions become the JSON the API wants. A urlencoded form, a multipart form and a
 * JSON body for the ABS coding route all arrive at the stand-in as the same bytes:
 * `{"record":{"occp_text":…,"tasks_text":…},"numberOfSuggestions":5}` on `POST /v1/topics/{topic}/code`.
 */
import { describe, expect, it } from 'vitest';
import { apiHits, call, post } from '../helpers';
import type { Hit } from '../standin/upstreams';
import { expectProblem, formBody, multipartBody } from './gateway.support';

const HOST = 'gwmap';

/** The one API call `send` causes. */
async function apiCallOf(send: () => Promise<{ status: number; text: string }>): Promise<Hit> {
  const before = (await apiHits(HOST)).length;
  const res = await send();
  expect(res.status, res.text).toBe(200);
  const after = (await apiHits(HOST)).slice(before);
  expect(after).toHaveLength(1);
  return after[0]!;
}

const nurse = { occp_text: 'Registered nurse', tasks_text: 'Patient care & "triage"; 50% night shifts = fun\nline two' };
const expected = JSON.stringify({ record: { occp_text: nurse.occp_text, tasks_text: nurse.tasks_text }, numberOfSuggestions: 5 });

describe('form mapping (ABS coding API request shape)', () => {
  it('expected bytes, spelled out once', () => {
    expect(expected).toBe(
      '{"record":{"occp_text":"Registered nurse","tasks_text":"Patient care & \\"triage\\"; 50% night shifts = fun\\nline two"},"numberOfSuggestions":5}',
    );
  });

  it('a urlencoded form post', async () => {
    const hit = await apiCallOf(() => call('/gwmap/code/occp', formBody({ ...nurse, submit: 'Send' })));
    expect(hit.method).toBe('POST');
    expect(hit.path).toBe('/v1/topics/occp/code');
    expect(hit.search).toBe('');
    expect(hit.headers['content-type']).toBe('application/json');
    expect(hit.body).toBe(expected);
  });

  it('a multipart form post', async () => {
    const fd = new FormData();
    fd.set('occp_text', nurse.occp_text);
    fd.set('tasks_text', nurse.tasks_text);
    fd.set('submit', 'Send');
    const hit = await apiCallOf(async () => call('/gwmap/code/occp', await multipartBody(fd)));
    expect(hit.path).toBe('/v1/topics/occp/code');
    expect(hit.headers['content-type']).toBe('application/json');
    expect(hit.body).toBe(expected);
  });

  it('a JSON body gets the same mapping', async () => {
    const hit = await apiCallOf(() => post('/gwmap/code/occp', { ...nurse, extra: 'dropped' }));
    expect(hit.body).toBe(expected);
  });

  it('non-ASCII text survives every encoding', async () => {
    const text = { occp_text: 'Infirmière diplômée — 看护 🩺', tasks_text: 'Soins + écoute' };
    const want = JSON.stringify({ record: text, numberOfSuggestions: 5 });
    expect((await apiCallOf(() => call('/gwmap/code/occp', formBody(text)))).body).toBe(want);
    const fd = new FormData();
    fd.set('occp_text', text.occp_text);
    fd.set('tasks_text', text.tasks_text);
    expect((await apiCallOf(async () => call('/gwmap/code/occp', await multipartBody(fd)))).body).toBe(want);
    expect((await apiCallOf(() => post('/gwmap/code/occp', text))).body).toBe(want);
  });

  it('an optional field left out is left out of the JSON; the template stays', async () => {
    const hit = await apiCallOf(() => call('/gwmap/code/occp', formBody({ occp_text: 'Baker' })));
    expect(hit.body).toBe('{"record":{"occp_text":"Baker"},"numberOfSuggestions":5}');
  });

  it('the template is not changed by one request for the next', async () => {
    await apiCallOf(() => call('/gwmap/code/occp', formBody({ occp_text: 'A', tasks_text: 'B' })));
    const hit = await apiCallOf(() => call('/gwmap/code/occp', formBody({ occp_text: 'C' })));
    expect(hit.body).toBe('{"record":{"occp_text":"C"},"numberOfSuggestions":5}');
  });

  it('typed fields are converted, and refused when they do not convert', async () => {
    const hit = await apiCallOf(() => call('/gwmap/typed', formBody({ n: '7', flag: 'on', q: 'x' })));
    expect(hit.body).toBe('{"fixed":"yes","options":{"limit":7,"flag":true},"query":"x"}');
    const json = await apiCallOf(() => post('/gwmap/typed', { n: 3, flag: false }));
    expect(json.body).toBe('{"fixed":"yes","options":{"limit":3,"flag":false}}');
    const bad = await call('/gwmap/typed', formBody({ n: '7.5', flag: 'maybe' }));
    const p = expectProblem(bad, 422, /n must be an integer; flag must be a boolean/);
    expect(p.errors).toEqual([
      { field: 'n', message: 'must be an integer' },
      { field: 'flag', message: 'must be a boolean' },
    ]);
  });
});

describe('routes without a mapping', () => {
  it('a JSON body goes byte for byte as sent (big numbers, spacing, key order)', async () => {
    const body = '{ "name": "n", "id": 123456789012345678901234567890, "z": 1, "a": [1.0, 2e3] }';
    const hit = await apiCallOf(() => call('/gwmap/items/a1', { method: 'POST', body }));
    expect(hit.path).toBe('/v1/items/a1');
    expect(hit.body).toBe(body);
  });

  it('a form goes as a flat JSON object of its fields', async () => {
    const hit = await apiCallOf(() => call('/gwmap/items/a1', formBody({ name: 'n', other: '2' })));
    expect(hit.body).toBe('{"name":"n","other":"2"}');
  });

  it('a GET sends no body and no Content-Type', async () => {
    const hit = await apiCallOf(() => call('/gwmap/items/a1'));
    expect(hit.method).toBe('GET');
    expect(hit.body).toBe('');
    expect(hit.headers['content-type']).toBeUndefined();
  });
});
