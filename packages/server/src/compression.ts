import { constants } from 'node:zlib';
import compress from '@fastify/compress';
import type { App } from './context.js';

/**
 * Files sent as they are stored, with their length and digest: run outputs (models and checkpoints, which rarely
 * compress) and code archives (gzip already). @fastify/compress would compress their octet streams all the same.
 */
const BINARY_DOWNLOADS = new Set(['/api/runs/:id/outputs/file', '/api/code-archives/:id']);

/** Answers smaller than this go as they are: a header and a dictionary would cost more than they save. */
const THRESHOLD_BYTES = 1024;

/**
 * brotli or gzip (as the client accepts) for the API's answers to users and the UI (issue 18: a queue page moved
 * ~225 KB/s of JSON uncompressed), with @fastify/compress. Not for the agent protocol: its answers are small and
 * frequent and agents sit close to the server, where compressing costs the server more CPU than the bytes are worth
 * (issue 20); not for event streams (each event must reach the follower at once, not when a compressor flushes; the
 * log stream writes to the socket itself and never passes through here anyway); nor for binary downloads (below).
 * brotli quality 4 (of 11): close to gzip's CPU for a clearly smaller answer; the UI's own files are compressed once
 * at build time at the highest quality instead (routes/static.ts).
 */
export async function compressAnswers(app: App): Promise<void> {
  app.addHook('onRoute', (route) => {
    const tags = (route.schema as { tags?: string[] } | undefined)?.tags ?? [];
    if (tags.includes('agent protocol') || route.url.endsWith('/stream') || BINARY_DOWNLOADS.has(route.url))
      route.compress = false;
  });
  await app.register(compress, {
    global: true,
    threshold: THRESHOLD_BYTES,
    encodings: ['br', 'gzip'],
    brotliOptions: { params: { [constants.BROTLI_PARAM_QUALITY]: 4 } },
  });
}
