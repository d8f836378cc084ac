import { execFileSync } from 'node:child_process';
import { mkdirSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { gzipSync } from 'node:zlib';
import { Header } from 'tar';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import {
  BUSYBOX,
  PYTHON,
  cleanupDockerAfter,
  containersOfRun,
  docker,
  dockerAvailable,
  startRegistry,
  type TestRegistry,
} from '../helpers/docker.js';
import { codeDir } from '../helpers/jobs.js';
import {
  agentConfig,
  cleanupAll,
  cli,
  onCleanup,
  sleep,
  startAgent,
  startServer,
  tempDir,
  type TestServer,
} from '../helpers/procs.js';

/** A .tar.gz written header by header, so entries carry the owners and modes an attacker chooses. */
function hostileArchive(entries: Array<{ path: string; data: Buffer; mode: number; uid: number }>): Buffer {
  const blocks: Buffer[] = [];
  for (const e of entries) {
    const header = new Header({
      path: e.path,
      type: 'File',
      size: e.data.length,
      mode: e.mode,
      uid: e.uid,
      gid: e.uid,
      mtime: new Date(0),
    });
    const block = Buffer.alloc(512);
    header.encode(block, 0);
    blocks.push(block, Buffer.concat([e.data], Math.ceil(e.data.length / 512) * 512));
  }
  blocks.push(Buffer.alloc(1024));
  return gzipSync(Buffer.concat(blocks));
}

async function finished(server: TestServer, itemId: string) {
  let item = await server.client.getItem(itemId);
  for (let i = 0; i < 600 && !['finished', 'failed', 'stopped'].includes(item.state); i++) {
    await sleep(100);
    item = await server.client.getItem(itemId);
  }
  const run = await server.client.getRun(item.run_id as string);
  return { run, logs: (await server.client.readLogs(run.id)).data };
}

const runIdOf = (output: string): string => /run (\w+) (?:started|finished|failed|stopped)/.exec(output)?.[1] ?? '';

/** Effective capabilities of ROOT_CAPABILITIES: CHOWN, DAC_OVERRIDE, FOWNER, FSETID, KILL, SETGID, SETUID, NET_BIND_SERVICE. */
const ROOT_CAP_MASK = [0, 1, 3, 4, 5, 6, 7, 10].reduce((m, bit) => m | (1 << bit), 0);

describe.skipIf(!dockerAvailable())('security: container jobs', () => {
  let server: TestServer;
  const agents: string[] = [];

  beforeAll(async () => {
    server = await startServer();
    for (const [name, allow] of [
      ['locked', []],
      ['rooted', ['root']],
    ] as const) {
      await server.client.createQueue('default', {
        name,
        resource: 'local-container',
        resource_args: { 'local-container': { user: '1000:1000', builder: { base_image: BUSYBOX } } },
        allow: [...allow],
      });
    }
    await server.client.createQueue('default', {
      name: 'ml',
      resource: 'local-container',
      resource_args: { 'local-container': { builder: { base_image: PYTHON } } },
    });
    // noop: the code job runs on the base image, with the code the agent unpacked.
    const noop = await startAgent(server, {
      queues: ['locked', 'rooted'],
      maxJobs: 2,
      config: agentConfig(tempDir(), 'stopped_run_timeout: 2\nbuilder:\n  type: noop\n'),
    });
    const builder = await startAgent(server, {
      queues: ['ml'],
      config: agentConfig(tempDir(), 'stopped_run_timeout: 2\n'),
    });
    agents.push(noop.name, builder.name);
    cleanupDockerAfter(() => agents);
  });
  afterAll(cleanupAll);

  it('a setuid-root busybox and foreign owners from the archive do not make a 1000:1000 job root', async () => {
    const busybox = execFileSync('docker', ['run', '--rm', BUSYBOX, 'cat', '/bin/busybox'], {
      maxBuffer: 64 * 1024 * 1024,
    });
    const script = [
      'echo "who $(id -u):$(id -g)"',
      'echo "cwd $(pwd)"',
      'echo "bb $(stat -c "%a %u:%g" busybox)"',
      'echo "owned $(stat -c "%u:%g" owned)"',
      'echo "via-setuid $(./busybox id -u)"',
      'grep NoNewPrivs /proc/self/status',
      'grep CapEff /proc/self/status',
      'echo "mounts $(grep -c -E " /mnt/liftoff/code | /app " /proc/self/mountinfo)"',
      'echo written > new-file && echo "wrote $(cat new-file)"',
      'echo home > "$HOME/h" && echo "home $HOME $(stat -c "%a %u" "$HOME")"',
      '',
    ].join('\n');
    const archive = await server.client.uploadArchive(
      hostileArchive([
        { path: 'busybox', data: busybox, mode: 0o4755, uid: 0 },
        { path: 'owned', data: Buffer.from('x'), mode: 0o6777, uid: 4242 },
        { path: 'run.sh', data: Buffer.from(script), mode: 0o644, uid: 0 },
      ]),
    );
    const item = await server.client.push('default', 'locked', {
      spec: { source: { type: 'code', archive_id: archive.id }, entry_point: ['/bin/sh', 'run.sh'] },
    });
    const { run, logs } = await finished(server, item.id);
    expect(run.status).toBe('finished');
    expect(logs).toContain('who 1000:1000');
    expect(logs).toContain('cwd /mnt/liftoff/code');
    // The copy: owned by the job's user, no setuid bit, modes capped.
    expect(logs).toContain('bb 755 1000:1000');
    expect(logs).toContain('owned 1000:1000');
    expect(logs).toContain('via-setuid 1000');
    expect(logs).toMatch(/NoNewPrivs:\s+1/);
    expect(logs).toMatch(/CapEff:\s+0000000000000000/);
    // No view of the agent's files: the code is not a mount (a bind mount would show in mountinfo).
    expect(logs).toContain('mounts 0');
    expect(logs).toContain('wrote written');
    expect(logs).toContain('home /mnt/liftoff/home 700 1000');
    expect(containersOfRun(run.id)).toEqual([]);
  }, 120_000);

  it('uid or gid 0, or a user name, need the queue to allow root; with it, root keeps only the documented capabilities', async () => {
    for (const user of ['0:0', '1000:0', '0', 'root']) {
      const item = await server.client.push('default', 'locked', {
        spec: {
          source: { type: 'image', image: BUSYBOX },
          entry_point: ['id'],
          resource_args: { 'local-container': { user } },
        },
      });
      const { run, logs } = await finished(server, item.id);
      expect(run).toMatchObject({ status: 'failed', error_stage: 'run' });
      expect(run.error_message).toMatch(/runs the container as root|is a name, which may be uid 0/);
      expect(run.error_message).toContain('liftoff queue update locked --allow root');
      expect(logs).not.toMatch(/uid=0/);
      expect(containersOfRun(run.id)).toEqual([]);
    }
    const item = await server.client.push('default', 'rooted', {
      spec: {
        source: { type: 'image', image: BUSYBOX },
        entry_point: ['sh', '-c', 'id -u; grep -E "NoNewPrivs|CapEff" /proc/self/status'],
        resource_args: { 'local-container': { user: '0:0' } },
      },
    });
    const { run, logs } = await finished(server, item.id);
    expect(run.status).toBe('finished');
    expect(logs).toMatch(/^0$/m);
    expect(logs).toMatch(/NoNewPrivs:\s+1/);
    expect(logs).toMatch(new RegExp(`CapEff:\\s+${ROOT_CAP_MASK.toString(16).padStart(16, '0')}`));
  }, 120_000);

  it('a container that fails to start (missing entry point, unknown user) is removed at once', async () => {
    const cases: Array<[string, { entry_point: string[]; resource_args?: Record<string, Record<string, unknown>> }]> = [
      ['locked', { entry_point: ['/no/such/binary'] }],
      ['rooted', { entry_point: ['true'], resource_args: { 'local-container': { user: 'nosuchuser' } } }],
    ];
    for (const [queue, spec] of cases) {
      const item = await server.client.push('default', queue, {
        spec: { source: { type: 'image', image: BUSYBOX }, ...spec },
      });
      const { run } = await finished(server, item.id);
      expect(run).toMatchObject({ status: 'failed', error_stage: 'run' });
      expect(run.error_message).toContain('Could not start a container');
      expect(containersOfRun(run.id)).toEqual([]);
    }
  }, 120_000);

  it('the ML path: a built python job writes into its work dir and HOME, reads its run config, exits with its code', async () => {
    const dir = codeDir({
      'train.py': [
        'import json, os, pathlib, sys',
        'config = json.loads(os.environ["LIFTOFF_RUN_CONFIG"])',
        'pathlib.Path("out").mkdir()',
        'pathlib.Path("out/metrics.json").write_text(json.dumps({"lr": config["lr"]}))',
        'print("metrics", pathlib.Path("out/metrics.json").read_text(), "in", os.getcwd(), "as", os.getuid())',
        'pathlib.Path(os.environ["HOME"], ".cache").mkdir()',
        'print("home ok", os.environ["HOME"])',
        'sys.exit(int(config["exit"]))',
        '',
      ].join('\n'),
    });
    const r = await cli(
      ['launch', '-q', 'ml', '--code', dir, '-E', 'python3 train.py', '--set', 'lr=0.5', '--set', 'exit=3', '--wait'],
      server.env,
    );
    expect(r.output).toContain('metrics {"lr": 0.5} in /app as 1000');
    expect(r.output).toContain('home ok /mnt/liftoff/home');
    expect(r.code).toBe(3);
    const run = await server.client.getRun(runIdOf(r.output));
    expect(run).toMatchObject({ status: 'failed', exit_code: 3, error_stage: 'run' });
    expect(containersOfRun(run.id)).toEqual([]);
  }, 240_000);
});

describe.skipIf(!dockerAvailable())('security: registry credentials', () => {
  let server: TestServer;
  let destination: TestRegistry;
  let other: TestRegistry;
  const agents: string[] = [];

  /** Pushes the busybox test image to `reg` as `name` with a throw-away docker CLI config, then drops it locally. */
  const seed = (reg: TestRegistry, name: string, config: string): string => {
    const image = `${reg.host}/${name}`;
    execFileSync('docker', ['--config', config, 'login', '-u', reg.username, '--password-stdin', reg.host], {
      input: reg.password,
      stdio: ['pipe', 'ignore', 'ignore'],
    });
    docker('tag', BUSYBOX, image);
    execFileSync('docker', ['--config', config, 'push', image], { stdio: 'ignore' });
    docker('rmi', image);
    onCleanup(() => {
      execFileSync('docker', ['rmi', '-f', image], { stdio: 'ignore' });
    });
    return image;
  };

  beforeAll(async () => {
    server = await startServer();
    [destination, other] = [await startRegistry(), await startRegistry()];
    await server.client.createQueue('default', { name: 'pull', resource: 'local-container', resource_args: {} });
    cleanupDockerAfter(() => agents);
  });
  afterAll(cleanupAll);

  it("pulls an image of another registry without the agent's logins, and its own registry's with them", async () => {
    const dockerConfig = tempDir('liftoff-docker-config-');
    const privateImage = seed(other, 'private/busybox:1', dockerConfig);
    const ownImage = seed(destination, 'liftoff/base:1', dockerConfig);
    // The agent user is logged in to both registries, as an operator's machine may well be.
    mkdirSync(join(server.home, '.docker'), { recursive: true });
    execFileSync('cp', [join(dockerConfig, 'config.json'), join(server.home, '.docker', 'config.json')]);
    writeFileSync(join(server.home, '.docker', 'marker'), 'agent docker config');
    const agent = await startAgent(server, {
      queues: ['pull'],
      config: agentConfig(
        tempDir(),
        `builder:\n  type: docker\n  destination: ${destination.host}/liftoff/jobs\n  credentials:\n    username: ${destination.username}\n    password: ${destination.password}\n`,
      ),
    });
    agents.push(agent.name);

    const stolen = await cli(
      ['launch', '-q', 'pull', '--image', privateImage, '-E', 'echo ran the private image', '--wait'],
      server.env,
    );
    expect(stolen.code).toBe(1);
    expect(stolen.output).not.toContain('ran the private image');
    const run = await server.client.getRun(runIdOf(stolen.output));
    expect(run).toMatchObject({ status: 'failed', error_stage: 'run' });
    expect(run.error_message).toContain(`Could not pull ${privateImage}`);

    const own = await cli(
      ['launch', '-q', 'pull', '--image', ownImage, '-E', 'echo ran from the destination', '--wait'],
      server.env,
    );
    expect(own.output).toContain('ran from the destination');
    expect(own.code).toBe(0);
    await agent.stop();
  }, 180_000);
});
