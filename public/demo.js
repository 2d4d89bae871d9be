/**
 * demo.js: the demo page's own rendering of a coding answer, on top of injector-form.js.
 *
 * injector-form.js submits the form and fires `injector:result`; this script turns the coding
 * service's answer (`{codeStatus, result: [{codeCategory, codeLabel, codeConfidence}]}`) into a
 * table, calls preventDefault() so the generic JSON view is skipped, and moves focus to the
 * results heading so screen readers announce them. Errors keep the generic rendering.
 *
 * Turnstile: when the demo runs with it on (`DEMO_TURNSTILE=1 npm start`), /demo-settings.json
 * names the sitekey; the widget is then rendered in the form (it adds cf-turnstile-response to
 * it) and injector-form.js resets it after every answer, as a token is good for one check.
 */
(() => {
  'use strict';
  const form = document.getElementById('coder');
  if (!form) return;

  fetch('/demo-settings.json', { headers: { Accept: 'application/json' } })
    .then((res) => (res.ok ? res.json() : null))
    .then((settings) => {
      const sitekey = settings && typeof settings.turnstile_sitekey === 'string' ? settings.turnstile_sitekey : null;
      const slot = form.querySelector('[data-demo-turnstile]');
      if (!sitekey || !slot) return;
      slot.className = 'turnstile cf-turnstile';
      slot.dataset.sitekey = sitekey;
      slot.hidden = false;
      // Implicit rendering: the script renders every .cf-turnstile on the page once it loads.
      document.head.append(Object.assign(document.createElement('script'), { src: 'https://challenges.cloudflare.com/turnstile/v0/api.js', async: true }));
    })
    .catch(() => { /* no settings: the form works without Turnstile */ });
  const percent = new Intl.NumberFormat('en', { style: 'percent', maximumFractionDigits: 0 });
  const el = (tag, props, text) => Object.assign(document.createElement(tag), props, text == null ? {} : { textContent: text });

  form.addEventListener('injector:result', (event) => {
    const data = event.detail.data;
    const rows = data && Array.isArray(data.result) ? data.result : null;
    if (!rows) return; // not a coding answer: let the generic view show it
    event.preventDefault();

    const out = form.querySelector('[data-injector-output]');
    const title = form.elements.namedItem('occp_text').value.trim();
    const heading = el('h2', { id: 'results-title', tabIndex: -1 },
      rows.length === 0 ? 'No code found' : `${rows.length === 1 ? 'One suggested code' : `${rows.length} suggested codes`} for “${title}”`);
    if (rows.length === 0) {
      out.replaceChildren(heading, el('p', {}, 'Try a more common title, or describe your main tasks.'));
      heading.focus();
      return;
    }

    const table = el('table', { className: 'codes' });
    table.setAttribute('aria-labelledby', 'results-title');
    const head = table.createTHead().insertRow();
    for (const h of ['Code', 'Occupation', 'Confidence']) head.append(el('th', { scope: 'col' }, h));
    const body = table.createTBody();
    for (const r of rows) {
      const tr = body.insertRow();
      tr.append(el('td', { className: 'code' }, String(r.codeCategory ?? '')));
      tr.append(el('th', { scope: 'row' }, String(r.codeLabel ?? '')));
      const conf = tr.insertCell();
      conf.className = 'conf';
      const value = Math.min(1, Math.max(0, Number(r.codeConfidence) || 0));
      const bar = el('span', { className: 'bar' });
      bar.setAttribute('aria-hidden', 'true');
      bar.style.setProperty('--p', String(value));
      conf.append(el('span', { className: 'pct' }, percent.format(value)), bar);
    }
    out.replaceChildren(heading, table, el('p', { className: 'hint' }, 'Confidence is how well the description matches each occupation; check the best match before you use it.'));
    heading.focus();
  });
})();
