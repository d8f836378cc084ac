import { existsSync, readFileSync, statSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { randomBytes } from 'node:crypto';
import pg from 'pg';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { LiftoffClient, REDACTED } from '@liftoff/core';
import { startServer } from '@liftoff/server';
import { BACKENDS, pgAvailable } from '../../../test/helpers/postgres.js';
import { openPostgres, openSqlite } from '../src/store/database.js';
import { redactStoredAgentConfigs } from '../src/store/migrations.js';
import { refusal, startBackendServer, type BackendServer } from './factory.js';

const VALUE = `hf_${randomBytes(12).toString('hex')}`;
const PASSWORD = `pw-${randomBytes(12).toString('hex')}`;
const GIT = { source: { type: 'git' as const, url: 'https://git.example.com/x.git' }, entry_point: ['true'] };

/** Everything the database holds that could carry a secret, as text: the SQLite files' bytes, or PostgreSQL's rows. */
async function databaseText(bs: BackendServer): Promise<string> {
  if (!bs.databaseUrl) {
    return ['liftoff.db', 'liftoff.db-wal']
      .map((f) => join(bs.dataDir, f))
      .filter((f) => existsSync(f))
      .map((f) => readFileSync(f).toString('latin1'))
      .join('\n');
  }
  const c = new pg.Client({ connectionString: bs.databaseUrl });
  await c.connect();
  try {
    const out: string[] = [];
    for (const t of ['agents', 'entity_secrets', 'items', 'runs', 'log_chunks'])
      out.push(JSON.stringify((await c.query(`SELECT * FROM ${t}`)).rows));
    return out.join('\n');
  } finally {
    await c.end();
  }
}

for (const backend of BACKENDS) {
  describe.skipIf(backend === 'postgres' && !pgAvailable)(`secrets on ${backend}`, () => {
    let bs: BackendServer;
    let admin: LiftoffClient;
    let alice: LiftoffClient;
    let bob: LiftoffClient;
    let agentKey: LiftoffClient;
    const answers: string[] = [];
    /** A client whose every answer body is kept, to prove no secret value comes back from any route. */
    const recording = (c: LiftoffClient): LiftoffClient => {
      return new Proxy(c, {
        get(target, prop, receiver) {
          const v = Reflect.get(target, prop, receiver) as unknown;
          if (typeof v !== 'function') return v;
          return async (...args: unknown[]) => {
            const result = (await (v as (...a: unknown[]) => Promise<unknown>).apply(target, args)) as unknown;
            answers.push(JSON.stringify(result ?? null));
            return result;
          };
        },
      });
    };

    beforeAll(async () => {
      bs = await startBackendServer(backend, { leaseMs: 30_000, heartbeatIntervalMs: 60_000, pollTimeoutMs: 1_000 });
      admin = bs.client;
      await admin.createTeam('acme');
      await admin.createUser('alice');
      await admin.createUser('bob');
      await admin.addMember('acme', 'alice');
      await admin.addMember('acme', 'bob');
      const key = async (body: Parameters<LiftoffClient['createKey']>[0]) =>
        new LiftoffClient({ baseUrl: bs.server.url, apiKey: (await admin.createKey(body)).key });
      alice = recording(await key({ name: 'alice-admin', role: 'admin', user: 'alice' }));
      bob = recording(await key({ name: 'bob-member', role: 'member', user: 'bob' }));
      agentKey = recording(await key({ name: 'acme-agent', role: 'agent', entity: 'acme' }));
      await alice.createQueue('acme', { name: 'q', resource: 'local-process' });
    });
    afterAll(async () => {
      await bs.close();
    });

    it('redacts agent config secrets before storage and in every answer', async () => {
      const reg = await agentKey.registerAgent({
        id: 'a-redact',
        name: 'a-redact',
        entity: 'acme',
        hostname: 'h',
        queues: ['q'],
        version: 't',
        max_jobs: 1,
        config: {
          builder: { type: 'docker', credentials: { username: 'robot', password: PASSWORD } },
          registry: { type: 'ecr', uri: `https://u:${PASSWORD}@r.example.com/x` },
          env: { HF_TOKEN: PASSWORD },
          queues: ['q'],
        },
      });
      expect(reg.agent.config).toMatchObject({ builder: { credentials: { password: REDACTED } } });
      const listed = (await bob.listAgents('acme')).agents.find((a) => a.id === 'a-redact');
      expect(listed?.config).toEqual({
        builder: { type: 'docker', credentials: { username: REDACTED, password: REDACTED } },
        registry: { type: 'ecr', uri: `https://u:${REDACTED}@r.example.com/x` },
        env: { HF_TOKEN: REDACTED },
        queues: ['q'],
      });
      expect(answers.join('\n')).not.toContain(PASSWORD);
      expect(await databaseText(bs)).not.toContain(PASSWORD);
    });

    it('redacts configs stored before redaction existed, in answers and (migration 0008) in the database', async () => {
      const old = `old-${PASSWORD}`;
      await agentKey.registerAgent({
        id: 'a-old',
        name: 'a-old',
        entity: 'acme',
        hostname: 'h',
        queues: ['q'],
        version: 't',
        max_jobs: 1,
      });
      await bs.exec(
        `UPDATE agents SET config = '{"builder":{"credentials":{"password":"${old}"}}}' WHERE id = 'a-old'`,
      );
      const listed = (await bob.listAgents('acme')).agents.find((a) => a.id === 'a-old');
      expect(listed?.config).toEqual({ builder: { credentials: { password: REDACTED } } });
      // Run migration 0008's data step over the old row, as an upgrade would.
      const open = bs.databaseUrl
        ? await openPostgres(bs.databaseUrl, 1)
        : await openSqlite(join(bs.dataDir, 'liftoff.db'));
      await redactStoredAgentConfigs(open.db as never);
      await open.db.destroy();
      // The old bytes may linger in SQLite's free pages and WAL until a VACUUM and a checkpoint (docs/operations.md).
      if (!bs.databaseUrl) await bs.exec('VACUUM; PRAGMA wal_checkpoint(TRUNCATE)');
      expect(await databaseText(bs)).not.toContain(old);
    });

    it('lets admins set and delete secrets, members list names only, and nobody read a value', async () => {
      const info = await alice.setSecret('acme', 'HF', VALUE);
      expect(info).toEqual({
        name: 'HF',
        created_at: expect.any(Number),
        updated_at: expect.any(Number),
        updated_by: 'alice-admin',
      });
      await alice.setSecret('acme', 'OTHER', 'value-two');
      expect((await bob.listSecrets('acme')).secrets.map((s) => s.name)).toEqual(['HF', 'OTHER']);
      expect((await refusal(bob.setSecret('acme', 'HF', 'x'.repeat(8)))).code).toBe('FORBIDDEN');
      expect((await refusal(bob.deleteSecret('acme', 'HF'))).code).toBe('FORBIDDEN');
      expect((await refusal(agentKey.setSecret('acme', 'HF', 'x'.repeat(8)))).code).toBe('FORBIDDEN');
      // Another entity's secrets look like an unknown entity.
      expect((await refusal(alice.listSecrets('default'))).code).toBe('NOT_FOUND');
      expect((await refusal(alice.setSecret('acme', 'HF', 'abc'))).message).toMatch(/at least 4 characters/);
      expect((await refusal(alice.setSecret('acme', '1bad', 'abcdef'))).code).toBe('BAD_REQUEST');
      await alice.deleteSecret('acme', 'OTHER');
      expect((await refusal(alice.deleteSecret('acme', 'OTHER'))).code).toBe('NOT_FOUND');
      expect(answers.join('\n')).not.toContain(VALUE);
      expect(await databaseText(bs)).not.toContain(VALUE);
      if (!bs.databaseUrl) expect(statSync(join(bs.dataDir, 'secrets.key')).mode & 0o777).toBe(0o600);
    });

    it('refuses a push whose spec refers to a secret the entity does not have, naming it', async () => {
      const e = await refusal(alice.push('acme', 'q', { spec: { ...GIT, secret_env: { TOKEN: 'NOPE' } } }));
      expect(e.code).toBe('SECRET_MISSING');
      expect(e.message).toContain(
        'Entity "acme" has no secret "NOPE" (for TOKEN). Set it with "liftoff secret set NOPE -e acme"',
      );
      const both = await refusal(
        alice.push('acme', 'q', { spec: { ...GIT, env: { T: 'x' }, secret_env: { T: 'HF' } } }),
      );
      expect(both.message).toMatch(/secret_env\.T.*also set in env/);
    });

    it('hands the values to the agent holding an active run only', async () => {
      const item = await alice.push('acme', 'q', { spec: { ...GIT, secret_env: { HF_TOKEN: 'HF' } } });
      expect(JSON.stringify(await bob.getItem(item.id))).not.toContain(VALUE);
      await agentKey.registerAgent({
        id: 'a1',
        name: 'a1',
        entity: 'acme',
        hostname: 'h',
        queues: ['q'],
        version: 't',
        max_jobs: 1,
      });
      await agentKey.registerAgent({
        id: 'a2',
        name: 'a2',
        entity: 'acme',
        hostname: 'h',
        queues: ['q'],
        version: 't',
        max_jobs: 1,
      });
      const polled = await agentKey.poll('a1', { queues: ['q'], max_items: 1, wait_ms: 0 });
      expect(polled.items.map((i) => i.item_id)).toEqual([item.id]);
      const run = await agentKey.ackItem(item.id, 'a1');
      const before = answers.length;
      // Only agent keys, only the run's own agent, only while the run is active.
      expect((await refusal(alice.runSecrets(run.id, 'a1'))).code).toBe('FORBIDDEN');
      expect((await refusal(admin.runSecrets(run.id, 'a1'))).code).toBe('FORBIDDEN');
      expect((await refusal(agentKey.runSecrets(run.id, 'a2'))).code).toBe('FORBIDDEN');
      const got = await agentKey.runSecrets(run.id, 'a1');
      expect(got).toEqual({ env: { HF_TOKEN: VALUE } });
      await agentKey.reportRun(run.id, { agent_id: 'a1', state: 'running' });
      expect(await agentKey.runSecrets(run.id, 'a1')).toEqual({ env: { HF_TOKEN: VALUE } });
      answers.splice(before); // the answers that carry the value, by design
      expect(JSON.stringify(await bob.getRun(run.id))).not.toContain(VALUE);
      await agentKey.reportRun(run.id, { agent_id: 'a1', state: 'finished', exit_code: 0 });
      expect((await refusal(agentKey.runSecrets(run.id, 'a1'))).code).toBe('CONFLICT');
      expect(answers.join('\n')).not.toContain(VALUE);
      expect(await databaseText(bs)).not.toContain(VALUE);
    });

    it('fails the fetch, naming the secret, when it was deleted after the push', async () => {
      await alice.setSecret('acme', 'GONE', 'soon-gone');
      const item = await alice.push('acme', 'q', { spec: { ...GIT, secret_env: { G: 'GONE' } } });
      await agentKey.poll('a1', { queues: ['q'], max_items: 1, wait_ms: 0 });
      const run = await agentKey.ackItem(item.id, 'a1');
      await alice.deleteSecret('acme', 'GONE');
      const e = await refusal(agentKey.runSecrets(run.id, 'a1'));
      expect(e.code).toBe('SECRET_MISSING');
      expect(e.message).toContain('"GONE" (for G)');
      await agentKey.reportRun(run.id, {
        agent_id: 'a1',
        state: 'failed',
        error_stage: 'agent',
        error_message: e.message,
      });
    });

    it('refuses to start with another key than the one the secrets were encrypted under, or none', async () => {
      const other = join(bs.home, 'other.key');
      writeFileSync(other, `${randomBytes(32).toString('base64')}\n`, { mode: 0o600 });
      const start = (secretsKeyFile: string) =>
        startServer({
          host: '127.0.0.1',
          port: 0,
          dataDir: bs.dataDir,
          databaseUrl: bs.databaseUrl,
          env: { HOME: bs.home },
          secretsKeyFile,
        });
      await expect(start(other)).rejects.toThrow(/is not the key this database's secrets were encrypted under/);
      await expect(start(join(bs.home, 'missing.key'))).rejects.toThrow(/missing\.key does not exist/);
      writeFileSync(other, 'not a key\n');
      await expect(start(other)).rejects.toThrow(/does not hold a base64 32-byte key/);
      // The right key, given explicitly (as a PostgreSQL replica would be), works and decrypts.
      const same = await start(join(bs.dataDir, 'secrets.key'));
      await same.close();
    });
  });
}
