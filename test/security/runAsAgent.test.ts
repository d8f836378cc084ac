import { spawn } from 'node:child_process';
import { chmodSync, chownSync, readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { codeDir } from '../helpers/jobs.js';
import {
  ORDINARY_USER,
  PROBE_SCRIPT,
  ensureOrdinaryUser,
  envKeys,
  ids,
  isRoot,
  probeResults,
} from '../helpers/probe.js';
import { BIN, Proc, agentKey, cleanupAll, cli, startServer, tempDir, type TestServer } from '../helpers/procs.js';

/**
 * Issue #11, point 1: an agent that cannot switch users. It serves local-process queues only with `run-as: agent`,
 * and then its jobs run as its own uid: they can read its files and its /proc environ (points 1 and 3 do not hold,
 * and this suite shows it), while the environment allow-list and the macro rule still hold.
 */

/** The `liftoff` binary as the ordinary user, with HOME and the rest of `env` as given (runuser -m keeps them). */
function liftoffAs(args: string[], env: Record<string, string>): Proc {
  const child = spawn('runuser', ['-m', '-u', ORDINARY_USER, '--', process.execPath, BIN, ...args], {
    env: { PATH: process.env.PATH ?? '/usr/bin:/bin', ...env },
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  return new Proc(child);
}

/** The node process runuser started (its only child). */
function childPid(pid: number): number {
  return Number(readFileSync(`/proc/${pid}/task/${pid}/children`, 'utf8').trim().split(' ')[0]);
}

/** A HOME of the ordinary user's, holding a file only it may read. */
function ordinaryHome(user: { uid: number; gid: number }): string {
  const home = tempDir('liftoff-ordinary-');
  chmodSync(home, 0o755);
  chownSync(home, user.uid, user.gid);
  writeFileSync(join(home, 'secret.txt'), 'ordinary user secret', { mode: 0o600 });
  chownSync(join(home, 'secret.txt'), user.uid, user.gid);
  return home;
}

describe.skipIf(!isRoot())('run-as: agent, for an agent run by an ordinary user (through runuser)', () => {
  let server: TestServer;
  let user: { uid: number; gid: number };

  beforeAll(async () => {
    user = ensureOrdinaryUser();
    server = await startServer();
  });
  afterAll(cleanupAll);

  async function agentAs(home: string, config: string | undefined, extraEnv: Record<string, string> = {}) {
    const key = await agentKey(server);
    const args = ['launch-agent', '-q', 'default', '--name', `ord-${Math.random().toString(36).slice(2, 8)}`];
    args.push('--data-dir', join(home, 'data'));
    if (config !== undefined) {
      const path = join(home, 'launch-config.yaml');
      writeFileSync(path, config);
      chownSync(path, user.uid, user.gid);
      args.push('-c', path);
    }
    return liftoffAs(args, { HOME: home, LIFTOFF_BASE_URL: server.url, LIFTOFF_API_KEY: key, ...extraEnv });
  }

  it('refuses to serve a local-process queue without run-as: agent: exit 2, the fix named, the agent KILLED', async () => {
    const home = ordinaryHome(user);
    const agent = await agentAs(home, undefined);
    const { code } = await agent.exited;
    expect(code).toBe(2);
    expect(agent.output).toContain(`this agent's own user (uid ${user.uid}), which cannot switch users`);
    expect(agent.output).toContain('set "run-as: agent" in the agent config');
    const agents = await server.client.listAgents('default');
    expect(agents.agents.some((a) => a.status === 'KILLED')).toBe(true);
  });

  it('refuses run-as naming another user when the agent cannot switch to it', async () => {
    const home = ordinaryHome(user);
    const agent = await agentAs(home, 'run-as: {user: nobody}\n');
    const { code } = await agent.exited;
    expect(code).toBe(2);
    expect(agent.output).toContain('asks to run jobs as another user');
  });

  it("with run-as: agent it warns; its jobs run as its uid and CAN read its files, but not its environment's secrets", async () => {
    const home = ordinaryHome(user);
    const agent = await agentAs(home, 'run-as: agent\nmacro-env: []\n', { AWS_SECRET_ACCESS_KEY: 'ordinary-aws' });
    await agent.waitFor(/polling /);
    expect(agent.output).toContain('WARNING: run-as: agent');
    expect(agent.output).toContain(`run as this agent's own user (uid ${user.uid}) and can read every file`);
    const agentPid = childPid(agent.pid);
    const probes = [
      { name: 'agent-file', kind: 'read', path: join(home, 'secret.txt') },
      { name: 'agent-environ', kind: 'read', path: `/proc/${agentPid}/environ` },
    ];
    const dir = codeDir({ 'probe.py': PROBE_SCRIPT });
    const r = await cli(
      ['launch', '--code', dir, '-E', 'python3 probe.py', '--env', `PROBES=${JSON.stringify(probes)}`, '--wait'],
      server.env,
    );
    expect(r.code).toBe(0);
    expect(ids(r.output)?.uid).toBe(user.uid);
    // Same uid: these protections cannot hold, and the docs and the start-up warning say so.
    expect(probeResults(r.output)).toEqual({ 'agent-file': 'OK', 'agent-environ': 'OK' });
    // The allow-list still holds: the secret is not in the job's environment.
    expect(envKeys(r.output)).not.toContain('AWS_SECRET_ACCESS_KEY');
    expect(envKeys(r.output)).not.toContain('LIFTOFF_API_KEY');
    // And the macro rule.
    const refused = await cli(
      [
        'launch',
        '--code',
        dir,
        '-E',
        'python3 probe.py',
        '--resource-args',
        JSON.stringify({ x: '${AWS_SECRET_ACCESS_KEY}' }),
        '--wait',
      ],
      server.env,
    );
    expect(refused.code).not.toBe(0);
    expect(refused.output).toContain('${AWS_SECRET_ACCESS_KEY}');
    expect(refused.output).not.toContain('ordinary-aws');
    agent.kill('SIGTERM');
    await agent.exited;
  });
});

describe.skipIf(!isRoot())('liftoff up by an ordinary user', () => {
  afterAll(cleanupAll);

  it('sets run-as: agent itself, warns, and runs the quickstart job', async () => {
    const user = ensureOrdinaryUser();
    const home = ordinaryHome(user);
    const up = liftoffAs(['up', '--port', '0'], { HOME: home });
    const [, url] = (await up.waitFor(/Liftoff is up at (http:\/\/\S+)/, 30_000)) as unknown as [string, string];
    expect(up.output).toContain('WARNING: run-as: agent');
    // The launch runs as the same user, who can read the credentials the server wrote.
    const dir = codeDir({ 'main.py': 'import os\nprint("job uid", os.getuid())\n' });
    chmodSync(dir, 0o755);
    const launched = liftoffAs(['launch', '--code', dir, '-E', 'python3 main.py', '--wait'], {
      HOME: home,
      LIFTOFF_BASE_URL: url,
    });
    const { code } = await launched.exited;
    expect(launched.output).toContain(`job uid ${user.uid}`);
    expect(code).toBe(0);
    up.kill('SIGTERM');
    await up.exited;
  });
});
