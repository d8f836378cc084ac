import { createHash } from 'node:crypto';
import { describeCause, type LiftoffClient } from '@liftoff/core';
import { withRetry } from '../retry.js';
import { collectOutputs, openOutput, readFrom, type CollectedFile } from './collect.js';

const MiB = 1024 * 1024;
/** How long one file's upload keeps resuming after transient failures (a server restart, a network cut). */
const FILE_DEADLINE_MS = 10 * 60_000;

const size = (n: number) => (n >= MiB ? `${(n / MiB).toFixed(1)} MiB` : `${n} bytes`);

/**
 * After the run ended: uploads what its output dir holds and commits it, so the run's outputs are listed at once,
 * or not at all. Each file is hashed first, then sent from the offset the server reports; a transient failure
 * starts the file again, which answers the offset to resume from. Any refusal (a limit, a path) ends the upload
 * with a note, and an empty commit then drops what was sent: nothing partial is listed and nothing is left behind.
 * Never throws: the run's own outcome is reported whatever happens here.
 */
export async function uploadOutputs(
  client: LiftoffClient,
  runId: string,
  agentId: string,
  dir: string,
  cap: { bytes: number; capped: boolean; ownerUid?: number },
  note: (line: string) => void,
): Promise<void> {
  let sent = false;
  try {
    const { files, total, over } = await collectOutputs(dir, cap.bytes, cap.capped, note, cap.ownerUid);
    if (over) {
      note(
        `outputs not uploaded: LIFTOFF_OUTPUT_DIR ${cap.capped && total <= cap.bytes ? 'filled' : `holds ${size(total)}, over`} its cap of ${size(cap.bytes)}${cap.capped ? " (writes past it failed with 'No space left on device', so a file may be cut short)" : ''}; nothing is listed. Write less there, or raise the agent's outputs-max-mib.`,
      );
      await dropUploads(client, runId, agentId);
      return;
    }
    if (!files.length) return;
    note(`uploading outputs: ${files.length} file(s), ${size(total)}`);
    const committed: Array<{ path: string; size: number; sha256: string }> = [];
    for (const f of files) {
      sent = true;
      committed.push({ path: f.rel, size: f.size, sha256: await uploadFile(client, runId, agentId, f) });
    }
    await withRetry(() => client.commitOutputs(runId, { agent_id: agentId, files: committed }), {
      deadlineMs: FILE_DEADLINE_MS,
    });
    note(`outputs uploaded: ${files.length} file(s), ${size(total)} (liftoff runs outputs ${runId})`);
  } catch (e) {
    note(`outputs not uploaded: ${describeCause(e)}; nothing is listed`);
    if (sent) await dropUploads(client, runId, agentId);
  }
}

async function uploadFile(client: LiftoffClient, runId: string, agentId: string, f: CollectedFile): Promise<string> {
  const fh = await openOutput(f);
  try {
    const hash = createHash('sha256');
    for await (const piece of readFrom(fh, 0)) hash.update(piece);
    const sha256 = hash.digest('hex');
    await withRetry(
      async () => {
        const u = await client.startOutputUpload(runId, { agent_id: agentId, path: f.rel, size: f.size, sha256 });
        if (u.offset < f.size)
          await client.putOutputBytes(runId, u.upload_id, agentId, u.offset, readFrom(fh, u.offset), f.size - u.offset);
      },
      { deadlineMs: FILE_DEADLINE_MS },
    );
    return sha256;
  } finally {
    await fh.close();
  }
}

/** An empty commit: the server drops every upload of the run and lists nothing (best effort). */
async function dropUploads(client: LiftoffClient, runId: string, agentId: string): Promise<void> {
  await client.commitOutputs(runId, { agent_id: agentId, files: [] }).catch(() => undefined);
}
