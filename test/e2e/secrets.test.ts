import { spawn } from 'node:child_process';
import { createHash, randomBytes } from 'node:crypto';
import { existsSync, readFileSync, readdirSync } from 'node:fs';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { codeDir } from '../helpers/jobs.js';
import {
  BIN,
  Proc,
  agentConfig,
  cleanupAll,
  cli,
  startAgent,
  startServer,
  tempDir,
  type TestAgent,
  type TestServer,
} from '../helpers/procs.js';

/** Issue #12, point 6: per-entity secrets reach the job's environment and nothing else; agent config secrets stay. */

const SECRET = `hf_${randomBytes(16).toString('hex')}`;
const AGENT_PASSWORD = `registry-pw-${randomBytes(12).toString('hex')}`;
const sha = (s: string) => createHash('sha256').update(s).digest('hex');

/**
 * Proves it saw the value (its hash), echoes it whole, then in two writes half a second apart, so the shipper sends
 * the first half on its own unless it holds it back.
 */
const JOB = `
const v = process.env.TOKEN ?? '';
console.log('sha', require('node:crypto').createHash('sha256').update(v).digest('hex'));
console.log('whole', v);
process.stdout.write('split ' + v.slice(0, 9));
setTimeout(() => process.stdout.write(v.slice(9) + ' end\\n'), 500);
`;

/** `liftoff secret set NAME` with the value on stdin, as a user would pipe it. */
async function setSecret(
  server: TestServer,
  name: string,
  value: string,
): Promise<{ code: number | null; output: string }> {
  const child = spawn(process.execPath, [BIN, 'secret', 'set', name], {
    env: { PATH: process.env.PATH ?? '/usr/bin:/bin', ...server.env },
    stdio: ['pipe', 'pipe', 'pipe'],
  });
  const proc = new Proc(child);
  child.stdin.end(`${value}\n`);
  const { code } = await proc.exited;
  return { code, output: proc.output };
}

/** The SQLite files' bytes: the database must hold neither secret. */
function databaseBytes(dataDir: string): string {
  return readdirSync(dataDir)
    .filter((f) => f.startsWith('liftoff.db'))
    .map((f) => readFileSync(join(dataDir, f)).toString('latin1'))
    .join('\n');
}

describe('secrets end to end: liftoff secret set, --env NAME=secret:SECRET, masking', () => {
  let server: TestServer;
  let agent: TestAgent;
  let agentLog: string;

  beforeAll(async () => {
    server = await startServer();
    agentLog = join(tempDir(), 'agent.log');
    const config = agentConfig(
      tempDir(),
      `builder:\n  type: docker\n  destination: registry.example.com/liftoff/jobs\n  credentials:\n    username: robot\n    password: ${AGENT_PASSWORD}\n`,
    );
    agent = await startAgent(server, { config, extra: ['-l', agentLog, '-v', '-v'] });
  });
  afterAll(cleanupAll);

  it('refuses a launch that refers to a secret the entity does not have, naming it and the fix', async () => {
    const r = await cli(
      ['launch', '--code', codeDir({ 'main.js': JOB }), '-E', 'node main.js', '--env', 'TOKEN=secret:HF_TOKEN'],
      server.env,
    );
    expect(r.code).toBe(2);
    expect(r.output).toContain(
      'Entity "default" has no secret "HF_TOKEN" (for TOKEN). Set it with "liftoff secret set HF_TOKEN -e default"',
    );
  });

  it('gives the job the value in its environment, and stores, answers and logs only a mask', async () => {
    const set = await setSecret(server, 'HF_TOKEN', SECRET);
    expect(set.output).toContain('secret HF_TOKEN set in entity default');
    expect(set.code).toBe(0);
    const listed = await cli(['secret', 'list'], server.env);
    expect(listed.output).toMatch(/HF_TOKEN\s/);

    const r = await cli(
      [
        'launch',
        '--code',
        codeDir({ 'main.js': JOB }),
        '-E',
        'node main.js',
        '--env',
        'TOKEN=secret:HF_TOKEN',
        '--wait',
      ],
      server.env,
    );
    expect(r.code).toBe(0);
    expect(r.output).not.toContain(SECRET);
    const runId = /run (\w+) finished/.exec(r.output)?.[1] as string;

    const logs = await server.client.readLogs(runId);
    // The job saw the value (its hash), and every echo of it, whole or split across writes, is masked.
    expect(logs.data).toContain(`sha ${sha(SECRET)}`);
    expect(logs.data).toContain('whole ***\n');
    expect(logs.data).toContain('split *** end\n');
    expect(logs.data).toContain("secrets for TOKEN set in the job's environment");
    expect(logs.data).not.toContain(SECRET);

    const answers = JSON.stringify([
      await server.client.getRun(runId),
      await server.client.listRuns('default'),
      await server.client.listItems('default', 'default'),
      await server.client.listAgents('default'),
      await server.client.listSecrets('default'),
    ]);
    expect(answers).toContain('"secret_env":{"TOKEN":"HF_TOKEN"}');
    expect(answers).not.toContain(SECRET);
    expect(answers).not.toContain(AGENT_PASSWORD);
    expect(answers).toContain('"password":"[redacted]"');

    expect(databaseBytes(server.dataDir)).not.toContain(SECRET);
    expect(databaseBytes(server.dataDir)).not.toContain(AGENT_PASSWORD);
    expect(existsSync(agentLog)).toBe(true);
    const log = readFileSync(agentLog, 'utf8');
    expect(log).toContain('agent config');
    expect(log).toContain(`run ${runId}`);
    expect(log).not.toContain(SECRET);
    expect(log).not.toContain(AGENT_PASSWORD);
    expect(agent.proc.output).not.toContain(SECRET);
    expect(agent.proc.output).not.toContain(AGENT_PASSWORD);
  });

  it('deletes a secret: later launches that refer to it are refused', async () => {
    const del = await cli(['secret', 'delete', 'HF_TOKEN'], server.env);
    expect(del.code).toBe(0);
    const r = await cli(
      ['launch', '--code', codeDir({ 'main.js': JOB }), '-E', 'node main.js', '--env', 'TOKEN=secret:HF_TOKEN'],
      server.env,
    );
    expect(r.output).toContain('has no secret "HF_TOKEN"');
  });
});
