import { execFileSync } from 'node:child_process';
import { mkdirSync } from 'node:fs';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import {
  cleanupDockerAfter,
  containersOfRun,
  docker,
  dockerAvailable,
  PYTHON,
  startRegistry,
  BUSYBOX,
  type TestRegistry,
} from '../helpers/docker.js';
import { codeDir, gitRepo } from '../helpers/jobs.js';
import {
  agentConfig,
  cleanupAll,
  cli,
  outputOf,
  sleep,
  startAgent,
  startServer,
  tempDir,
  type TestAgent,
  type TestServer,
} from '../helpers/procs.js';

/** A pure-Python wheel built here (no index needed): `import tinydep` prints where it came from. */
function tinyWheel(dir: string): string {
  mkdirSync(join(dir, 'wheels'), { recursive: true });
  const script = `
import zipfile, sys
name = sys.argv[1]
with zipfile.ZipFile(name, 'w') as z:
    z.writestr('tinydep/__init__.py', 'GREETING = "tinydep installed by pip from a local wheel"\\n')
    z.writestr('tinydep-0.1.dist-info/METADATA', 'Metadata-Version: 2.1\\nName: tinydep\\nVersion: 0.1\\n')
    z.writestr('tinydep-0.1.dist-info/WHEEL', 'Wheel-Version: 1.0\\nGenerator: liftoff-test\\nRoot-Is-Purelib: true\\nTag: py3-none-any\\n')
    z.writestr('tinydep-0.1.dist-info/RECORD', 'tinydep/__init__.py,,\\ntinydep-0.1.dist-info/METADATA,,\\ntinydep-0.1.dist-info/WHEEL,,\\ntinydep-0.1.dist-info/RECORD,,\\n')
`;
  execFileSync('python3', ['-c', script, join(dir, 'wheels', 'tinydep-0.1-py3-none-any.whl')]);
  return 'wheels/tinydep-0.1-py3-none-any.whl';
}

const runIdOf = (output: string): string => /run (\w+) (?:started|finished|failed|stopped)/.exec(output)?.[1] ?? '';

