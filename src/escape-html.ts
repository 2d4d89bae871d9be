/** @module HTML escaping for the Worker's own pages (the demo result page, the /status view). */

/** Text and attribute values made inert in HTML. */
export const escapeHtml = (v: string): string => v.replace(/[&<>"']/g, (c) => ({ '&': '&amp;', '<': '&lt;', '>': '&gt;', '"': '&quot;', "'": '&#39;' })[c]!);
