import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { create as createTar } from 'tar';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { LiftoffClient } from '@liftoff/core';
import { BACKENDS, pgAvailable } from '../../../test/helpers/postgres.js';
import { refusal, startBackendServer, type BackendServer } from './factory.js';

const COMMIT = 'a'.repeat(40);

/** A .tar.gz holding one file with this content: distinct content, distinct archive. */
async function tgz(content: string): Promise<Buffer> {
  const dir = mkdtempSync(join(tmpdir(), 'liftoff-jobs-'));
  writeFileSync(join(dir, 'a.py'), content);
  const chunks: Buffer[] = [];
  for await (const b of createTar({ gzip: true, cwd: dir, portable: true }, ['a.py']) as AsyncIterable<Buffer>)
    chunks.push(b);
  rmSync(dir, { recursive: true, force: true });
  return Buffer.concat(chunks);
}
const schema = {
  type: 'object',
  properties: { lr: { type: 'number', maximum: 1 }, opt: { enum: ['adam', 'sgd'] } },
  required: ['lr'],
  additionalProperties: false,
};

/** Jobs: versions, aliases, schemas, launches of a version, roles, and archives kept while a version references them. */
for (const backend of BACKENDS) {
  describe.skipIf(backend === 'postgres' && !pgAvailable)(`jobs on ${backend}`, () => {
    let b: BackendServer;
    let c: LiftoffClient;
    let archive: string;
    let other: string;
    const client = (key: string) => new LiftoffClient({ baseUrl: b.server.url, apiKey: key });

    beforeAll(async () => {
      b = await startBackendServer(backend);
      c = b.client;
      archive = (await c.uploadArchive(await tgz('one'))).id;
      other = (await c.uploadArchive(await tgz('two'))).id;
      await c.createQueue('default', { name: 'q', resource: 'local-process' });
    });
    afterAll(async () => {
      await b?.close();
    });

    it('numbers versions, reuses an unchanged one, and moves latest and aliases', async () => {
      const def = { source: { type: 'code' as const, archive_id: archive }, entry_point: ['python3', 'train.py'] };
      const v0 = await c.createJobVersion('default', 'train', { ...def, aliases: ['stable'] });
      expect(v0).toMatchObject({ version: 'v0', created: true, aliases: ['latest', 'stable'], job: 'train' });
      expect(v0.archive_sha256).toMatch(/^[0-9a-f]{64}$/);
      const again = await c.createJobVersion('default', 'train', def);
      expect(again).toMatchObject({ version: 'v0', created: false, digest: v0.digest });
      const v1 = await c.createJobVersion('default', 'train', { ...def, source: { type: 'code', archive_id: other } });
      expect(v1).toMatchObject({ version: 'v1', created: true, aliases: ['latest'] });
      expect(await c.getJob('default', 'train')).toMatchObject({
        versions: 2,
        latest: 'v1',
        aliases: { latest: 'v1', stable: 'v0' },
      });
      expect((await c.jobVersion('default', 'train', 'stable')).version).toBe('v0');
      expect((await c.jobVersion('default', 'train')).version).toBe('v1');
      await c.setJobAlias('default', 'train', 'stable', 'v1');
      expect((await c.jobVersion('default', 'train', 'stable')).version).toBe('v1');
      expect((await c.jobVersions('default', 'train')).versions.map((v) => v.version)).toEqual(['v0', 'v1']);
      expect((await c.listJobs('default')).jobs.map((j) => j.name)).toContain('train');
      expect((await refusal(c.setJobAlias('default', 'train', 'latest', 'v0'))).code).toBe('BAD_REQUEST');
      expect((await refusal(c.jobVersion('default', 'train', 'v7'))).code).toBe('NOT_FOUND');
    });

    it('refuses a git ref that is not a commit, an image job with build settings, and another entity’s archive', async () => {
      const git = { type: 'git' as const, url: 'https://example.com/r.git', ref: 'main' };
      expect(
        (await refusal(c.createJobVersion('default', 'g', { source: git, entry_point: ['x'] }))).message,
      ).toContain('commit');
      const img = { source: { type: 'image' as const, image: 'python:3.12' }, base_image: 'debian:12' };
      expect((await refusal(c.createJobVersion('default', 'i', img))).code).toBe('BAD_REQUEST');
      await c.createTeam('elsewhere');
      const theirs = (await c.uploadArchive(await tgz('theirs'), 'elsewhere')).id;
      const r = await refusal(
        c.createJobVersion('default', 'x', { source: { type: 'code', archive_id: theirs }, entry_point: ['x'] }),
      );
      expect(r.code).toBe('NOT_FOUND');
    });

    it('checks the schema itself: invalid, with a user regex, or too large', async () => {
      const def = {
        source: { type: 'git' as const, url: 'https://example.com/r.git', ref: COMMIT },
        entry_point: ['x'],
      };
      const bad = await refusal(
        c.createJobVersion('default', 's', {
          ...def,
          schema: { type: 'object', properties: { lr: { type: 'nmbr' } } },
        }),
      );
      expect(bad.message).toContain('run-config schema is not usable');
      const regex = await refusal(
        c.createJobVersion('default', 's', {
          ...def,
          schema: { type: 'object', properties: { n: { type: 'string', pattern: '^(a+)+$' } } },
        }),
      );
      expect(regex.message).toContain('"pattern"');
      const big = { type: 'object', description: 'x'.repeat(70_000) };
      expect((await refusal(c.createJobVersion('default', 's', { ...def, schema: big }))).message).toContain('bytes');
      // A property that is merely named like a keyword is fine.
      const ok = { type: 'object', properties: { pattern: { type: 'string' } } };
      await expect(c.createJobVersion('default', 's', { ...def, schema: ok })).resolves.toMatchObject({
        version: 'v0',
      });
    });

    it('launches a version: its source wins, the run config is checked against its schema before anything is queued', async () => {
      const def = { source: { type: 'code' as const, archive_id: archive }, entry_point: ['python3', 'a.py'], schema };
      await c.createJobVersion('default', 'schemed', { ...def, dockerfile: 'Dockerfile.gpu' });
      const pending = (await c.getQueue('default', 'q')).pending;
      const spec = (run_config: Record<string, unknown>) => ({
        // Whatever source the push says, the version's is used.
        source: { type: 'git' as const, url: 'https://example.com/else.git' },
        entry_point: ['python3', 'a.py'],
        run_config,
        job: { name: 'schemed', version: 'v0' },
      });
      const r = await refusal(c.push('default', 'q', { spec: spec({ lr: 5, opt: 'adagrad', extra: 1 }) }));
      expect(r.code).toBe('BAD_REQUEST');
      expect(r.message).toContain('lr: must be <= 1');
      expect(r.message).toContain('opt: must be equal to one of the allowed values');
      expect(r.message).toContain('extra: is not allowed by the schema');
      expect((await refusal(c.push('default', 'q', { spec: spec({}) }))).message).toContain('lr: is required');
      expect((await c.getQueue('default', 'q')).pending).toBe(pending);
      const item = await c.push('default', 'q', { spec: spec({ lr: 0.1 }) });
      expect(item.spec).toMatchObject({
        source: { type: 'code', archive_id: archive },
        dockerfile: 'Dockerfile.gpu',
        job: { name: 'schemed', version: 'v0' },
      });
      expect(
        (
          await refusal(
            c.push('default', 'q', { spec: { ...spec({ lr: 0.1 }), job: { name: 'schemed', version: 'v9' } } }),
          )
        ).code,
      ).toBe('NOT_FOUND');
      expect(item.spec.wandb_env).toBeUndefined();
      // A job that opts in to W&B's environment gives it to every launch.
      await c.createJobVersion('default', 'wandb', { ...def, schema: null, wandb_env: true });
      const opted = await c.push('default', 'q', {
        spec: { ...spec({}), job: { name: 'wandb', version: 'v0' } },
      });
      expect(opted.spec.wandb_env).toBe(true);
    });

    it('numbers concurrent creates of one job without a gap or a failure', async () => {
      const made = await Promise.all(
        Array.from({ length: 6 }, (_, i) =>
          c.createJobVersion('default', 'race', {
            source: { type: 'git', url: 'https://example.com/r.git', ref: COMMIT },
            entry_point: ['python3', `step${i}.py`],
          }),
        ),
      );
      expect(made.map((v) => v.version).sort()).toEqual(['v0', 'v1', 'v2', 'v3', 'v4', 'v5']);
      expect((await c.getJob('default', 'race')).versions).toBe(6);
    });

    it('keeps an archive a job version references: the database refuses to delete it', async () => {
      await expect(b.exec(`DELETE FROM code_archives WHERE id = '${archive}'`)).rejects.toThrow(/foreign key/i);
    });

    it('respects roles: other entities are 404, agent keys read only, members create, admins delete', async () => {
      await c.createUser('mia');
      await c.createTeam('lab');
      await c.addMember('lab', 'mia', 'member');
      const mia = client((await c.createKey({ name: 'mia', role: 'admin', user: 'mia' })).key);
      const agent = client((await c.createKey({ name: 'lab-agent', role: 'agent', entity: 'lab' })).key);
      const labArchive = (await mia.uploadArchive(await tgz('lab'), 'lab')).id;
      const def = { source: { type: 'code' as const, archive_id: labArchive }, entry_point: ['x'] };
      await expect(mia.createJobVersion('lab', 'j', def)).resolves.toMatchObject({ version: 'v0' });
      await expect(agent.getJob('lab', 'j')).resolves.toMatchObject({ name: 'j' });
      expect((await refusal(agent.createJobVersion('lab', 'j', def))).code).toBe('FORBIDDEN');
      expect((await refusal(mia.getJob('default', 'train'))).code).toBe('NOT_FOUND');
      expect((await refusal(mia.createJobVersion('default', 'train', def))).code).toBe('NOT_FOUND');
      expect((await refusal(mia.deleteJob('lab', 'j'))).code).toBe('FORBIDDEN');
      await c.deleteJob('lab', 'j');
      expect((await refusal(mia.getJob('lab', 'j'))).code).toBe('NOT_FOUND');
    });
  });
}
