import type { FastifyRequest } from 'fastify';
import { JsonTooDeepError, PayloadTooLargeError, SpecTooLargeError, type LaunchSpec } from '@liftoff/core';
import type { App, ServerSettings } from './context.js';

/**
 * Deepest nesting of objects and arrays in a JSON text, scanned without parsing and without recursion: a linear
 * pass over the characters, skipping strings. Hand-written because the check must run before JSON.parse and zod
 * (both recurse, and a 5,000-deep run_config once reached a 500), and no JSON library offers a depth cap.
 * Stops as soon as `limit` is passed.
 */
export function jsonDepthExceeds(text: string, limit: number): boolean {
  let depth = 0;
  let inString = false;
  for (let i = 0; i < text.length; i++) {
    const c = text.charCodeAt(i);
    if (inString) {
      if (c === 0x5c)
        i++; // backslash: skip the escaped character
      else if (c === 0x22) inString = false;
    } else if (c === 0x22) inString = true;
    else if (c === 0x7b || c === 0x5b) {
      if (++depth > limit) return true;
    } else if (c === 0x7d || c === 0x5d) depth--;
  }
  return false;
}

/**
 * Replaces fastify's JSON parser by the same parser (its prototype-poisoning protection included) behind the depth
 * check, for every JSON body of every route.
 */
export function limitJsonDepth(app: App, settings: Pick<ServerSettings, 'jsonDepth'>): void {
  const parse = app.getDefaultJsonParser('error', 'ignore');
  app.removeContentTypeParser('application/json');
  app.addContentTypeParser('application/json', { parseAs: 'string' }, (req, body, done) => {
    if (jsonDepthExceeds(body as string, settings.jsonDepth)) return done(new JsonTooDeepError(settings.jsonDepth));
    void parse(req, body as string, done);
  });
}

/** The push route: a spec's run_config, serialized, is at most `runConfigBytes`. */
export function assertRunConfigSize(spec: LaunchSpec, settings: Pick<ServerSettings, 'runConfigBytes'>): void {
  const bytes = Buffer.byteLength(JSON.stringify(spec.run_config));
  if (bytes > settings.runConfigBytes) throw new SpecTooLargeError('The run config', bytes, settings.runConfigBytes);
}

/** Routes whose body is a launch spec: past their body limit the answer says SPEC_TOO_LARGE and how to shrink it. */
const SPEC_ROUTES = new Set(['/api/entities/:entity/queues/:queue/items']);

/**
 * fastify's own "body too large" (FST_ERR_CTP_BODY_TOO_LARGE) as a named error that says the route's limit, or
 * undefined for any other error.
 */
export function bodyTooLarge(err: unknown, req: FastifyRequest): Error | undefined {
  if ((err as { code?: string }).code !== 'FST_ERR_CTP_BODY_TOO_LARGE') return undefined;
  const limit = req.routeOptions.bodyLimit ?? 0;
  if (req.routeOptions.url && SPEC_ROUTES.has(req.routeOptions.url))
    return new SpecTooLargeError('The push body (the spec with its run config)', null, limit);
  return new PayloadTooLargeError(
    `The request body is over this route's limit of ${Math.round(limit / 1024)} KiB; send less in one request.`,
  );
}
