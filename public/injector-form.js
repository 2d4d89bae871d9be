/**
 * injector-form.js: progressive enhancement for plain HTML forms posting through
 * edge-token-injector. No dependencies, no build step; without it the form posts as usual.
 *
 *   <form action="https://YOUR-WORKER/api/code/occp" method="post" data-injector>
 *     ...fields... <button>Send</button> <div data-injector-output></div>
 *   </form>
 *   <script src="https://YOUR-WORKER/injector-form.js" defer></script>
 *
 * Submits with fetch (the form's method and action; a POST's fields urlencoded, a GET's in the
 * query; Accept: application/json); in flight the submit buttons are disabled, aria-busy set,
 * repeats ignored. Retries once, only where nothing runs twice: the Worker's own problem (its
 * `type` is urn:edge-token-injector:problem:…) 503/429 with Retry-After <= 10 s, or a network
 * error on a GET. Each attempt waits up to 85 s: the Worker's documented worst case with the
 * default timeouts is 80 s (docs/configuration.md, "Timeouts"); set data-injector-timeout="SECONDS" on the form
 * for other timeouts. Output: [data-injector-output] in the form, or
 * [data-injector-output="FORM-ID"], or a new div after the form. Events on the form, bubbling;
 * preventDefault() to render yourself:
 *   injector:result {status, data}                            default: pretty JSON in a <pre>
 *   injector:error  {status, data, problem, reason, message}  status 0: no answer (network,
 *                   timeout, or this origin not allowed); `reason`: the Worker's problem slug
 *                   (e.g. "origin-not-allowed"), also on the error box as data-injector-reason;
 *                   problem `errors` [{field, message}] mark fields.
 * Cloudflare Turnstile: a widget in the form (class "cf-turnstile") adds its token as the field
 * cf-turnstile-response, which a POST sends like any field; a GET form sends it as the
 * CF-Turnstile-Response header, never in the URL (URLs end up in logs and history). A token is
 * good for one verification, so after every answer the form's widgets are reset for the next try.
 */
