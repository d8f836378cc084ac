import { createReadStream } from 'node:fs';
import { parentPort, workerData } from 'node:worker_threads';
import { assertSafeArchive } from '@liftoff/core';
import type { ArchiveCheckAnswer, ArchiveCheckRequest } from './archiveCheck.js';

/** Runs in a worker thread (archiveCheck.ts): checks one uploaded archive file and answers once. */
const { path, limits } = workerData as ArchiveCheckRequest;
let answer: ArchiveCheckAnswer;
try {
  answer = { ok: true, ...(await assertSafeArchive(createReadStream(path), limits)) };
} catch (e) {
  answer = { ok: false, message: (e as Error).message };
}
parentPort?.postMessage(answer);