describe.skipIf(!dockerAvailable())('container jobs on the local Docker engine', () => {
  let server: TestServer;
  let agent: TestAgent;
  const agents: string[] = [];

  beforeAll(async () => {
    server = await startServer();
    await server.client.createQueue('default', {
      name: 'gpu',
      resource: 'local-container',
      resource_args: { 'local-container': { builder: { base_image: PYTHON } } },
    });
    agent = await startAgent(server, {
      queues: ['gpu'],
      maxJobs: 2,
      // The git job below clones a file:// repository, which agents refuse unless their config allows it.
      config: agentConfig(tempDir(), 'stopped_run_timeout: 2\ngit:\n  allow-file: true\n'),
    });
    agents.push(agent.name);
    cleanupDockerAfter(() => agents);
  });
  afterAll(cleanupAll);

  it('builds a git job with requirements.txt from a generated Dockerfile, runs it, and logs build and run', async () => {
    const dir = codeDir({ 'train.py': 'import tinydep, os\nprint(tinydep.GREETING, "as uid", os.getuid())\n' });
    const wheel = tinyWheel(dir);
    const repo = gitRepo({
      'train.py': 'import tinydep, os\nprint(tinydep.GREETING, "as uid", os.getuid())\n',
      'requirements.txt': `./${wheel}\n`,
    });
    execFileSync('cp', ['-r', join(dir, 'wheels'), repo.dir]);
    execFileSync('git', ['add', '.'], { cwd: repo.dir });
    execFileSync('git', ['-c', 'user.name=t', '-c', 'user.email=t@t', 'commit', '-qm', 'wheel'], { cwd: repo.dir });
    const r = await cli(['launch', '-q', 'gpu', '--git', repo.url, '-E', 'python3 train.py', '--wait'], server.env);
    expect(r.output).toMatch(
      /building liftoff\/jobs:[0-9a-f]{16} from a generated Dockerfile \(FROM liftoff-test\/python:3\)/,
    );
    expect(r.output).toContain('Successfully installed tinydep-0.1');
    expect(r.output).toContain('tinydep installed by pip from a local wheel as uid 1000');
    expect(r.code).toBe(0);
    expect(containersOfRun(runIdOf(r.output))).toEqual([]);
  }, 240_000);

  it('skips the build when the same inputs were built before, and rebuilds when a file changes', async () => {
    const dir = codeDir({ 'main.py': 'print("version one")\n' });
    const first = await cli(['launch', '-q', 'gpu', '--code', dir, '-E', 'python3 main.py', '--wait'], server.env);
    expect(first.output).toContain('building liftoff/jobs:');
    const tag = /building (liftoff\/jobs:[0-9a-f]+)/.exec(first.output)?.[1] as string;
    const second = await cli(['launch', '-q', 'gpu', '--code', dir, '-E', 'python3 main.py', '--wait'], server.env);
    expect(second.output).toContain(
      `image ${tag} already exists (same code, Dockerfile and base image): skipping the build`,
    );
    expect(second.output).not.toContain('Step 1/');
    expect(second.output).toContain('version one');
    const { writeFileSync } = await import('node:fs');
    writeFileSync(join(dir, 'main.py'), 'print("version two")\n');
    const third = await cli(['launch', '-q', 'gpu', '--code', dir, '-E', 'python3 main.py', '--wait'], server.env);
    const newTag = /building (liftoff\/jobs:[0-9a-f]+)/.exec(third.output)?.[1];
    expect(newTag).toBeDefined();
    expect(newTag).not.toBe(tag);
    expect(third.output).toContain('version two');
  }, 240_000);

  it("runs an image job without a build, and uses a job's own Dockerfile", async () => {
    const image = await cli(
      ['launch', '-q', 'gpu', '--image', BUSYBOX, '-E', 'echo hello from an image', '--wait'],
      server.env,
    );
    expect(image.output).toContain('hello from an image');
    expect(image.output).not.toMatch(/building|Step 1\//);
    expect(image.code).toBe(0);
    const viaEnv = await cli(['launch', '-q', 'gpu', '-E', 'echo default image', '--wait'], {
      ...server.env,
      LIFTOFF_DOCKER: BUSYBOX,
    });
    expect(viaEnv.output).toContain('default image');

    const dir = codeDir({
      'docker/Dockerfile': `FROM ${BUSYBOX}\nRUN echo "made by the job's own Dockerfile" > /marker\nCOPY . /src\n`,
      'run.sh': 'cat /marker\n',
    });
    const own = await cli(
      ['launch', '-q', 'gpu', '--code', dir, '--dockerfile', 'docker/Dockerfile', '-E', 'sh /src/run.sh', '--wait'],
      server.env,
    );
    expect(own.output).toContain('from docker/Dockerfile (FROM liftoff-test/busybox:1)');
    expect(own.output).toContain("made by the job's own Dockerfile");
    expect(own.code).toBe(0);

    const nextToEntry = codeDir({
      'jobs/Dockerfile.liftoff': `FROM ${BUSYBOX}\nRUN echo "found next to the entry point" > /marker\nCOPY . /src\n`,
      'jobs/run.sh': 'cat /marker\n',
    });
    const liftoffFile = await cli(
      ['launch', '-q', 'gpu', '--code', nextToEntry, '-E', 'sh jobs/run.sh', '--wait'],
      server.env,
    );
    expect(liftoffFile.output).toContain('from jobs/Dockerfile.liftoff');
  }, 240_000);

  it('fails a broken build at stage build and keeps the build log', async () => {
    const dir = codeDir({ 'Dockerfile.liftoff': `FROM ${BUSYBOX}\nRUN echo about to fail && false\n`, 'x.sh': 'true' });
    const r = await cli(['launch', '-q', 'gpu', '--code', dir, '-E', 'sh x.sh', '--wait'], server.env);
    expect(r.code).toBe(1);
    const run = await server.client.getRun(runIdOf(r.output));
    expect(run).toMatchObject({ status: 'failed', error_stage: 'build' });
    // The message names the step and the last output, not only "build failed".
    expect(run.error_message).toMatch(
      /^The image build failed at step 2\/2 \(RUN echo about to fail && false\): .*non-zero code: 1; its last output: about to fail$/,
    );
    expect((await server.client.readLogs(run.id)).data).toContain('about to fail');
  }, 120_000);

  it('says why a build failed when the base image cannot install requirements', async () => {
    const dir = codeDir({ 'requirements.txt': 'tinydep\n', 'main.py': 'print(1)\n' });
    const r = await cli(
      [
        'launch',
        '-q',
        'gpu',
        '--code',
        dir,
        '-E',
        'python3 main.py',
        '--resource-args',
        JSON.stringify({ builder: { base_image: BUSYBOX } }),
        '--wait',
      ],
      server.env,
    );
    expect(r.code).toBe(1);
    const run = await server.client.getRun(runIdOf(r.output));
    expect(run).toMatchObject({ status: 'failed', error_stage: 'build' });
    expect(run.error_message).toMatch(/^The image build failed at step \d+\/\d+ \(RUN .*pip/);
    expect(run.error_message).toContain(
      'its last output: /bin/sh: python3: not found. Likely cause: the base image lacks',
    );
  }, 120_000);

  it('passes memory, cpus and env to the container and refuses privileged or volumes before anything runs', async () => {
    const launched = await cli(
      [
        'launch',
        '-q',
        'gpu',
        '--image',
        BUSYBOX,
        '-E',
        'sleep 30',
        '--resource-args',
        JSON.stringify({ memory: '96m', cpus: 0.5, env: { FROM_ARGS: 'yes' } }),
        '--json',
      ],
      server.env,
    );
    const itemId = (JSON.parse(launched.output) as { id: string }).id;
    let runId: string | null = null;
    for (let i = 0; i < 200 && !runId; i++) {
      const item = await server.client.getItem(itemId);
      if (item.state === 'running') runId = item.run_id;
      else await sleep(100);
    }
    const [id] = containersOfRun(runId as string);
    const info = JSON.parse(docker('inspect', id as string)) as Array<{
      HostConfig: { Memory: number; NanoCpus: number };
      Config: { Env: string[]; Labels: Record<string, string> };
    }>;
    expect(info[0]?.HostConfig.Memory).toBe(96 * 1024 * 1024);
    expect(info[0]?.HostConfig.NanoCpus).toBe(500_000_000);
    expect(info[0]?.Config.Env).toEqual(expect.arrayContaining(['FROM_ARGS=yes', `LIFTOFF_RUN_ID=${runId}`]));
    expect(info[0]?.Config.Labels).toMatchObject({
      'liftoff.run-id': runId,
      'liftoff.item-id': itemId,
      'liftoff.agent-id': agent.name,
    });
    await server.client.cancelRun(runId as string);

    for (const [args, message] of [
      [
        { privileged: true },
        'resource_args.local-container.privileged is refused: privileged containers can take over the host.',
      ],
      [
        { volumes: ['/:/host'] },
        'resource_args.local-container.volumes is refused: host volumes expose the host filesystem.',
      ],
      [{ 'no-such-option': 1 }, 'resource_args.local-container.no-such-option is not an allowed option'],
    ] as const) {
      const before = (await server.client.listRuns('default', { queue: 'gpu' })).runs.length;
      const r = await cli(
        ['launch', '-q', 'gpu', '--image', BUSYBOX, '-E', 'true', '--resource-args', JSON.stringify(args)],
        server.env,
      );
      expect(r.code).toBe(2);
      expect(r.output).toContain(message);
      expect((await server.client.listRuns('default', { queue: 'gpu' })).runs.length).toBe(before);
    }
  }, 120_000);

  it('cancel stops and removes the container; a container over its memory limit is reported OOM-killed', async () => {
    const launched = await cli(['launch', '-q', 'gpu', '--image', BUSYBOX, '-E', 'sleep 300', '--json'], server.env);
    const itemId = (JSON.parse(launched.output) as { id: string }).id;
    let item = await server.client.getItem(itemId);
    while (item.state !== 'running') {
      await sleep(100);
      item = await server.client.getItem(itemId);
    }
    expect(containersOfRun(item.run_id as string)).toHaveLength(1);
    await cli(['runs', 'cancel', item.run_id as string], server.env);
    let run = await server.client.getRun(item.run_id as string);
    for (let i = 0; i < 150 && run.status !== 'stopped'; i++) {
      await sleep(100);
      run = await server.client.getRun(run.id);
    }
    expect(run.status).toBe('stopped');
    expect(containersOfRun(run.id)).toEqual([]);

    const oom = await cli(
      [
        'launch',
        '-q',
        'gpu',
        '--image',
        PYTHON,
        '-E',
        'python3 -c "x = bytearray(512 * 1024 * 1024); print(len(x))"',
        '--resource-args',
        '{"memory":"64m"}',
        '--wait',
      ],
      server.env,
    );
    const oomRun = await server.client.getRun(runIdOf(oom.output));
    expect(oomRun).toMatchObject({ status: 'failed', error_stage: 'run', exit_code: 137 });
    expect(oomRun.error_message).toContain('OOM-killed');
  }, 120_000);

  /** Runs `python3 -c code` as an image job, cancels it once it printed "training", and returns the ended run. */
  async function cancelPython(code: string) {
    const item = await server.client.push('default', 'gpu', {
      spec: { source: { type: 'image', image: PYTHON }, entry_point: ['python3', '-c', code] },
    });
    let run;
    for (let i = 0; i < 300; i++) {
      const it = await server.client.getItem(item.id);
      if (it.run_id) run = await server.client.getRun(it.run_id);
      // Ready once "training" is printed (the agent's notes come before).
      if (run?.status === 'running' && (await outputOf(server.client, run.id)).includes('training')) break;
      await sleep(100);
    }
    expect(run?.status).toBe('running');
    await server.client.cancelRun(run?.id as string);
    let ended = await server.client.getRun(run?.id as string);
    for (let i = 0; i < 150 && ended.status !== 'stopped'; i++) {
      await sleep(100);
      ended = await server.client.getRun(ended.id);
    }
    return ended;
  }

  it('cancel sends SIGTERM to the job itself (an init is PID 1): it dies of it, or saves a checkpoint and exits', async () => {
    // Without a handler: as PID 1 Python would ignore SIGTERM and be killed (137) at the end of the grace period;
    // under the init it dies of the signal (128 + 15).
    const plain = await cancelPython('import time\nprint("training", flush=True)\ntime.sleep(600)');
    expect(plain).toMatchObject({ status: 'stopped', exit_code: 143 });
    // With a handler: it runs, and the exit code is the job's own.
    const trap = [
      'import signal, sys, time',
      'def stop(*_):',
      '    print("checkpoint saved", flush=True)',
      '    sys.exit(3)',
      'signal.signal(signal.SIGTERM, stop)',
      'print("training", flush=True)',
      'time.sleep(600)',
    ].join('\n');
    const trapped = await cancelPython(trap);
    expect(trapped).toMatchObject({ status: 'stopped', exit_code: 3 });
    expect(await outputOf(server.client, trapped.id)).toContain('checkpoint saved');
  }, 90_000);

  it('a restarted agent with the same identity adopts a container left by a kill -9, with full logs and no leftovers', async () => {
    const data = join(server.home, 'adopt-data');
    const config = agentConfig(tempDir(), 'stopped_run_timeout: 2\n');
    const first = await startAgent(server, { queues: ['gpu'], name: 'adopter', dataDir: data, config });
    agents.push('adopter');
    await agent.stop(); // only the adopter serves the queue now
    const launched = await cli(
      [
        'launch',
        '-q',
        'gpu',
        '--image',
        BUSYBOX,
        '-E',
        'sh -c "for i in 1 2 3 4 5 6; do echo tick $i; sleep 1; done"',
        '--json',
      ],
      server.env,
    );
    const itemId = (JSON.parse(launched.output) as { id: string }).id;
    let item = await server.client.getItem(itemId);
    while (!(await server.client.readLogs(item.run_id ?? 'none').catch(() => ({ data: '' }))).data.includes('tick 2')) {
      await sleep(100);
      item = await server.client.getItem(itemId);
    }
    first.proc.kill('SIGKILL');
    await first.proc.exited;
    const runId = item.run_id as string;
    expect(containersOfRun(runId)).toHaveLength(1);

    await startAgent(server, { queues: ['gpu'], name: 'adopter', dataDir: data, config });
    let run = await server.client.getRun(runId);
    for (let i = 0; i < 300 && run.status !== 'finished'; i++) {
      await sleep(100);
      run = await server.client.getRun(runId);
    }
    expect(run.status).toBe('finished');
    const logs = (await server.client.readLogs(runId)).data;
    for (let i = 1; i <= 6; i++) expect(logs.match(new RegExp(`tick ${i}\\n`, 'g'))).toHaveLength(1);
    expect(containersOfRun(runId)).toEqual([]);
  }, 120_000);
});

describe.skipIf(!dockerAvailable())('the noop builder and runs that end while their agent is down', () => {
  let server: TestServer;
  const agents: string[] = [];

  beforeAll(async () => {
    server = await startServer();
    await server.client.createQueue('default', {
      name: 'plain',
      resource: 'local-container',
      resource_args: { 'local-container': { builder: { base_image: PYTHON } } },
    });
    cleanupDockerAfter(() => agents);
  });
  afterAll(cleanupAll);

  it('noop never builds: an image job runs, a code job runs on the base image with its code mounted', async () => {
    const noop = await startAgent(server, {
      queues: ['plain'],
      name: 'noop',
      config: agentConfig(tempDir(), 'builder:\n  type: noop\n'),
    });
    agents.push('noop');
    const dir = codeDir({ 'main.py': 'import os\nprint("mounted code in", os.getcwd())\n' });
    const r = await cli(['launch', '-q', 'plain', '--code', dir, '-E', 'python3 main.py', '--wait'], server.env);
    expect(r.output).toContain(
      'no build (noop builder): running liftoff-test/python:3 with a copy of the code at /mnt/liftoff/code',
    );
    expect(r.output).toContain('mounted code in /mnt/liftoff/code');
    expect(r.output).not.toContain('Step 1/');
    expect(r.code).toBe(0);
    await noop.stop();
  }, 120_000);

  it('a container that ended while its agent was down is reported with its full logs when the agent returns', async () => {
    const data = join(server.home, 'down-data');
    const first = await startAgent(server, { queues: ['plain'], name: 'sleeper', dataDir: data });
    agents.push('sleeper');
    const launched = await cli(
      ['launch', '-q', 'plain', '--image', BUSYBOX, '-E', 'sh -c "echo before; sleep 2; echo after; exit 4"', '--json'],
      server.env,
    );
    const itemId = (JSON.parse(launched.output) as { id: string }).id;
    let item = await server.client.getItem(itemId);
    while (item.state !== 'running') {
      await sleep(100);
      item = await server.client.getItem(itemId);
    }
    first.proc.kill('SIGKILL');
    await first.proc.exited;
    const runId = item.run_id as string;
    while (docker('inspect', '-f', '{{.State.Running}}', containersOfRun(runId)[0] as string) === 'true')
      await sleep(200);

    await startAgent(server, { queues: ['plain'], name: 'sleeper', dataDir: data });
    let run = await server.client.getRun(runId);
    for (let i = 0; i < 100 && run.status === 'running'; i++) {
      await sleep(100);
      run = await server.client.getRun(runId);
    }
    expect(run).toMatchObject({ status: 'failed', exit_code: 4, error_stage: 'run' });
    const logs = (await server.client.readLogs(runId)).data;
    expect(logs.match(/before\n/g)).toHaveLength(1);
    expect(logs.match(/after\n/g)).toHaveLength(1);
    expect(containersOfRun(runId)).toEqual([]);
  }, 120_000);
});

describe.skipIf(!dockerAvailable())('pushing to an OCI registry with credentials', () => {
  let server: TestServer;
  let registry: TestRegistry;
  const agents: string[] = [];

  beforeAll(async () => {
    server = await startServer();
    registry = await startRegistry();
    await server.client.createQueue('default', {
      name: 'reg',
      resource: 'local-container',
      resource_args: { 'local-container': { builder: { base_image: PYTHON } } },
    });
    cleanupDockerAfter(() => agents);
  });
  afterAll(cleanupAll);

  const builderConfig = (password: string) =>
    agentConfig(
      tempDir(),
      `builder:\n  type: docker\n  destination: ${registry.host}/liftoff/jobs\n  credentials:\n    username: ${registry.username}\n    password: ${password}\n`,
    );

  it('pushes the built image; a second agent on a clean engine pulls it from the registry instead of building', async () => {
    const builder = await startAgent(server, {
      queues: ['reg'],
      name: 'pusher',
      config: builderConfig(registry.password),
    });
    agents.push('pusher');
    const dir = codeDir({ 'main.py': 'print("ran from the registry image")\n' });
    const first = await cli(['launch', '-q', 'reg', '--code', dir, '-E', 'python3 main.py', '--wait'], server.env);
    expect(first.code).toBe(0);
    const image = /building (\S+) from/.exec(first.output)?.[1] as string;
    expect(image.startsWith(`${registry.host}/liftoff/jobs:`)).toBe(true);
    const auth = `Basic ${Buffer.from(`${registry.username}:${registry.password}`).toString('base64')}`;
    const tags = (await (
      await fetch(`http://${registry.host}/v2/liftoff/jobs/tags/list`, { headers: { authorization: auth } })
    ).json()) as { tags: string[] };
    expect(tags.tags).toContain(image.split(':').at(-1));
    await builder.stop();

    docker('rmi', '-f', image); // the engine no longer has it: as on another machine
    const puller = await startAgent(server, {
      queues: ['reg'],
      name: 'puller',
      config: builderConfig(registry.password),
    });
    agents.push('puller');
    const second = await cli(['launch', '-q', 'reg', '--code', dir, '-E', 'python3 main.py', '--wait'], server.env);
    expect(second.output).toContain('already exists');
    expect(second.output).toContain(`pulling ${image}`);
    expect(second.output).toContain('ran from the registry image');
    expect(second.code).toBe(0);
    await puller.stop();
  }, 240_000);

  it('fails at stage build, naming the registry, when the credentials are wrong', async () => {
    const bad = await startAgent(server, {
      queues: ['reg'],
      name: 'wrong-creds',
      config: builderConfig('not-the-password'),
    });
    agents.push('wrong-creds');
    const r = await cli(
      ['launch', '-q', 'reg', '--code', codeDir({ 'm.py': 'print(1)\n' }), '-E', 'python3 m.py', '--wait'],
      server.env,
    );
    expect(r.code).toBe(1);
    const run = await server.client.getRun(runIdOf(r.output));
    expect(run.error_stage).toBe('build');
    expect(run.error_message).toContain(`Registry ${registry.host} refused the credentials`);
    await bad.stop();
  }, 120_000);
});
