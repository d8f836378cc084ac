import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { CreateBucketCommand, ListObjectsV2Command, S3Client } from '@aws-sdk/client-s3';
import { afterAll, describe, expect, it } from 'vitest';
import { codeDir } from '../helpers/jobs.js';
import { motoAvailable, startMoto } from '../helpers/moto.js';
import { freshPgDatabase, pgAvailable } from '../helpers/postgres.js';
import { cleanupAll, cli, onCleanup, startAgent, startServer, tempDir } from '../helpers/procs.js';

const runIdOf = (output: string): string => /run (\S+) of item/.exec(output)?.[1] ?? '';

/**
 * Issue 17's acceptance: outputs in the S3 store (moto on loopback) with two `liftoff server` replicas on one
 * PostgreSQL. The agent uploads through replica A; the CLI downloads through replica B.
 */
describe.skipIf(!pgAvailable || !motoAvailable())('outputs in S3 with two server replicas', () => {
  afterAll(cleanupAll);

  it('downloads through one replica what a job uploaded through the other', async () => {
    const moto = await startMoto();
    onCleanup(() => moto.stop());
    const db = await freshPgDatabase();
    onCleanup(() => db.drop());
    const credentials = { accessKeyId: 'AKIDLIFTOFFTEST', secretAccessKey: 'liftoff-test-secret' };
    const s3 = new S3Client({ region: 'us-east-1', endpoint: moto.url, forcePathStyle: true, credentials });
    onCleanup(() => s3.destroy());
    await s3.send(new CreateBucketCommand({ Bucket: 'liftoff-e2e' }));
    const env = { AWS_ACCESS_KEY_ID: credentials.accessKeyId, AWS_SECRET_ACCESS_KEY: credentials.secretAccessKey };
    const flags = [
      '--database',
      db.url,
      '--artifact-store',
      's3://liftoff-e2e/outputs/',
      '--artifact-s3-endpoint',
      moto.url,
    ];
    const a = await startServer({ flags, env });
    const b = await startServer({
      flags: [...flags, '--secrets-key-file', join(a.dataDir, 'secrets.key')],
      env,
      apiKey: a.apiKey,
    });
    await startAgent(a);
    const job = codeDir({
      'main.mjs': `
import { writeFileSync } from 'node:fs';
const data = Buffer.alloc(10 * 1024 * 1024);
for (let i = 0; i < data.length; i++) data[i] = (i * 29) % 253;
writeFileSync(process.env.LIFTOFF_OUTPUT_DIR + '/model.bin', data);
`,
    });
    const r = await cli(['launch', '--code', job, '-E', 'node main.mjs', '--wait'], a.env);
    expect(r.code).toBe(0);
    expect(r.output).toContain('outputs uploaded: 1 file(s), 10.0 MiB');
    const run = runIdOf(r.output);
    const dir = tempDir('liftoff-download-');
    const got = await cli(['runs', 'outputs', run, '--download', dir], { ...b.env, LIFTOFF_BASE_URL: b.url });
    expect(got.code).toBe(0);
    const expected = Buffer.alloc(10 * 1024 * 1024);
    for (let i = 0; i < expected.length; i++) expected[i] = (i * 29) % 253;
    expect(readFileSync(join(dir, 'model.bin')).equals(expected)).toBe(true);
    // The bytes are objects in the bucket (two 8 MiB chunks at most), under the prefix.
    const listed = await s3.send(new ListObjectsV2Command({ Bucket: 'liftoff-e2e', Prefix: 'outputs/' }));
    expect(listed.Contents?.map((o) => o.Key?.split('/').length)).toEqual([4, 4]);
  }, 180_000);
});
