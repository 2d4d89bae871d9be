/**
 * The no-JavaScript demo flow: a form post lands on /result with the API's answer, rendered
 * server-side and escaped (issue 4: "submit with JavaScript disabled, land on the result").
 */
import { createExecutionContext, env, waitOnExecutionContext } from 'cloudflare:test';
import { describe, expect, it } from 'vitest';
import worker from '../../src/index';
import { call, setApi } from '../helpers';

const answer = {
  recordId: 'r-1',
  codeStatus: 'Coded',
  input: { occp_text: 'software developer', tasks_text: 'write code' },
  result: [
    { codeCategory: '261312', codeLabel: 'Developer Programmer', codeConfidence: 0.87 },
    { codeCategory: '261313', codeLabel: 'Software <Engineer>', codeConfidence: 0.5 },
  ],
};

const b64url = (s: string) => btoa(s).replace(/\+/g, '-').replace(/\//g, '_').replace(/=+$/, '');

function formPost(fields: Record<string, string>) {
  return call('/t/resultdemo/occp', {
    method: 'POST',
    body: new URLSearchParams(fields).toString(),
    headers: { 'Content-Type': 'application/x-www-form-urlencoded', Accept: 'text/html,application/xhtml+xml' },
  });
}

describe('redirect_result', () => {
  it('a browser form post gets a 303 whose URL carries the API answer', async () => {
    await setApi('resultdemo', { status: 200, body: JSON.stringify(answer) });
    const res = await formPost({ occp_text: 'software developer', tasks_text: 'write code' });
    expect(res.status).toBe(303);
    const location = new URL(res.headers.get('Location')!);
    expect(location.origin + location.pathname).toBe('https://forms.example.org/result');
    expect(location.searchParams.get('status')).toBe('ok');
    expect(location.searchParams.get('code')).toBe('200');
    const result = location.searchParams.get('result')!;
    const json = JSON.parse(new TextDecoder().decode(Uint8Array.from(atob(result.replace(/-/g, '+').replace(/_/g, '/')), (c) => c.charCodeAt(0))));
    expect(json).toEqual(answer);
  });

  it('an answer larger than 4 KB is not put in the URL; the status still is', async () => {
    const big = { ...answer, result: Array.from({ length: 200 }, (_, i) => ({ codeCategory: String(i), codeLabel: 'x'.repeat(20), codeConfidence: 0.1 })) };
    await setApi('resultdemo', { status: 200, body: JSON.stringify(big) });
    const res = await formPost({ occp_text: 'software developer' });
    const location = new URL(res.headers.get('Location')!);
    expect(location.searchParams.get('status')).toBe('ok');
    expect(location.searchParams.has('result')).toBe(false);
  });
});

describe('GET /result (DEMO_PAGES)', () => {
  it('renders the codes, escaped, with a script-free CSP', async () => {
    const res = await call(`/result?status=ok&code=200&result=${b64url(JSON.stringify(answer))}`, { origin: null });
    expect(res.status).toBe(200);
    expect(res.headers.get('Content-Type')).toContain('text/html');
    expect(res.headers.get('Content-Security-Policy')).toContain("default-src 'none'");
    expect(res.text).toContain('261312');
    expect(res.text).toContain('Developer Programmer');
    expect(res.text).toContain('87%');
    expect(res.text).toContain('Software &lt;Engineer&gt;');
    expect(res.text).not.toContain('<Engineer>');
  });

  it('reports a failure by its reason slug, in the page’s own words', async () => {
    const id = '0b5e1a8e-9c1f-4a57-8a43-1d3f2a1c9e77';
    const res = await call(`/result?status=error&code=422&reason=invalid-submission&request_id=${id}`, { origin: null });
    expect(res.status).toBe(200);
    expect(res.text).toContain('role="alert"');
    expect(res.text).toContain('Invalid submission');
    expect(res.text).toContain('(status 422)');
    expect(res.text).toContain(`Reference: <code>${id}</code>`);
  });

  it('shows no free text taken from the URL: an unknown reason, an odd code or request id are left out', async () => {
    const res = await call('/result?status=error&code=4%3Cb%3E&reason=%3Cimg%20src%3Dx%3ECall%20us&request_id=call-0800-SCAM', { origin: null });
    expect(res.status).toBe(200);
    expect(res.text).toContain('The submission was not coded.');
    expect(res.text).not.toMatch(/img|Call us|SCAM|4&lt;b|Reference/);
  });

  it('says so when nothing was coded', async () => {
    const res = await call(`/result?status=ok&code=200&result=${b64url(JSON.stringify({ ...answer, result: [] }))}`, { origin: null });
    expect(res.status).toBe(200);
    expect(res.text).toContain('No code found');
  });

  it('never answers 500 on a hand-made result: each wrong shape gets a neutral message', async () => {
    const shapes: unknown[] = [
      { result: [null] },
      { result: [{ codeCategory: '261312', codeLabel: { html: '<b>' } }] },
      { result: [{ codeCategory: '<script>', codeLabel: 'x' }] },
      { result: [{ codeCategory: '1', codeLabel: 'x', codeConfidence: 'high' }] },
      { result: [{ codeCategory: '1', codeLabel: 'x'.repeat(201) }] },
      { result: 'all of them' },
      { result: Array.from({ length: 21 }, () => ({ codeCategory: '1', codeLabel: 'x' })) },
      null,
      [1, 2],
      'text',
    ];
    for (const shape of shapes) {
      const res = await call(`/result?status=ok&code=200&result=${b64url(JSON.stringify(shape))}`, { origin: null });
      expect(res.status, JSON.stringify(shape)).toBe(200);
      expect(res.text).toContain('This result could not be shown.');
      expect(res.text).not.toMatch(/<script>|<b>|all of them|high/);
    }
    for (const raw of ['%%%not-base64', '!!!', b64url('{"result": [')]) {
      const res = await call(`/result?status=ok&code=200&result=${raw}`, { origin: null });
      expect(res.status, raw).toBe(200);
      expect(res.text).toContain('This result could not be shown.');
    }
  });
});

describe('GET /demo-settings.json (DEMO_PAGES)', () => {
  it('names no Turnstile sitekey by default, and the one DEMO_TURNSTILE_SITEKEY sets (the turnstile environment)', async () => {
    const off = await call('/demo-settings.json', { origin: null });
    expect([off.status, off.json()]).toEqual([200, { turnstile_sitekey: null }]);
    const ctx = createExecutionContext();
    const res = await worker.fetch(new Request('https://injector.example/demo-settings.json'), { ...env, DEMO_TURNSTILE_SITEKEY: '1x00000000000000000000AA' }, ctx);
    await waitOnExecutionContext(ctx);
    expect(await res.json()).toEqual({ turnstile_sitekey: '1x00000000000000000000AA' });
  });
});
