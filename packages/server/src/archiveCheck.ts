import { Worker } from 'node:worker_threads';
import { SourceRefusedError, type ArchiveLimits } from '@liftoff/core';

/** What the worker (archiveCheckWorker.ts) is given and answers. */
export interface ArchiveCheckRequest {
  path: string;
  limits: ArchiveLimits;
}
export type ArchiveCheckAnswer = { ok: true; entries: number; bytes: number } | { ok: false; message: string };

/** Checks at once; more uploads wait their turn, so a flood of archives costs two cores, not one thread each. */
const MAX_CONCURRENT = 2;
let running = 0;
const waiting: Array<() => void> = [];

async function slot(): Promise<() => void> {
  if (running >= MAX_CONCURRENT) await new Promise<void>((resolve) => waiting.push(resolve));
  running++;
  return () => {
    running--;
    waiting.shift()?.();
  };
}

/**
 * Checks an uploaded archive (entries that escape, and the caps of `limits`) in a worker thread, so however hostile
 * the archive, the event loop keeps serving polls, heartbeats and other requests meanwhile. The worker gets a heap
 * limit and `timeoutMs`; one that runs out of either is ended and the archive refused.
 */
export async function checkArchiveInWorker(
  req: ArchiveCheckRequest,
  timeoutMs = 60_000,
): Promise<{ entries: number; bytes: number }> {
  const release = await slot();
  try {
    const answer = await new Promise<ArchiveCheckAnswer>((resolve, reject) => {
      const worker = new Worker(new URL('./archiveCheckWorker.js', import.meta.url), {
        workerData: req,
        resourceLimits: { maxOldGenerationSizeMb: 256 },
      });
      const timer = setTimeout(() => {
        void worker.terminate();
        resolve({ ok: false, message: `checking it took longer than ${Math.round(timeoutMs / 1000)} s` });
      }, timeoutMs);
      worker.once('message', (m: ArchiveCheckAnswer) => {
        clearTimeout(timer);
        resolve(m);
      });
      worker.once('error', (e) => {
        clearTimeout(timer);
        // ERR_WORKER_OUT_OF_MEMORY and the like: the archive, not the server, is at fault.
        resolve({ ok: false, message: `checking it failed (${e.message})` });
      });
      worker.once('exit', (code) => {
        clearTimeout(timer);
        if (code !== 0) reject(new Error(`archive check worker exited with code ${code}`));
      });
    });
    if (!answer.ok) {
      throw new SourceRefusedError(
        answer.message.startsWith('Refused code archive') ? answer.message : `Refused code archive: ${answer.message}.`,
      );
    }
    return { entries: answer.entries, bytes: answer.bytes };
  } finally {
    release();
  }
}
