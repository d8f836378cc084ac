import { spawn } from 'node:child_process';
import { existsSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { dockerAvailable } from '../helpers/docker.js';
import { startFakeIdentity } from '../helpers/azureFake/identity.js';
import { startFakeMetadata } from '../helpers/gcpFake/metadata.js';
import { BIN, Proc, ROOT, agentConfig, cleanupAll, startServer, tempDir, type TestServer } from '../helpers/procs.js';

/**
 * Each command loads only what it needs (issue 20): a structural check, not a timing one. The `liftoff` binary runs
 * under bench/loadedModules.mjs, which records every module the process loads (ES modules through a loader hook,
 * CommonJS ones from the require cache at exit), and the list is checked for what must not be there.
 */
const RECORDER = join(ROOT, 'bench', 'loadedModules.mjs');
const SERVER_STACK = [
  'packages/server/',
  'node_modules/fastify/',
  'node_modules/kysely/',
  'node_modules/better-sqlite3/',
  'node_modules/pg/',
];
const DOCKER_STACK = ['node_modules/dockerode/', 'node_modules/docker-modem/'];
/** What dockerode would pull in though the agent never uses it (loadDockerode.ts). */
const UNUSED_BY_AGENT = ['node_modules/ssh2/', 'node_modules/@grpc/', 'node_modules/protobufjs/'];
const AWS_SDK = ['node_modules/@aws-sdk/', 'node_modules/@smithy/'];
/** Google's auth stack (google-auth-library and what it loads), for agents with a gcp environment only (issue 14). */
const GOOGLE_AUTH = ['node_modules/google-auth-library/', 'node_modules/gaxios/', 'node_modules/gcp-metadata/'];
/** The Azure SDKs (identity, MSAL, storage), for agents with an azure environment only (issue 15). */
const AZURE_SDK = ['node_modules/@azure/'];
const HEAVY_FOR_HELP = ['node_modules/zod/', 'node_modules/yaml/', 'node_modules/undici/', 'node_modules/tar/'];

const requireServices = process.env.LIFTOFF_REQUIRE_SERVICES === '1';
const docker = dockerAvailable();
if (!docker && requireServices) throw new Error('LIFTOFF_REQUIRE_SERVICES=1 but no Docker engine is available');

/** Starts the binary with the recorder; `modules()` reads what it loaded once it has exited. */
function recorded(args: string[], env: Record<string, string>) {
  const log = join(tempDir('liftoff-modules-'), 'modules.txt');
  const child = spawn(process.execPath, ['--import', RECORDER, BIN, ...args], {
    cwd: ROOT,
    env: { PATH: process.env.PATH ?? '/usr/bin:/bin', ...env, LIFTOFF_MODULE_LOG: log },
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  const proc = new Proc(child);
  const modules = (): string[] =>
    existsSync(log)
      ? [
          ...new Set(
            readFileSync(log, 'utf8')
              .split('\n')
              .filter(Boolean)
              .map((m) => (m.startsWith('file:') ? fileURLToPath(m) : m)),
          ),
        ]
      : [];
  return { proc, modules };
}

async function run(args: string[], env: Record<string, string>): Promise<{ output: string; modules: string[] }> {
  const r = recorded(args, env);
  const { code } = await r.proc.exited;
  expect(code, r.proc.output).toBe(0);
  return { output: r.proc.output, modules: r.modules() };
}

/** An agent on `queue`, stopped (SIGTERM) once it polls: what it loaded to start and to idle in its long-poll. */
async function agentModules(
  server: TestServer,
  queue: string,
  opts: { config?: string; env?: Record<string, string> } = {},
): Promise<string[]> {
  const name = `lean-${Math.random().toString(36).slice(2, 8)}`;
  const r = recorded(
    [
      'launch-agent',
      '--name',
      name,
      '--data-dir',
      join(server.home, 'agents', name),
      '-q',
      queue,
      ...(opts.config ? ['-c', opts.config] : []),
    ],
    { ...server.env, ...opts.env },
  );
  await r.proc.waitFor(/polling /, 30_000);
  r.proc.kill('SIGTERM');
  await r.proc.exited;
  return r.modules();
}

const under = (modules: string[], dirs: string[]) => modules.filter((m) => dirs.some((d) => m.includes(d)));

describe('lean processes: each command loads only what it needs', () => {
  let server: TestServer;
  beforeAll(async () => {
    server = await startServer();
  });
  afterAll(cleanupAll);

  it('liftoff --help loads commander and the dependency-free part of core, nothing else', async () => {
    const { output, modules } = await run(['--help'], { HOME: tempDir() });
    expect(output).toContain('launch-agent');
    // The recorder saw the process (else the checks below would pass on an empty list).
    expect(under(modules, ['node_modules/commander/', 'packages/core/dist/base.js'])).not.toEqual([]);
    expect(under(modules, [...SERVER_STACK, ...DOCKER_STACK, ...UNUSED_BY_AGENT, ...HEAVY_FOR_HELP])).toEqual([]);
    expect(under(modules, ['packages/agent/'])).toEqual([]);
  });

  it('liftoff queue list loads the client, but neither the server stack nor the agent', async () => {
    const { output, modules } = await run(['queue', 'list'], server.env);
    expect(output).toMatch(/^default\s+local-process/m);
    expect(under(modules, ['packages/core/dist/client.js'])).not.toEqual([]);
    expect(under(modules, [...SERVER_STACK, ...DOCKER_STACK, ...UNUSED_BY_AGENT, 'node_modules/undici/'])).toEqual([]);
    expect(under(modules, ['packages/agent/'])).toEqual([]);
    // Node's fetch (undici, ~150 ms to compile its parser) and, with the key in the environment, the credentials
    // file's YAML parser; tar is for code archives only.
    expect(under(modules, ['node:internal/deps/undici', 'node_modules/yaml/', 'node_modules/tar/'])).toEqual([]);
  });

  it('an agent serving a local-process queue loads no server code, no Docker client and no SSH stack', async () => {
    const modules = await agentModules(server, 'default');
    expect(under(modules, ['packages/agent/dist/agent.js'])).not.toEqual([]);
    expect(under(modules, [...SERVER_STACK, ...DOCKER_STACK, ...UNUSED_BY_AGENT])).toEqual([]);
    // The AWS SDK loads only for agents whose config has an aws environment (issue 13).
    expect(under(modules, AWS_SDK)).toEqual([]);
    // Nor node's fetch: the client speaks node:http (undici's parser alone is ~10 MB of an idle agent).
    expect(under(modules, ['node:internal/deps/undici'])).toEqual([]);
    expect(under(modules, GOOGLE_AUTH)).toEqual([]);
    expect(under(modules, AZURE_SDK)).toEqual([]);
    // Image builds' and container jobs' tar packer, and the TOML parser of pyproject.toml builds.
    expect(
      under(modules, ['node_modules/@kubernetes/', 'node_modules/tar-stream/', 'node_modules/smol-toml/']),
    ).toEqual([]);
  });

  it.skipIf(!docker)('an agent serving a container queue loads dockerode, but not ssh2 or gRPC', async () => {
    await server.client.createQueue('default', { name: 'boxes', resource: 'local-container' });
    const modules = await agentModules(server, 'boxes');
    expect(under(modules, ['node_modules/dockerode/'])).not.toEqual([]);
    expect(under(modules, [...SERVER_STACK, ...UNUSED_BY_AGENT, ...AWS_SDK, ...GOOGLE_AUTH, ...AZURE_SDK])).toEqual([]);
  });

  it('an agent whose config has a gcp environment loads the Google auth stack (so the checks above can fail)', async () => {
    const md = await startFakeMetadata();
    const config = agentConfig(
      tempDir(),
      'entity: default\nqueues: [default]\nrun-as: agent\nenvironment:\n  type: gcp\n  region: us-central1\n  project: liftoff-test-project\n',
    );
    const modules = await agentModules(server, 'default', {
      config,
      env: { ...md.env, CLOUDSDK_CONFIG: tempDir('liftoff-gcloud-') },
    });
    expect(under(modules, ['node_modules/google-auth-library/'])).not.toEqual([]);
    expect(under(modules, AWS_SDK)).toEqual([]);
    expect(under(modules, AZURE_SDK)).toEqual([]);
  });

  it('an agent whose config has an azure environment loads the Azure identity library (so the checks above can fail)', async () => {
    const id = await startFakeIdentity();
    const config = agentConfig(
      tempDir(),
      'entity: default\nqueues: [default]\nrun-as: agent\nenvironment:\n  type: azure\n',
    );
    const modules = await agentModules(server, 'default', {
      config,
      env: { ...id.env, AZURE_POD_IDENTITY_AUTHORITY_HOST: 'http://127.0.0.1:9' },
    });
    expect(under(modules, ['node_modules/@azure/identity/'])).not.toEqual([]);
    expect(under(modules, [...AWS_SDK, ...GOOGLE_AUTH])).toEqual([]);
  });
});
