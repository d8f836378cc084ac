import { createHash } from 'node:crypto';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { CreateBucketCommand, ListObjectsV2Command, S3Client } from '@aws-sdk/client-s3';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { LiftoffClient, readCredentials } from '@liftoff/core';
import { parseArtifactStore, startServer, type RunningServer } from '@liftoff/server';
import { motoAvailable, startMoto, type Moto } from '../../../test/helpers/moto.js';
import { freshPgDatabase, pgAvailable } from '../../../test/helpers/postgres.js';
import { startedRun } from './factory.js';

const sha = (b: Buffer) => createHash('sha256').update(b).digest('hex');
const haveMoto = pgAvailable && motoAvailable();

/** Issue 17: which artifact store a server may use, and the S3 store shared by two replicas (against moto). */
describe.skipIf(!pgAvailable)('artifact stores on PostgreSQL', () => {
  let db: { url: string; drop: () => Promise<void> };
  let home: string;
  beforeAll(async () => {
    db = await freshPgDatabase();
    home = mkdtempSync(join(tmpdir(), 'liftoff-stores-'));
  });
  afterAll(async () => {
    await db.drop();
    rmSync(home, { recursive: true, force: true });
  });
  const start = (name: string, artifactStore?: ReturnType<typeof parseArtifactStore>) =>
    startServer({
      host: '127.0.0.1',
      port: 0,
      dataDir: join(home, name),
      databaseUrl: db.url,
      env: { HOME: home },
      secretsKeyFile: join(home, 'secrets.key'),
      ...(artifactStore ? { artifactStore } : {}),
    });

  it('refuses the datadir store, naming the stores to use instead', async () => {
    await expect(start('a', parseArtifactStore('datadir'))).rejects.toThrow(
      /replicas on one PostgreSQL do not share: use --artifact-store database .* or --artifact-store s3:\/\/BUCKET\/PREFIX/,
    );
  });

  describe.skipIf(!haveMoto)('the S3 store with two replicas', () => {
    let moto: Moto;
    const servers: RunningServer[] = [];
    beforeAll(async () => {
      moto = await startMoto();
    });
    afterAll(async () => {
      for (const s of servers) await s.close();
      await moto?.stop();
    });

    it('serves through one replica what was uploaded through the other', async () => {
      const credentials = { accessKeyId: 'AKIDLIFTOFFTEST', secretAccessKey: 'liftoff-test-secret' };
      const s3 = new S3Client({ region: 'us-east-1', endpoint: moto.url, forcePathStyle: true, credentials });
      await s3.send(new CreateBucketCommand({ Bucket: 'liftoff-outputs' }));
      const config = parseArtifactStore('s3://liftoff-outputs/runs', { endpoint: moto.url, credentials });
      servers.push(await start('r1', config), await start('r2', config));
      const key = readCredentials(join(home, '.config', 'liftoff', 'credentials'))?.api_key ?? '';
      const [one, two] = servers.map((s) => new LiftoffClient({ baseUrl: s.url, apiKey: key })) as [
        LiftoffClient,
        LiftoffClient,
      ];
      const run = await startedRun(one, 'a1');
      const data = Buffer.alloc(9 * 1024 * 1024 + 17);
      for (let i = 0; i < data.length; i++) data[i] = (i * 31) & 0xff;
      const u = await one.startOutputUpload(run, {
        agent_id: 'a1',
        path: 'model.bin',
        size: data.length,
        sha256: sha(data),
      });
      await one.putOutputBytes(run, u.upload_id, 'a1', 0, [data], data.length);
      await one.commitOutputs(run, {
        agent_id: 'a1',
        files: [{ path: 'model.bin', size: data.length, sha256: sha(data) }],
      });
      const parts: Buffer[] = [];
      for await (const p of await two.downloadOutput(run, 'model.bin')) parts.push(p);
      expect(sha(Buffer.concat(parts))).toBe(sha(data));
      // The bytes are in the bucket under the prefix (two chunks), not in either replica's database.
      const listed = await s3.send(new ListObjectsV2Command({ Bucket: 'liftoff-outputs', Prefix: 'runs/' }));
      expect(listed.Contents?.length).toBe(2);
      s3.destroy();
    });
  });
});
