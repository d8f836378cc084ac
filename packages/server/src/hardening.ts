import { STATUS_CODES, type IncomingMessage } from 'node:http';
import type { Socket } from 'node:net';
import { BadRequestError, formatPath } from '@liftoff/core';
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

/**
 * Refuses a NUL character in a path parameter, query value or JSON body string. PostgreSQL's text and json types
 * cannot hold one (the driver's error was a 500) and SQLite would store what PostgreSQL refuses, so both refuse it
 * up front. Log uploads are bytes (a string body, not JSON) and keep their NULs.
 */
export function refuseNulCharacters(app: App): void {
  app.addHook('preValidation', async (req) => {
    const where = nulPath({ path: req.params, query: req.query, body: typeof req.body === 'string' ? null : req.body });
    if (where)
      throw new BadRequestError(
        `${formatPath(where.map((p) => p.slice(0, 40)))}: contains a NUL character (\\u0000); remove it.`,
      );
  });
}

/**
 * Objects and arrays of parsed JSON, params and query strings (fastify makes those with a bare prototype of its
 * own, so the test is by exclusion); not buffers or streams (binary bodies), which are bytes, not text.
 */
const isPlainJson = (v: unknown): v is object =>
  !!v &&
  typeof v === 'object' &&
  !ArrayBuffer.isView(v) &&
  !(v instanceof ArrayBuffer) &&
  typeof (v as { pipe?: unknown }).pipe !== 'function';

/** Where the first NUL is, walking iteratively: bodies may nest thousands deep, past what recursion survives. */
function nulPath(root: unknown): string[] | null {
  const stack: { value: unknown; path: string[] }[] = [{ value: root, path: [] }];
  while (stack.length) {
    const { value, path } = stack.pop() as { value: unknown; path: string[] };
    if (typeof value === 'string') {
      if (value.includes('\u0000')) return path;
    } else if (isPlainJson(value)) {
      for (const [k, v] of Object.entries(value)) {
        if (k.includes('\u0000')) return [...path, k];
        stack.push({ value: v, path: path.length > 20 ? path : [...path, k] });
      }
    }
  }
  return null;
}

/**
 * Answers what Node's HTTP parser refuses before fastify sees a request (headers past 16 KiB, a malformed request
 * line, a timed-out request) in the API's error shape, as fastify's default handler does in its own.
 */
export function clientErrorHandler(err: Error & { code?: string }, socket: Socket): void {
  if (err.code === 'ECONNRESET' || !socket.writable) {
    socket.destroy();
    return;
  }
  const [status, message] =
    err.code === 'HPE_HEADER_OVERFLOW'
      ? [431, 'Request headers (the URL included) are larger than 16 KiB; shorten them.']
      : err.code === 'ERR_HTTP_REQUEST_TIMEOUT'
        ? [408, 'The request was not received in time; send it again.']
        : [400, 'Malformed HTTP request.'];
  const body = JSON.stringify({ error: { code: 'BAD_REQUEST', message } });
  // Closed once written: a client still dripping headers (slowloris) must not keep the socket half-open.
  socket.end(
    `HTTP/1.1 ${status} ${STATUS_CODES[status] ?? ''}\r\nContent-Type: application/json; charset=utf-8\r\n` +
      `Content-Length: ${Buffer.byteLength(body)}\r\nConnection: close\r\n\r\n${body}`,
    () => socket.destroy(),
  );
}

/** How long the rest of a refused body is read (and dropped) before the connection is reset. */
export const REST_OF_BODY_MS = 10_000;

/**
 * For an answer sent before the request body was read to its end (413 past a body limit or the archive cap, 415, a
 * refused key): reads what the client still sends and drops it, then keeps the connection. Closing at once (fastify
 * asks for that, and a pipeline destroys its source) makes the kernel reset the connection under a client that is
 * still writing, and the client (undici under load) then reports "connection reset" instead of the answer it was
 * sent. A body going on for longer than `ms` gets the reset anyway: a refusal costs at most that much bandwidth.
 * Returns whether the body was incomplete (the caller then drops any `connection: close` it was going to send).
 */
export function dropRestOfBody(req: IncomingMessage, ms = REST_OF_BODY_MS): boolean {
  if (req.complete || req.destroyed) return false;
  const reset = setTimeout(() => req.socket.destroy(), ms).unref();
  const done = () => clearTimeout(reset);
  req.once('end', done);
  req.once('close', done);
  req.resume();
  return true;
}