(() => {
  'use strict';
  if (window.__injectorForm) return; // included twice: one listener is enough
  window.__injectorForm = true;

  const busy = new WeakSet();
  /** The Turnstile widget's field, and the header that carries it for a GET form. */
  const TURNSTILE_FIELD = 'cf-turnstile-response';
  const TURNSTILE_HEADER = 'CF-Turnstile-Response';
  /** The Worker's problem types; an API's own problem+json is not the Worker's and is never retried. */
  const OWN_TYPE = 'urn:edge-token-injector:problem:';
  /** Default wait per attempt, in seconds: the documented worst case (docs/configuration.md) (80 s) and a margin. */
  const TIMEOUT_S = 85;
  /** What a visitor is told, by the Worker's machine-readable reason (the problem's detail otherwise). */
  const MESSAGES = {
    'origin-not-allowed': 'This page may not use the service.',
    'body-too-large': 'The submission is too large.',
    'upstream-timeout': 'The service took too long to answer. Please try again later.',
    'upstream-unreachable': 'The service could not be reached. Please try again later.',
    'egress-refused': 'The service could not be reached. Please try again later.',
    'turnstile-required': 'Please complete the check that you are human, then send again.',
    'turnstile-failed': 'The check that you are human did not pass or has expired. Please complete it again and resend.',
    'turnstile-unavailable': 'The check that you are human could not be verified just now. Please try again in a moment.',
    'token-budget-exhausted': 'The service is busy. Please try again later.',
    'token-endpoint-throttling': 'The service is busy. Please try again later.',
    'token-endpoint-unavailable': 'The service is unavailable. Please try again later.',
    'token-store-unavailable': 'The service is unavailable. Please try again later.',
    'config-changing': 'The service is being updated. Please try again in a moment.',
    'quota-exhausted': 'The service has used up what it may do today. It will take submissions again later.',
    'pacing-busy': 'The service is busy right now. Please try again in a moment.',
    'pacer-unavailable': 'The service is unavailable for a moment. Please try again.',
    'record-rejected': 'The service could not read this submission. Please check what you entered.',
    'batch-answer-incomplete': 'The service did not answer for this submission. Please try again later.',
    'upstream-content-type-invalid': 'The service answered in a way this page cannot show. Please try again later.',
    'invalid-configuration': 'The service is not set up correctly. Please tell the site owner.',
    'internal-error': 'The service failed. Please try again later.',
  };
  const sleep = (s) => new Promise((r) => setTimeout(r, s * 1000));
  const el = (tag, props, text) => Object.assign(document.createElement(tag), props, text == null ? {} : { textContent: text });
  const describedBy = (f, ids) => (ids.length ? f.setAttribute('aria-describedby', ids.join(' ')) : f.removeAttribute('aria-describedby'));

  // getAttribute, as a field named "id", "action" or "method" shadows the form's property.
  function outputOf(form) {
    const id = form.getAttribute('id');
    let out = form.querySelector('[data-injector-output]') || (id && document.querySelector(`[data-injector-output="${CSS.escape(id)}"]`));
    if (!out) form.after((out = el('div')));
    return out;
  }

  /** The answer as {status, ok, data, problem}; throws on a network error or timeout. */
  async function send(url, init, timeoutS) {
    for (let retry = true; ; retry = false) {
      let res;
      try {
        res = await fetch(url, { ...init, signal: AbortSignal.timeout(timeoutS * 1000) });
      } catch (err) {
        if (retry && init.method === 'GET' && err.name !== 'TimeoutError') { await sleep(1); continue; }
        throw err;
      }
      const type = res.headers.get('Content-Type') || '';
      let data = await res.text();
      if (/[/+]json\b/i.test(type)) try { data = JSON.parse(data); } catch { /* keep the text */ }
      const problem = /^application\/problem\+json/i.test(type) && data && typeof data === 'object' ? data : null;
      const own = typeof problem?.type === 'string' && problem.type.startsWith(OWN_TYPE);
      const wait = Number(res.headers.get('Retry-After') || NaN); // the Worker sends seconds
      if (retry && own && (res.status === 503 || res.status === 429) && wait >= 0 && wait <= 10) { await sleep(wait); continue; }
      return { status: res.status, ok: res.ok, data, problem };
    }
  }

  /** Fresh Turnstile tokens for the next submission: the one just sent may have been spent. */
  function resetTurnstile(form) {
    const ts = window.turnstile;
    if (!ts || typeof ts.reset !== 'function') return;
    for (const widget of form.querySelectorAll('.cf-turnstile')) {
      try { ts.reset(widget); } catch { /* not rendered (yet): nothing to reset */ }
    }
  }

  function clearFieldErrors(form) {
    for (const m of form.querySelectorAll('.injector-field-error')) m.remove();
    for (const f of form.querySelectorAll('[data-injector-error]')) {
      describedBy(f, (f.getAttribute('aria-describedby') || '').split(' ').filter((id) => id && id !== f.dataset.injectorError));
      f.removeAttribute('aria-invalid');
      delete f.dataset.injectorError;
    }
  }

  /** Mark each field named in `errors`; returns the first one marked and the errors left over. */
  function showFieldErrors(form, errors) {
    let first = null;
    const rest = [];
    for (const { field, message } of Array.isArray(errors) ? errors : []) {
      let f = form.elements.namedItem(String(field));
      if (f && !(f instanceof Element)) f = f[0]; // a radio group
      if (!f) { rest.push(`${field} ${message}`); continue; }
      const name = f.labels?.[0]?.textContent.trim().replace(/\s*(\(.*\)|[*:])$/, '') || field; // minus "(required)", "*", ":"
      const msg = el('span', { className: 'injector-field-error', id: `${f.id || f.name}-injector-error` }, `${name} ${message}`);
      f.after(msg);
      f.setAttribute('aria-invalid', 'true');
      f.dataset.injectorError = msg.id;
      describedBy(f, [f.getAttribute('aria-describedby'), msg.id].filter(Boolean));
      first ||= f;
    }
    return { first, rest };
  }

  function renderError(form, out, d) {
    const { first, rest } = showFieldErrors(form, d.problem?.errors);
    const box = el('div', { className: 'injector-error', tabIndex: -1 });
    box.setAttribute('role', 'alert');
    if (d.reason) box.dataset.injectorReason = d.reason;
    box.append(el('p', { className: 'injector-error-title' }, d.problem?.title || (d.status ? `Error ${d.status}` : 'No answer')));
    box.append(el('p', {}, first ? 'Please correct the marked fields.' : d.message));
    if (rest.length) box.append(el('p', {}, rest.join('; ')));
    if (d.problem?.request_id) box.append(el('p', { className: 'injector-ref' }, `Reference: ${d.problem.request_id}`));
    out.replaceChildren(box);
    (first || box).focus();
  }

  function errorDetail(r, err) {
    if (!r) {
      const message = err.name === 'TimeoutError' ? 'The service took too long to answer.' : 'Could not reach the service (offline, or this page may not use it).';
      return { status: 0, data: null, problem: null, reason: null, message: `${message} Please try again later.` };
    }
    const p = r.problem;
    const reason = typeof p?.type === 'string' && p.type.startsWith(OWN_TYPE) && typeof p.reason === 'string' ? p.reason : null;
    const said = typeof r.data?.message === 'string' ? r.data.message : `The service answered HTTP ${r.status}.`;
    let message = (reason && Object.hasOwn(MESSAGES, reason) && MESSAGES[reason]) || (p ? p.detail || p.title : said);
    // The day's quota: say when it comes back, in the visitor's own time.
    const resets = reason === 'quota-exhausted' && typeof p.resets_at === 'string' ? new Date(p.resets_at) : null;
    if (resets && !Number.isNaN(resets.getTime())) message = `The service has used up what it may do today. It will take submissions again from ${resets.toLocaleString([], { dateStyle: 'medium', timeStyle: 'short' })}.`;
    return { status: r.status, data: r.data, problem: p, reason, message };
  }

  async function submit(form, submitter) {
    const out = outputOf(form);
    const attr = (name) => submitter?.getAttribute(`form${name}`) ?? form.getAttribute(name) ?? '';
    const method = /^post$/i.test(attr('method')) ? 'POST' : 'GET';
    const url = new URL(attr('action'), document.baseURI);
    let fd;
    try { fd = new FormData(form, submitter); } catch { fd = new FormData(form); } // no submitter arg
    const params = new URLSearchParams();
    const headers = { Accept: 'application/json' };
    for (const [k, v] of fd) {
      if (typeof v !== 'string') continue;
      if (method === 'GET' && k === TURNSTILE_FIELD) { if (v) headers[TURNSTILE_HEADER] = v; } else params.append(k, v);
    }
    if (method === 'GET') url.search = params;

    const buttons = [...form.elements].filter((b) => /^(submit|image)$/.test(b.type) && !b.disabled);
    const setBusy = (on) => {
      for (const b of buttons) b.disabled = on;
      for (const e of [form, out]) on ? e.setAttribute('aria-busy', 'true') : e.removeAttribute('aria-busy');
      on ? busy.add(form) : busy.delete(form);
    };
    clearFieldErrors(form);
    setBusy(true);
    out.replaceChildren(el('p', { className: 'injector-pending' }, 'Sending…'));
    let r, err;
    try {
      const timeoutS = Number(form.getAttribute('data-injector-timeout')) || TIMEOUT_S;
      r = await send(url, { method, headers, body: method === 'POST' ? params : undefined }, timeoutS);
    } catch (e) { err = e; }
    setBusy(false);
    resetTurnstile(form);

    const detail = r?.ok ? { status: r.status, data: r.data } : errorDetail(r, err);
    const type = r?.ok ? 'injector:result' : 'injector:error';
    if (!form.dispatchEvent(new CustomEvent(type, { bubbles: true, cancelable: true, detail }))) return;
    if (!r?.ok) return renderError(form, out, detail);
    const pre = el('pre', { className: 'injector-result', tabIndex: -1 }, typeof r.data === 'string' ? r.data : JSON.stringify(r.data, null, 2));
    out.replaceChildren(pre);
    pre.focus();
  }

  document.addEventListener('submit', (event) => {
    const form = event.target;
    if (event.defaultPrevented || !form.hasAttribute?.('data-injector')) return;
    event.preventDefault();
    if (!busy.has(form)) submit(form, event.submitter);
  });
})();
