import { createHash } from 'node:crypto';
import { request } from 'node:http';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { LiftoffClient, type LiftoffError } from '@liftoff/core';
import { BACKENDS, pgAvailable } from '../../../test/helpers/postgres.js';
import { refusal, startBackendServer, startedRun, type BackendServer } from './factory.js';

const sha = (b: Buffer) => createHash('sha256').update(b).digest('hex');
const MiB = 1024 * 1024;

/** Sends `data` whole as one upload of `path` and returns the upload's answer. */
async function upload(c: LiftoffClient, run: string, agent: string, path: string, data: Buffer) {
  const u = await c.startOutputUpload(run, { agent_id: agent, path, size: data.length, sha256: sha(data) });
  return c.putOutputBytes(run, u.upload_id, agent, u.offset, [data.subarray(u.offset)], data.length - u.offset);
}

async function download(c: LiftoffClient, run: string, path: string): Promise<Buffer> {
  const parts: Buffer[] = [];
  for await (const p of await c.downloadOutput(run, path)) parts.push(p);
  return Buffer.concat(parts);
}

/**
 * Sends the first `cut` bytes of an upload announced as `total` bytes, then drops the connection (an agent killed
 * or a network cut mid-file).
 */
function interruptedPut(
  base: string,
  key: string,
  run: string,
  upload: string,
  agent: string,
  data: Buffer,
  cut: number,
) {
  return new Promise<void>((resolve) => {
    const url = new URL(`${base}/api/runs/${run}/outputs/uploads/${upload}?agent_id=${agent}&offset=0`);
    const req = request(url, {
      method: 'PUT',
      headers: {
        authorization: `Bearer ${key}`,
        'content-type': 'application/octet-stream',
        'content-length': String(data.length),
      },
    });
    req.on('error', () => resolve());
    req.on('close', () => resolve());
    req.write(data.subarray(0, cut), () => setTimeout(() => req.destroy(), 200));
  });
}

