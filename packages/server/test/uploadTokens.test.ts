import { createHash } from 'node:crypto';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { LiftoffClient } from '@liftoff/core';
import { BACKENDS, pgAvailable } from '../../../test/helpers/postgres.js';
import { refusal, startBackendServer, startedRun, type BackendServer } from './factory.js';

const sha = (b: Buffer | string) => createHash('sha256').update(b).digest('hex');
/**
 * Tokens live half as long as a silent agent's runs take to be declared lost (runLostAfterMs below), so moving the
 * clock past a token's expiry does not also let the reaper end its run (and drop the fresh token) mid-test.
 */
const TOKEN_TTL = 30 * 60_000;
const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

/** Uploads `data` as `path` of `run` with a client presenting an upload token (no agent id anywhere). */
async function tokenUpload(t: LiftoffClient, run: string, path: string, data: Buffer) {
  const u = await t.startOutputUpload(run, { path, size: data.length, sha256: sha(data) });
  return t.putOutputBytes(run, u.upload_id, undefined, u.offset, [data.subarray(u.offset)], data.length - u.offset);
}

/**
 * Per-run upload tokens (docs/outputs.md, Kubernetes), once per backend: what a token authorises (its run's three
 * upload calls while the run is live and the token unexpired) and what it does not (other runs: 404; anything else:
 * 401), that every way a run ends drops its tokens, and that only the token's sha256 is stored.
 */
