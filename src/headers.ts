/**
 * @module Header names that several layers must agree on (the config's checks, the gateway, the
 * egress). A leaf: it imports nothing, so any module may use it without an import circle.
 */

/** Request headers a browser may pass to the API (and, with Content-Type, send in a preflight). Authorization, Cookie, X-Forwarded-* never do. */
export const FORWARDED_REQUEST_HEADERS = ['Accept', 'Accept-Language', 'Content-Language', 'If-None-Match', 'If-Match', 'If-Modified-Since', 'If-Unmodified-Since'] as const;

/** Request headers the Worker sets on an API call itself. */
export const WORKER_SET_HEADERS = ['Content-Type', 'Accept-Encoding'] as const;

/** Names the real upstream host (`host[:port]`, as in the URL) for the egress origin. */
export const EGRESS_HOST_HEADER = 'X-Egress-Host';
/** Carries the shared secret the egress origin checks. */
export const EGRESS_SECRET_HEADER = 'X-Egress-Secret';
/** Set by the egress origin on its own refusals: `key` (secret not accepted) or `host` (not listed). */
export const EGRESS_REFUSED_HEADER = 'X-Egress-Refused';
/** The egress's headers (lower case): no other config may claim them. */
export const EGRESS_HEADERS: readonly string[] = [EGRESS_HOST_HEADER, EGRESS_SECRET_HEADER, EGRESS_REFUSED_HEADER].map((h) => h.toLowerCase());

/**
 * Headers of the connection itself (hop-by-hop, framing, Host, proxy credentials): the runtime or
 * a proxy on the way sets, consumes or drops them (lower case).
 */
export const CONNECTION_HEADERS: readonly string[] = ['host', 'connection', 'keep-alive', 'proxy-connection', 'transfer-encoding', 'te', 'trailer', 'upgrade', 'content-length', 'expect', 'proxy-authorization', 'proxy-authenticate'];
