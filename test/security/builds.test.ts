import { execFileSync } from 'node:child_process';
import { mkdirSync, readdirSync, symlinkSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { cleanupDockerAfter, dockerAvailable, BUSYBOX, PYTHON } from '../helpers/docker.js';
import { codeDir } from '../helpers/jobs.js';
import { agentConfig, cleanupAll, cli, startAgent, startServer, tempDir, type TestServer } from '../helpers/procs.js';

/** A git repository (file:// URL) with files and symbolic links committed, as an attacker would push it. */
function repoWith(files: Record<string, string>, links: Record<string, string>): string {
  const dir = codeDir(files);
  for (const [name, target] of Object.entries(links)) {
    mkdirSync(join(dir, name, '..'), { recursive: true });
    symlinkSync(target, join(dir, name));
  }
  const git = (...args: string[]) =>
    execFileSync('git', ['-c', 'user.name=t', '-c', 'user.email=t@t', ...args], { cwd: dir, stdio: 'pipe' });
  git('init', '--quiet', '--initial-branch=main');
  git('add', '.');
  git('commit', '--quiet', '-m', 'attack');
  return `file://${dir}`;
}

const runIdOf = (output: string): string => /run (\w+) (?:started|finished|failed|stopped)/.exec(output)?.[1] ?? '';

describe.skipIf(!dockerAvailable())('security: builds read and write nothing outside the job code', () => {
  let server: TestServer;
  const agents: string[] = [];
  /** A host directory and file the attacks aim at. */
  let outside: string;
  let secretFile: string;
  const SECRET = `host-secret-${Math.random().toString(36).slice(2)}`;

  beforeAll(async () => {
    server = await startServer();
    outside = tempDir('liftoff-outside-');
    secretFile = join(outside, 'secret');
    writeFileSync(secretFile, `FROM ${BUSYBOX}\nRUN echo ${SECRET}\n[project]\ndependencies = ["${SECRET}"]\n`);
    await server.client.createQueue('default', {
      name: 'builds',
      resource: 'local-container',
      resource_args: { 'local-container': { builder: { base_image: PYTHON } } },
    });
    // allow-file only so the attacks can be pushed as local git repositories (which may hold any link).
    const agent = await startAgent(server, {
      queues: ['builds'],
      config: agentConfig(tempDir(), 'stopped_run_timeout: 2\ngit:\n  allow-file: true\n'),
    });
    agents.push(agent.name);
    cleanupDockerAfter(() => agents);
  });
  afterAll(cleanupAll);

  const launch = (url: string, extra: string[] = []) =>
    cli(['launch', '-q', 'builds', '--git', url, '-E', 'python3 main.py', ...extra, '--wait'], server.env);

  it('a .liftoff link to a host directory: the generated Dockerfile is not written there, the job still runs', async () => {
    for (const target of [outside, join('..', '..', '..', '..', '..', '..', '..', outside)]) {
      const url = repoWith({ 'main.py': 'print("ran despite the link")\n' }, { '.liftoff': target });
      const r = await launch(url);
      expect(r.output).toContain('ran despite the link');
      expect(r.code).toBe(0);
      expect(readdirSync(outside)).toEqual(['secret']);
    }
  }, 120_000);

  it('a pyproject.toml job whose .liftoff links out: the generated requirements are not written there', async () => {
    const url = repoWith(
      { 'main.py': 'print("no deps needed")\n', 'pyproject.toml': '[project]\nname = "x"\ndependencies = ["pip"]\n' },
      { '.liftoff': outside },
    );
    const r = await launch(url);
    expect(r.code).toBe(0);
    expect(readdirSync(outside)).toEqual(['secret']);
  }, 120_000);

  for (const [what, links, extra, message] of [
    [
      'requirements.txt',
      { 'requirements.txt': '' },
      [],
      'requirements.txt "requirements.txt" leads outside the job\'s code through a link',
    ],
    ['pyproject.toml', { 'pyproject.toml': '' }, [], 'pyproject.toml "pyproject.toml" leads outside the job\'s code'],
    [
      'a --dockerfile',
      { 'docker/Dockerfile': '' },
      ['--dockerfile', 'docker/Dockerfile'],
      'The Dockerfile "docker/Dockerfile" leads outside the job\'s code',
    ],
    ['Dockerfile.liftoff', { 'Dockerfile.liftoff': '' }, [], 'Dockerfile.liftoff "Dockerfile.liftoff" leads outside'],
    [
      'a directory on the way to Dockerfile.liftoff (next to the entry point)',
      { jobs: 'OUTSIDE_DIR' },
      [],
      'The job\'s code has a link "jobs" pointing outside it',
    ],
  ] as const) {
    it(`${what} linked to a host file is refused at stage build, and the host file's content never shows`, async () => {
      const resolved = Object.fromEntries(
        Object.entries(links).map(([k, v]) => [k, v === 'OUTSIDE_DIR' ? outside : secretFile]),
      );
      if ('jobs' in links) writeFileSync(join(outside, 'Dockerfile.liftoff'), `FROM ${BUSYBOX}\nRUN echo ${SECRET}\n`);
      const entry = 'jobs' in links ? 'python3 jobs/main.py' : 'python3 main.py';
      const url = repoWith({ 'main.py': 'print(1)\n' }, resolved);
      const r = await cli(['launch', '-q', 'builds', '--git', url, '-E', entry, ...extra, '--wait'], server.env);
      if ('jobs' in links) execFileSync('rm', ['-f', join(outside, 'Dockerfile.liftoff')]);
      expect(r.code).toBe(1);
      const run = await server.client.getRun(runIdOf(r.output));
      expect(run).toMatchObject({ status: 'failed', error_stage: 'build' });
      expect(run.error_message).toContain(message);
      expect((await server.client.readLogs(run.id)).data).not.toContain(SECRET);
      expect(r.output).not.toContain(SECRET);
    }, 120_000);
  }

  it('any other link in the code leading outside it is refused before the build', async () => {
    const url = repoWith({ 'main.py': 'print(1)\n' }, { 'data/etc': '/etc', 'data/ok': '../main.py' });
    const r = await launch(url);
    expect(r.code).toBe(1);
    const run = await server.client.getRun(runIdOf(r.output));
    expect(run).toMatchObject({ status: 'failed', error_stage: 'build' });
    expect(run.error_message).toContain('The job\'s code has a link "data/etc" pointing outside it ("/etc")');
  }, 120_000);

  it('base_image with a newline is refused at push (item args, queue config, kubernetes args)', async () => {
    const evil = `${PYTHON}\nRUN touch /pwned`;
    const before = (await server.client.listItems('default', 'builds')).items.length;
    const r = await cli(
      [
        'launch',
        '-q',
        'builds',
        '--code',
        codeDir({ 'main.py': 'print(1)\n' }),
        '-E',
        'python3 main.py',
        '--resource-args',
        JSON.stringify({ builder: { base_image: evil } }),
      ],
      server.env,
    );
    expect(r.code).toBe(2);
    expect(r.output).toContain('is not an image reference');
    expect((await server.client.listItems('default', 'builds')).items.length).toBe(before);

    await expect(
      server.client.createQueue('default', {
        name: 'evil-base',
        resource: 'local-container',
        resource_args: { 'local-container': { builder: { base_image: 'x y' } } },
      }),
    ).rejects.toThrow(/is not an image reference/);

    await server.client.createQueue('default', { name: 'k8s-base', resource: 'kubernetes', resource_args: {} });
    await expect(
      server.client.push('default', 'k8s-base', {
        spec: {
          source: { type: 'git', url: 'https://example.com/r.git' },
          entry_point: ['python3', 'main.py'],
          resource_args: { kubernetes: { builder: { base_image: evil } } },
        },
      }),
    ).rejects.toThrow(/resource_args.kubernetes.builder.base_image .* is not an image reference/);
  }, 60_000);
});
