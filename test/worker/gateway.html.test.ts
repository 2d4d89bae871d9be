/**
 * Gateway: plain HTML forms (no JavaScript). A browser form post gets a 303 to the route's
 * redirect page on success and to its error page on failure, each with a short status in the
 * query; JSON clients on the same route get JSON. Nothing is lost: the page learns the status.
 */
import { describe, expect, it } from 'vitest';
import { OTHER_ORIGIN } from '../fixtures/config';
import { SORRY_URL, THANKS_URL } from '../fixtures/gateway';
import { apiHits, call, configIssues, setApi, type Answer } from '../helpers';
import { expectProblem, formBody, multipartBody } from './gateway.support';

const HOST = 'gwhtml';
/** What a browser sends with a form navigation. */
const BROWSER_ACCEPT = 'text/html,application/xhtml+xml,application/xml;q=0.9,*/*;q=0.8';
const browser = { Accept: BROWSER_ACCEPT };

/** The 303's target, split into the page and its query. */
function redirectOf(res: Answer): { page: string; query: Record<string, string> } {
  expect(res.status, res.text).toBe(303);
  expect(res.text).toBe('');
  expect(res.headers.get('Cache-Control')).toBe('no-store');
  const url = new URL(res.headers.get('Location')!);
  const query = Object.fromEntries(url.searchParams);
  url.search = '';
  return { page: url.toString(), query };
}

const page = (u: string) => {
  const url = new URL(u);
  url.search = '';
  return url.toString();
};

describe('plain HTML form flow', () => {
  it('success → 303 to the redirect URL with status ok; the API got the mapped JSON', async () => {
    const before = (await apiHits(HOST)).length;
    const res = await call('/gwhtml/code/occp', formBody({ occp_text: 'Baker', tasks_text: 'Bread' }, { headers: browser }));
    const { page: to, query } = redirectOf(res);
    expect(to).toBe(THANKS_URL);
    expect(query).toEqual({ status: 'ok', code: '200', request_id: expect.stringMatching(/^[0-9a-f-]{36}$/) });
    expect(res.headers.get('X-Request-Id')).toBe(query.request_id);
    const api = (await apiHits(HOST)).slice(before);
    expect(api).toHaveLength(1);
    expect(api[0]!.body).toBe('{"record":{"occp_text":"Baker","tasks_text":"Bread"},"numberOfSuggestions":5}');
    // The API is asked for JSON, not the browser's text/html.
    expect(api[0]!.headers.accept).toBe('application/json');
  });

  it('a multipart form post works the same way', async () => {
    const fd = new FormData();
    fd.set('occp_text', 'Baker');
    expect(redirectOf(await call('/gwhtml/code/occp', await multipartBody(fd, { headers: browser }))).query.status).toBe('ok');
  });

  it('invalid submission → 303 to the error URL (its own query kept), no API call', async () => {
    const before = (await apiHits(HOST)).length;
    const res = await call('/gwhtml/code/occp', formBody({ tasks_text: 'Bread' }, { headers: browser }));
    const { page: to, query } = redirectOf(res);
    expect(to).toBe(page(SORRY_URL));
    expect(query).toMatchObject({ form: 'code', status: 'error', code: '422', reason: 'invalid-submission' });
    expect((await apiHits(HOST)).length).toBe(before);
  });

  it('oversized form → 303 to the error URL with 413', async () => {
    const res = await call('/gwhtml/code/occp', formBody({ occp_text: 'x'.repeat(5000) }, { headers: browser }));
    expect(redirectOf(res).query).toMatchObject({ status: 'error', code: '413', reason: 'body-too-large' });
  });

  it('bad param → 303 to the error URL with 404', async () => {
    const res = await call('/gwhtml/code/a%20b', formBody({ occp_text: 'Baker' }, { headers: browser }));
    expect(redirectOf(res).query).toMatchObject({ status: 'error', code: '404' });
  });

  it('the API refuses → 303 to the error URL with its status', async () => {
    await setApi(HOST, { status: 422, body: '{"detail":"bad record"}' });
    try {
      const res = await call('/gwhtml/code/occp', formBody({ occp_text: 'Baker' }, { headers: browser }));
      const { page: to, query } = redirectOf(res);
      expect(to).toBe(page(SORRY_URL));
      expect(query).toMatchObject({ status: 'error', code: '422' });
      expect(query.reason).toBeUndefined();
    } finally {
      await setApi(HOST, {});
    }
  });

  it('a token rejected twice → 303 to the error URL with 502', async () => {
    await setApi(HOST, { rejectNext: 2 });
    const res = await call('/gwhtml/code/occp', formBody({ occp_text: 'Baker' }, { headers: browser }));
    expect(redirectOf(res).query).toMatchObject({ status: 'error', code: '502', reason: 'fresh-token-rejected' });
  });

  it('a JSON client on the same route gets JSON, success and failure', async () => {
    const ok = await call('/gwhtml/code/occp', formBody({ occp_text: 'Baker' }, { headers: { Accept: '*/*' } }));
    expect(ok.status, ok.text).toBe(200);
    expect(ok.json()).toMatchObject({ ok: true });
    const bad = await call('/gwhtml/code/occp', formBody({}, { headers: { Accept: 'application/json' } }));
    expectProblem(bad, 422, /occp_text is required/);
  });

  it('a disallowed origin is refused with 403 problem, not redirected', async () => {
    const res = await call('/gwhtml/code/occp', formBody({ occp_text: 'Baker' }, { headers: browser, origin: OTHER_ORIGIN } as RequestInit));
    expectProblem(res, 403);
  });

  it('a route without redirect pages answers HTML clients with JSON', async () => {
    const res = await call('/gwmap/code/occp', formBody({ occp_text: 'Baker' }, { headers: browser }));
    expect(res.status, res.text).toBe(200);
  });
});

describe('redirect config', () => {
  const base = {
    UPSTREAMS: { u: { api_origin: 'https://u.test', token_url: 'https://u.test/token', client_auth: 'none' } },
    ROUTES: {},
  };
  const route = (extra: Record<string, unknown>) => ({
    ...base,
    ROUTES: { r: { path: '/r', upstream: 'u', target: '/r', allowed_origins: ['https://forms.example.org'], ...extra } },
  });
  const issues = configIssues;

  it('redirect and error_redirect must be on an allowed origin', () => {
    expect(issues(route({ redirect: 'https://evil.example.com/x' }))).toEqual(['ROUTES.r.redirect: must be on one of allowed_origins']);
    expect(issues(route({ redirect: 'https://forms.example.org/ok', error_redirect: 'https://evil.example.com/x' }))).toEqual([
      'ROUTES.r.error_redirect: must be on one of allowed_origins',
    ]);
    expect(issues(route({ redirect: 'https://forms.example.org/ok', error_redirect: 'https://forms.example.org/ko' }))).toEqual([]);
  });

  it('error_redirect alone is refused (a success would have nowhere to go)', () => {
    expect(issues(route({ error_redirect: 'https://forms.example.org/ko' }))).toEqual([
      'ROUTES.r.redirect: error_redirect needs redirect too (where a successful form post lands)',
    ]);
  });
});