/** Issue 17, outputs on the server: uploads (agent side), commit, list and download (user side). */
for (const backend of BACKENDS) {
  describe.skipIf(backend === 'postgres' && !pgAvailable)(`run outputs on ${backend}`, () => {
    let b: BackendServer;
    let c: LiftoffClient;
    let n = 0;
    const run = async () => {
      const agent = `o${n++}`;
      return { agent, id: await startedRun(c, agent) };
    };

    beforeAll(async () => {
      b = await startBackendServer(backend);
      c = b.client;
    });
    afterAll(async () => b.close());

    it('lists nothing until the commit, then every file at once; downloads carry the bytes and headers', async () => {
      const r = await run();
      const model = Buffer.from('weights'.repeat(1000));
      const log = Buffer.from('epoch 1\n');
      await upload(c, r.id, r.agent, 'model.pt', model);
      await upload(c, r.id, r.agent, 'logs/train.txt', log);
      expect((await c.listOutputs(r.id)).outputs).toEqual([]);
      const committed = await c.commitOutputs(r.id, {
        agent_id: r.agent,
        files: [
          { path: 'model.pt', size: model.length, sha256: sha(model) },
          { path: 'logs/train.txt', size: log.length, sha256: sha(log) },
        ],
      });
      expect(committed.outputs.map((o) => [o.path, o.size, o.sha256])).toEqual([
        ['logs/train.txt', log.length, sha(log)],
        ['model.pt', model.length, sha(model)],
      ]);
      expect((await c.listOutputs(r.id)).total_bytes).toBe(model.length + log.length);
      expect((await download(c, r.id, 'model.pt')).equals(model)).toBe(true);
      const res = await fetch(`${c.baseUrl}/api/runs/${r.id}/outputs/file?path=logs%2Ftrain.txt`, {
        headers: { authorization: `Bearer ${readKey(b)}` },
      });
      expect(res.status).toBe(200);
      expect(res.headers.get('content-length')).toBe(String(log.length));
      expect(res.headers.get('content-disposition')).toBe('attachment; filename=train.txt');
      expect(Buffer.from(await res.arrayBuffer()).equals(log)).toBe(true);
      // Once committed, a run's outputs are final.
      expect((await refusal(upload(c, r.id, r.agent, 'late.txt', log))).code).toBe('CONFLICT');
      expect((await refusal(c.commitOutputs(r.id, { agent_id: r.agent, files: [] }))).code).toBe('CONFLICT');
      expect((await refusal(download(c, r.id, 'missing'))).code).toBe('NOT_FOUND');
    });

    it('refuses a commit naming a file not uploaded whole, and lists nothing of it', async () => {
      const r = await run();
      const a = Buffer.from('aaaa');
      const big = Buffer.alloc(1000, 7);
      await upload(c, r.id, r.agent, 'a.txt', a);
      const u = await c.startOutputUpload(r.id, {
        agent_id: r.agent,
        path: 'big.bin',
        size: big.length,
        sha256: sha(big),
      });
      await c.putOutputBytes(r.id, u.upload_id, r.agent, 0, [big.subarray(0, 10)], 10);
      const files = [
        { path: 'a.txt', size: a.length, sha256: sha(a) },
        { path: 'big.bin', size: big.length, sha256: sha(big) },
      ];
      expect((await refusal(c.commitOutputs(r.id, { agent_id: r.agent, files }))).code).toBe('CONFLICT');
      expect((await c.listOutputs(r.id)).outputs).toEqual([]);
      // A wrong offset is refused with the server's offset in the message.
      const wrong = await refusal(c.putOutputBytes(r.id, u.upload_id, r.agent, 0, [big.subarray(0, 10)], 10));
      expect(wrong.message).toContain('send from offset 10');
      await c.putOutputBytes(r.id, u.upload_id, r.agent, 10, [big.subarray(10)], big.length - 10);
      // Only what the commit names is listed; an upload it leaves out is dropped.
      await upload(c, r.id, r.agent, 'stray.txt', a);
      await c.commitOutputs(r.id, { agent_id: r.agent, files });
      expect((await c.listOutputs(r.id)).outputs.map((o) => o.path)).toEqual(['a.txt', 'big.bin']);
      expect((await download(c, r.id, 'big.bin')).equals(big)).toBe(true);
    });

    it('resumes an interrupted upload from the offset the server reports', async () => {
      const r = await run();
      const data = Buffer.alloc(12 * MiB);
      for (let i = 0; i < data.length; i += 4) data.writeUInt32LE(i, i);
      const u = await c.startOutputUpload(r.id, {
        agent_id: r.agent,
        path: 'ckpt/step-1.pt',
        size: data.length,
        sha256: sha(data),
      });
      await interruptedPut(c.baseUrl, readKey(b), r.id, u.upload_id, r.agent, data, 8.5 * MiB);
      // Both stores record whole chunks only (8 MiB, or 2 × 4 MiB): the half chunk after them is sent again.
      let offset = 0;
      for (let i = 0; i < 200 && offset !== 8 * MiB; i++) {
        offset = (
          await c.startOutputUpload(r.id, {
            agent_id: r.agent,
            path: 'ckpt/step-1.pt',
            size: data.length,
            sha256: sha(data),
          })
        ).offset;
        if (offset !== 8 * MiB) await new Promise((res) => setTimeout(res, 50));
      }
      expect(offset).toBe(8 * MiB);
      expect((await c.listOutputs(r.id)).outputs).toEqual([]);
      await c.putOutputBytes(r.id, u.upload_id, r.agent, offset, [data.subarray(offset)], data.length - offset);
      await c.commitOutputs(r.id, {
        agent_id: r.agent,
        files: [{ path: 'ckpt/step-1.pt', size: data.length, sha256: sha(data) }],
      });
      expect(sha(await download(c, r.id, 'ckpt/step-1.pt'))).toBe(sha(data));
    });

    it('resets an upload whose bytes do not match its sha256', async () => {
      const r = await run();
      const good = Buffer.from('the real checkpoint');
      const bad = Buffer.from('a forged checkpoint');
      const u = await c.startOutputUpload(r.id, {
        agent_id: r.agent,
        path: 'm.pt',
        size: good.length,
        sha256: sha(good),
      });
      const e = await refusal(c.putOutputBytes(r.id, u.upload_id, r.agent, 0, [bad], bad.length));
      expect(e.code).toBe('CONFLICT');
      expect(e.message).toContain('sha256');
      expect(
        (await c.startOutputUpload(r.id, { agent_id: r.agent, path: 'm.pt', size: good.length, sha256: sha(good) }))
          .offset,
      ).toBe(0);
      const more = Buffer.concat([good, Buffer.from('x')]);
      expect((await refusal(c.putOutputBytes(r.id, u.upload_id, r.agent, 0, [more], more.length))).code).toBe(
        'BAD_REQUEST',
      );
    });

    it('refuses hostile paths with OUTPUT_PATH_REFUSED', async () => {
      const r = await run();
      const hostile = [
        '../escape',
        'a/../../b',
        '/etc/passwd',
        'a//b',
        './a',
        'a/.',
        '',
        'nul\u0000byte',
        'line\nbreak',
        'esc\u001b[2Jape',
        'back\\slash',
        'x'.repeat(300),
        `${'d/'.repeat(40)}f`,
        `${'abcdefgh/'.repeat(120)}f`,
      ];
      for (const path of hostile) {
        const e = await refusal(
          c.startOutputUpload(r.id, { agent_id: r.agent, path, size: 1, sha256: sha(Buffer.from('x')) }),
        );
        expect([path, e.code]).toEqual([path, path.includes('\u0000') ? 'BAD_REQUEST' : 'OUTPUT_PATH_REFUSED']);
      }
      const x = Buffer.from('x');
      expect(
        (
          await refusal(
            c.commitOutputs(r.id, { agent_id: r.agent, files: [{ path: '../x', size: 1, sha256: sha(x) }] }),
          )
        ).code,
      ).toBe('OUTPUT_PATH_REFUSED');
      // Unicode and dots inside names are fine.
      await upload(c, r.id, r.agent, 'modèle..v1/ß.pt', x);
    });

    it('only the agent holding the run uploads; only members of its entity list and download', async () => {
      const r = await run();
      const other = await run();
      const x = Buffer.from('x');
      // Another agent (same key, another run) is answered as for an unknown run.
      expect((await refusal(upload(c, r.id, other.agent, 'a', x))).code).toBe('NOT_FOUND');
      await c.createUser('ovis');
      await c.createTeam('fold');
      await c.addMember('fold', 'ovis');
      const stranger = new LiftoffClient({
        baseUrl: b.server.url,
        apiKey: (await c.createKey({ name: 'ovis-admin', role: 'admin', user: 'ovis' })).key,
      });
      await upload(c, r.id, r.agent, 'a', x);
      await c.commitOutputs(r.id, { agent_id: r.agent, files: [{ path: 'a', size: 1, sha256: sha(x) }] });
      const foreign: LiftoffError[] = [
        await refusal(stranger.listOutputs(r.id)),
        await refusal(download(stranger, r.id, 'a')),
        await refusal(
          stranger.startOutputUpload(other.id, { agent_id: other.agent, path: 'a', size: 1, sha256: sha(x) }),
        ),
      ];
      expect(foreign.map((e) => e.code)).toEqual(['NOT_FOUND', 'NOT_FOUND', 'NOT_FOUND']);
      // A user key of the run's entity cannot speak for its agent.
      await c.addMember('default', 'ovis');
      const member = new LiftoffClient({
        baseUrl: b.server.url,
        apiKey: (await c.createKey({ name: 'ovis-member', role: 'member', user: 'ovis' })).key,
      });
      expect((await member.listOutputs(r.id)).outputs.map((o) => o.path)).toEqual(['a']);
      expect((await download(member, r.id, 'a')).equals(x)).toBe(true);
      const e = await refusal(
        member.startOutputUpload(other.id, { agent_id: other.agent, path: 'a', size: 1, sha256: sha(x) }),
      );
      expect(e.code).toBe('AGENT_KEY_MISMATCH');
    });

    it('refuses files past the per-run and per-entity limits with the size, the limit and what to do', async () => {
      // A server of its own: the entity's total counts every run of it.
      const limited = await startBackendServer(backend, {
        outputLimits: { runBytes: 1000, runFiles: 3, entityBytes: 1500 },
      });
      const lc = limited.client;
      const r1 = { agent: `o${n++}`, id: '' };
      r1.id = await startedRun(lc, r1.agent);
      const r2 = { agent: `o${n++}`, id: '' };
      r2.id = await startedRun(lc, r2.agent);
      const big = Buffer.alloc(1001);
      const e = await refusal(upload(lc, r1.id, r1.agent, 'big', big));
      expect(e.code).toBe('OUTPUTS_TOO_LARGE');
      expect(e.message).toMatch(/1001 bytes, over the server's limit of 1000 bytes/);
      expect(e.message).toContain('--max-run-outputs-mib');
      await upload(lc, r1.id, r1.agent, 'a', Buffer.alloc(400));
      await upload(lc, r1.id, r1.agent, 'b', Buffer.alloc(400));
      // The same path again with other bytes replaces the file rather than adding to the total.
      await upload(lc, r1.id, r1.agent, 'b', Buffer.alloc(500, 1));
      expect((await refusal(upload(lc, r1.id, r1.agent, 'c', Buffer.alloc(200)))).code).toBe('OUTPUTS_TOO_LARGE');
      await upload(lc, r1.id, r1.agent, 'c', Buffer.alloc(10));
      const files = (await refusal(upload(lc, r1.id, r1.agent, 'd', Buffer.alloc(1)))).message;
      expect(files).toMatch(/4 files, over the server's limit of 3 files/);
      // The entity: r1 holds 910 bytes, so r2 may add at most 590 over both runs.
      const ent = await refusal(upload(lc, r2.id, r2.agent, 'e', Buffer.alloc(600)));
      expect(ent.message).toMatch(/entity, all runs together, would be 1.5 KiB, over the server's limit of 1.5 KiB/);
      await upload(lc, r2.id, r2.agent, 'e', Buffer.alloc(590));
      await limited.close();
    });
  });
}

/** The admin key the factory's client holds. */
function readKey(b: BackendServer): string {
  return (b.client as unknown as { apiKey: string }).apiKey;
}