for (const backend of BACKENDS) {
  describe.skipIf(backend === 'postgres' && !pgAvailable)(`run upload tokens on ${backend}`, () => {
    let b: BackendServer;
    let c: LiftoffClient;
    let offset = 0;
    const now = () => Date.now() + offset;
    let n = 0;
    const run = async () => {
      const agent = `u${n++}`;
      const id = await startedRun(c, agent);
      await c.reportRun(id, { agent_id: agent, state: 'running' });
      return { agent, id };
    };
    const tokenFor = async (r: { agent: string; id: string }) => {
      const t = await c.createUploadToken(r.id, { agent_id: r.agent });
      return { ...t, client: new LiftoffClient({ baseUrl: b.server.url, apiKey: t.token }) };
    };
    const tokensOf = async (runId: string) =>
      (await b.query(`SELECT token_hash FROM run_upload_tokens WHERE run_id = '${runId}'`)).map((r) => r.token_hash);

    beforeAll(async () => {
      b = await startBackendServer(
        backend,
        {
          uploadTokenTtlMs: TOKEN_TTL,
          outputLimits: { runBytes: 1000, runFiles: 10, entityBytes: 1_000_000 },
          heartbeatIntervalMs: 10 * 60_000,
          runLostAfterMs: 60 * 60_000,
          leaseMs: 600 * 60_000,
          reapIntervalMs: 50,
        },
        { now },
      );
      c = b.client;
    });
    afterAll(async () => b.close());

    it('uploads, resumes and commits a run outputs with the token alone; the user downloads the bytes', async () => {
      const r = await run();
      const t = await tokenFor(r);
      expect(t.token).toMatch(/^lu_[A-Za-z0-9_-]{43}$/);
      expect(t.run_id).toBe(r.id);
      const model = Buffer.from('weights '.repeat(50));
      // Half the bytes, then a fresh start answers the offset held, and the rest follows from there.
      const u = await t.client.startOutputUpload(r.id, { path: 'model.pt', size: model.length, sha256: sha(model) });
      await t.client.putOutputBytes(r.id, u.upload_id, undefined, 0, [model.subarray(0, 100)], 100);
      const again = await t.client.startOutputUpload(r.id, {
        path: 'model.pt',
        size: model.length,
        sha256: sha(model),
      });
      expect(again.offset).toBe(100);
      await t.client.putOutputBytes(r.id, u.upload_id, undefined, 100, [model.subarray(100)], model.length - 100);
      const ckpt = Buffer.from('step 7');
      await tokenUpload(t.client, r.id, 'ckpt/last.pt', ckpt);
      const listed = await t.client.commitOutputs(r.id, {
        files: [
          { path: 'model.pt', size: model.length, sha256: sha(model) },
          { path: 'ckpt/last.pt', size: ckpt.length, sha256: sha(ckpt) },
        ],
      });
      expect(listed.outputs.map((o) => o.path)).toEqual(['ckpt/last.pt', 'model.pt']);
      const parts: Buffer[] = [];
      for await (const p of await c.downloadOutput(r.id, 'model.pt')) parts.push(p);
      expect(Buffer.concat(parts).equals(model)).toBe(true);
    });

    it('stores only the token sha256, and tokens are shown once (a second one is another secret)', async () => {
      const r = await run();
      const t1 = await tokenFor(r);
      const t2 = await tokenFor(r);
      expect(t2.token).not.toBe(t1.token);
      const stored = await tokensOf(r.id);
      expect(stored.sort()).toEqual([sha(t1.token), sha(t2.token)].sort());
      const dump = JSON.stringify(await b.query('SELECT * FROM run_upload_tokens'));
      expect(dump).not.toContain(t1.token);
      expect(dump).not.toContain(t1.token.slice(3));
    });

    it('a token does not upload to another run: 404 on each of the three calls', async () => {
      const r1 = await run();
      const r2 = await run();
      const t2 = await tokenFor(r2);
      const u1 = await c.startOutputUpload(r1.id, { agent_id: r1.agent, path: 'a', size: 1, sha256: sha('a') });
      const start = await refusal(t2.client.startOutputUpload(r1.id, { path: 'a', size: 1, sha256: sha('a') }));
      expect([start.code, start.httpStatus]).toEqual(['NOT_FOUND', 404]);
      const put = await refusal(t2.client.putOutputBytes(r1.id, u1.upload_id, undefined, 0, [Buffer.from('a')], 1));
      expect(put.code).toBe('NOT_FOUND');
      const commit = await refusal(t2.client.commitOutputs(r1.id, { files: [] }));
      expect(commit.code).toBe('NOT_FOUND');
      // The first run's uploads were not touched: its agent still commits them.
      expect((await c.putOutputBytes(r1.id, u1.upload_id, r1.agent, 0, [Buffer.from('a')], 1)).offset).toBe(1);
    });

    it('every other endpoint refuses the token with 401 UPLOAD_TOKEN_REFUSED', async () => {
      const r = await run();
      const t = await tokenFor(r);
      const refused = [
        t.client.whoami(),
        t.client.getRun(r.id),
        t.client.listOutputs(r.id),
        (async () => {
          for await (const _ of await t.client.downloadOutput(r.id, 'x')) break;
        })(),
        t.client.readLogs(r.id),
        t.client.createUploadToken(r.id, { agent_id: r.agent }),
        t.client.revokeUploadTokens(r.id, { agent_id: r.agent }),
        t.client.reportRun(r.id, { agent_id: r.agent, state: 'finished', exit_code: 0 }),
        t.client.appendLogs(r.id, r.agent, 0, 'hi'),
        t.client.runSecrets(r.id, r.agent),
        t.client.heartbeat(r.agent, 'RUNNING', 1),
        t.client.listQueues('default'),
        t.client.cancelRun(r.id),
      ];
      for (const p of refused) {
        const e = await refusal(p);
        expect([e.code, e.httpStatus]).toEqual(['UPLOAD_TOKEN_REFUSED', 401]);
      }
      // An unknown token shaped like one is refused the same way.
      const forged = new LiftoffClient({ baseUrl: b.server.url, apiKey: `lu_${'A'.repeat(43)}` });
      expect((await refusal(forged.startOutputUpload(r.id, { path: 'a', size: 1, sha256: sha('a') }))).code).toBe(
        'UPLOAD_TOKEN_REFUSED',
      );
      // The run is untouched by all of that.
      expect((await c.getRun(r.id)).status).toBe('running');
    });

    it('the agent key path still needs agent_id; a user key is not the agent', async () => {
      const r = await run();
      const e = await refusal(c.startOutputUpload(r.id, { path: 'a', size: 1, sha256: sha('a') }));
      expect(e.code).toBe('BAD_REQUEST');
    });

    it('the per-run limits apply to token uploads unchanged', async () => {
      const r = await run();
      const t = await tokenFor(r);
      const e = await refusal(tokenUpload(t.client, r.id, 'big', Buffer.alloc(2000)));
      expect(e.code).toBe('OUTPUTS_TOO_LARGE');
      const bad = await refusal(t.client.startOutputUpload(r.id, { path: '../x', size: 1, sha256: sha('a') }));
      expect(bad.code).toBe('OUTPUT_PATH_REFUSED');
    });

    it('a token expires by the (injected) clock', async () => {
      const r = await run();
      const t = await tokenFor(r);
      expect(t.expires_at - now()).toBeLessThanOrEqual(TOKEN_TTL);
      await tokenUpload(t.client, r.id, 'early', Buffer.from('x'));
      offset += TOKEN_TTL + 1000;
      try {
        const e = await refusal(tokenUpload(t.client, r.id, 'late', Buffer.from('y')));
        expect(e.code).toBe('UPLOAD_TOKEN_REFUSED');
        expect(e.message).toContain('expired');
        // A fresh one from the agent works again.
        const t2 = await tokenFor(r);
        await tokenUpload(t2.client, r.id, 'late', Buffer.from('y'));
      } finally {
        offset -= TOKEN_TTL + 1000;
      }
    });

    it('the agent revokes a run tokens', async () => {
      const r = await run();
      const t = await tokenFor(r);
      await tokenFor(r);
      await c.revokeUploadTokens(r.id, { agent_id: r.agent });
      expect(await tokensOf(r.id)).toEqual([]);
      expect((await refusal(tokenUpload(t.client, r.id, 'a', Buffer.from('a')))).code).toBe('UPLOAD_TOKEN_REFUSED');
      // Only the agent holding the run may ask for or revoke them: to another agent the run is unknown.
      const other = await run();
      expect((await refusal(c.createUploadToken(r.id, { agent_id: other.agent }))).code).toBe('NOT_FOUND');
      expect((await refusal(c.revokeUploadTokens(r.id, { agent_id: other.agent }))).code).toBe('NOT_FOUND');
    });

    it('a run that ends takes its tokens: a report, a sync report, a cancel, a preemption', async () => {
      const ends: Array<(r: { agent: string; id: string }) => Promise<unknown>> = [
        (r) => c.reportRun(r.id, { agent_id: r.agent, state: 'finished', exit_code: 0 }),
        (r) => c.sync(r.agent, { reports: [{ run_id: r.id, state: 'failed', exit_code: 1 }] }),
        async (r) => {
          await c.cancelRun(r.id);
          return c.reportRun(r.id, { agent_id: r.agent, state: 'stopped', exit_code: 143 });
        },
        (r) => c.reportRun(r.id, { agent_id: r.agent, state: 'preempted' }),
      ];
      for (const end of ends) {
        const r = await run();
        const t = await tokenFor(r);
        await tokenUpload(t.client, r.id, 'before', Buffer.from('a'));
        await end(r);
        expect(await tokensOf(r.id)).toEqual([]);
        const e = await refusal(tokenUpload(t.client, r.id, 'after', Buffer.from('b')));
        expect(e.code).toBe('UPLOAD_TOKEN_REFUSED');
        // And none is handed out for an ended run.
        expect((await refusal(c.createUploadToken(r.id, { agent_id: r.agent }))).code).toBe('CONFLICT');
      }
    });

    it('a cancelling run still uploads (a checkpoint on SIGTERM) until it ends stopped', async () => {
      const r = await run();
      const t = await tokenFor(r);
      await c.cancelRun(r.id);
      await tokenUpload(t.client, r.id, 'ckpt', Buffer.from('c'));
      await t.client.commitOutputs(r.id, { files: [{ path: 'ckpt', size: 1, sha256: sha('c') }] });
      await c.reportRun(r.id, { agent_id: r.agent, state: 'stopped', exit_code: 3 });
      expect((await c.listOutputs(r.id)).outputs.map((o) => o.path)).toEqual(['ckpt']);
    });

    it('a run declared lost by the reaper takes its tokens', async () => {
      const r = await run();
      const t = await tokenFor(r);
      offset += 61 * 60_000;
      try {
        for (let i = 0; i < 400 && (await c.getRun(r.id)).status !== 'lost'; i++) await sleep(25);
        expect((await c.getRun(r.id)).status).toBe('lost');
        expect(await tokensOf(r.id)).toEqual([]);
        expect((await refusal(tokenUpload(t.client, r.id, 'a', Buffer.from('a')))).code).toBe('UPLOAD_TOKEN_REFUSED');
      } finally {
        offset -= 61 * 60_000;
      }
    });
  });

  describe.skipIf(backend === 'postgres' && !pgAvailable)(`upload tokens and retention on ${backend}`, () => {
    it('pruning an ended run deletes any token row left of it', async () => {
      const b = await startBackendServer(backend);
      try {
        const agent = 'ret';
        const id = await startedRun(b.client, agent);
        await b.client.reportRun(id, { agent_id: agent, state: 'finished', exit_code: 0 });
        // A row its end did not drop (written past the end, as a racing token request could): pruning takes it too.
        await b.exec(
          `INSERT INTO run_upload_tokens (token_hash, run_id, agent_id, created_at, expires_at) VALUES ('${sha('x')}', '${id}', '${agent}', 0, 9999999999999)`,
        );
        await b.restart({ retention: { maxAgeMs: null, keepPerQueue: 0 }, pruneIntervalMs: 50 });
        for (let i = 0; i < 400 && (await b.query(`SELECT id FROM runs WHERE id = '${id}'`)).length; i++)
          await sleep(25);
        expect(await b.query(`SELECT id FROM runs WHERE id = '${id}'`)).toEqual([]);
        expect(await b.query(`SELECT token_hash FROM run_upload_tokens`)).toEqual([]);
      } finally {
        await b.close();
      }
    });
  });
}
