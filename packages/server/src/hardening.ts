import type { App } from './context.js';

/**
 * The UI's Content-Security-Policy: its own scripts, styles and API only, never framed (clickjacking), no plugins,
 * no <base> or form targets elsewhere. Job output is shown as text by React, and this keeps it that way should a bug
 * ever let markup through.
 */
const UI_CSP = [
  "default-src 'self'",
  "script-src 'self'",
  "style-src 'self'",
  "img-src 'self' data:",
  "connect-src 'self'",
  "object-src 'none'",
  "base-uri 'none'",
  "form-action 'self'",
  "frame-ancestors 'none'",
].join('; ');

/** Headers on every answer: no MIME sniffing, no framing, no referrer leaking run or item ids to other sites. */
export function securityHeaders(app: App): void {
  app.addHook('onSend', async (req, reply) => {
    reply.header('x-content-type-options', 'nosniff');
    reply.header('x-frame-options', 'DENY');
    reply.header('referrer-policy', 'no-referrer');
    if (!req.url.startsWith('/api/')) reply.header('content-security-policy', UI_CSP);
  });
}

/**
 * Node's http server options that bound slow clients (see ServerSettings). Node looks for expired requests on an
 * interval (30 s by default, which would let a stalled client hold its socket for up to that much longer).
 */
export function socketTimeouts(s: { headersTimeoutMs: number; requestTimeoutMs: number }) {
  return {
    headersTimeout: s.headersTimeoutMs,
    requestTimeout: s.requestTimeoutMs,
    connectionsCheckingInterval: Math.max(100, Math.min(1_000, Math.floor(s.headersTimeoutMs / 2))),
  };
}
