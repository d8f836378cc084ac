import { mkdirSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import {
  BuilderConfig,
  ConfigInvalidError,
  EnvironmentConfig,
  NotSupportedError,
  RegistryConfig,
  parseAgentConfigYaml,
  type AgentConfigFile,
  type Env,
} from '@liftoff/core';
import {
  DEFAULT_STOP_GRACE_SECONDS,
  SUPPORTED_BUILDERS,
  SUPPORTED_ENVIRONMENTS,
  SUPPORTED_REGISTRIES,
  assertConfigSupported,
  resolveAgentConfig,
  type AgentFlags,
} from '@liftoff/agent';

const SOURCE = 'launch-config.yaml';

/** The problems `parseAgentConfigYaml` reports for `text`, after checking the error is the documented one. */
function problemsOf(text: string): string[] {
  let caught: unknown;
  try {
    parseAgentConfigYaml(text, SOURCE);
  } catch (e) {
    caught = e;
  }
  expect(caught).toBeInstanceOf(ConfigInvalidError);
  const error = caught as ConfigInvalidError;
  expect(error.code).toBe('CONFIG_INVALID');
  expect(error.message).toBe(`${SOURCE} is invalid:\n${error.problems.map((p) => `  - ${p}`).join('\n')}`);
  return error.problems;
}

/** The specification's example (docs "エージェントの設定"), placeholders filled in. */
const SPEC_EXAMPLE = `# W&B entity (user or team) name
entity: my-team

# Maximum number of runs in parallel. -1 = unlimited
max_jobs: -1

# Queues to poll.
queues:
- default

# Cloud environment.
environment:
  type: aws
  region: us-east-1

# Container registry.
registry:
  type: ecr
  repository: my-ecr-repo

# Container builder.
builder:
  type: docker
`;

const GCP_EXAMPLE = `entity: my-team
queues: [gpu, cpu]
environment:
  type: gcp
  region: us-central1
  project: my-gcp-project
registry:
  type: gcr
  repository: my-artifact-repo
  image-name: my-image-name
builder:
  type: kaniko
  build-context-store: gs://my-bucket/build-contexts/
  build-job-name: wandb-image-build
  secret-name: my-k8s-secret
  secret-key: service-account.json
`;

/** A W&B Launch agent file for a Kubernetes queue in secure mode, as W&B documents it. */
const WANDB_SECURE_K8S = `entity: my-team
max_jobs: 4
queues:
  - k8s-secure
secure_mode: true
builder:
  type: docker
  destination: registry.example.com/team/jobs
`;

describe('launch-config.yaml: texts that parse', () => {
  it.each<[string, string, AgentConfigFile]>([
    [
      'the specification example (aws / ecr / docker)',
      SPEC_EXAMPLE,
      {
        entity: 'my-team',
        max_jobs: -1,
        queues: ['default'],
        environment: { type: 'aws', region: 'us-east-1' },
        registry: { type: 'ecr', repository: 'my-ecr-repo' },
        builder: { type: 'docker' },
      },
    ],
    [
      'the gcp variant (gcr registry, kaniko builder with its secret)',
      GCP_EXAMPLE,
      {
        entity: 'my-team',
        queues: ['gpu', 'cpu'],
        environment: { type: 'gcp', region: 'us-central1', project: 'my-gcp-project' },
        registry: { type: 'gcr', repository: 'my-artifact-repo', 'image-name': 'my-image-name' },
        builder: {
          type: 'kaniko',
          'build-context-store': 'gs://my-bucket/build-contexts/',
          'build-job-name': 'wandb-image-build',
          'secret-name': 'my-k8s-secret',
          'secret-key': 'service-account.json',
        },
      },
    ],
    [
      'kaniko with an s3 build context store',
      'builder:\n  type: kaniko\n  build-context-store: s3://my-bucket/build-contexts/\n',
      { builder: { type: 'kaniko', 'build-context-store': 's3://my-bucket/build-contexts/' } },
    ],
    [
      'a noop builder',
      'entity: e\nqueues: [default]\nbuilder:\n  type: noop\n',
      { entity: 'e', queues: ['default'], builder: { type: 'noop' } },
    ],
    ['an empty file', '', {}],
    ['a file with only comments', '# nothing configured yet\n', {}],
    ['an empty mapping', '{}\n', {}],
    ['the legacy single queue key', 'queue: foo\n', { queue: 'foo' }],
    [
      'max_schedulers, verbosity and stopped_run_timeout',
      'max_jobs: 4\nmax_schedulers: -1\nverbosity: 2\nstopped_run_timeout: 30\n',
      { max_jobs: 4, max_schedulers: -1, verbosity: 2, stopped_run_timeout: 30 },
    ],
    [
      'null values for the nullable keys',
      'entity:\nmax_jobs:\nbuilder:\n',
      { entity: null, max_jobs: null, builder: null },
    ],
    [
      'Liftoff agent name and secure_mode false',
      'name: gpu-box-1\nsecure_mode: false\n',
      { name: 'gpu-box-1', secure_mode: false },
    ],
    [
      'the W&B kubernetes file with secure_mode: true, unchanged',
      WANDB_SECURE_K8S,
      {
        entity: 'my-team',
        max_jobs: 4,
        queues: ['k8s-secure'],
        secure_mode: true,
        builder: { type: 'docker', destination: 'registry.example.com/team/jobs' },
      },
    ],
    [
      "Liftoff's kubernetes section with its namespace and service-account allow-lists",
      'kubernetes:\n  namespace: ml\n  namespaces: [ml-a, ml-b]\n  service-accounts: [trainer]\n',
      { kubernetes: { namespace: 'ml', namespaces: ['ml-a', 'ml-b'], 'service-accounts': ['trainer'] } },
    ],
    [
      'the server URL pods of kubernetes queues use for their outputs',
      'kubernetes:\n  pod-server-url: http://liftoff.ml.svc.cluster.local:8080\n',
      { kubernetes: { 'pod-server-url': 'http://liftoff.ml.svc.cluster.local:8080' } },
    ],
    [
      'a builder destination without a tag, on a linux/arm64 platform',
      'builder:\n  type: docker\n  platform: linux/arm64\n  destination: 123.dkr.ecr.us-east-1.amazonaws.com/repo\n',
      {
        builder: { type: 'docker', platform: 'linux/arm64', destination: '123.dkr.ecr.us-east-1.amazonaws.com/repo' },
      },
    ],
  ])('%s', (_name, text, expected) => {
    expect(parseAgentConfigYaml(text, SOURCE)).toEqual(expected);
  });
});

describe('launch-config.yaml: texts that are refused, with the lines users see', () => {
  it.each<[string, string, unknown[]]>([
    ['a misspelt top-level key', 'max_job: 3\n', ['unknown field "max_job": remove it or check its spelling']],
    [
      'an unknown key under builder',
      'builder:\n  type: noop\n  buildcontext: s3://b/\n',
      ['unknown field "builder.buildcontext": remove it or check its spelling'],
    ],
    ['max_jobs of the wrong type', 'max_jobs: "three"\n', ['field "max_jobs" (value: "three"): must be a number']],
    ['max_jobs: -2', 'max_jobs: -2\n', ['field "max_jobs" (value: -2): must be -1 (unlimited) or a positive integer']],
    [
      'a pod-server-url that is not http(s)',
      'kubernetes:\n  pod-server-url: ftp://liftoff.example\n',
      ['field "kubernetes.pod-server-url" (value: "ftp://liftoff.example"): must be an http:// or https:// URL'],
    ],
    ['max_jobs: 0', 'max_jobs: 0\n', ['field "max_jobs" (value: 0): must be -1 (unlimited) or a positive integer']],
    ['max_jobs: 1.5', 'max_jobs: 1.5\n', ['field "max_jobs" (value: 1.5): must be an integer']],
    [
      'max_schedulers: -3',
      'max_schedulers: -3\n',
      ['field "max_schedulers" (value: -3): must be -1 (unlimited) or a positive integer'],
    ],
    [
      'an unknown builder type',
      'builder:\n  type: podman\n',
      ['field "builder.type" (value: "podman"): must be one of docker, kaniko, noop, buildah'],
    ],
    [
      'a builder without a type',
      'builder:\n  platform: linux/amd64\n',
      ['field "builder.type" (value: missing): must be one of docker, kaniko, noop, buildah'],
    ],
    [
      'an unsupported platform',
      'builder:\n  type: docker\n  platform: linux/386\n',
      ['field "builder.platform" (value: "linux/386"): must be one of linux/amd64, linux/arm64'],
    ],
    [
      'kaniko without build-context-store',
      'builder:\n  type: kaniko\n',
      ['field "builder.build-context-store" (value: missing): is required for the kaniko builder'],
    ],
    [
      'a build-context-store that is not s3, gcs or azure blob',
      'builder:\n  type: kaniko\n  build-context-store: ftp://x\n',
      [
        'field "builder.build-context-store" (value: "ftp://x"): must start with s3://, gs:// or https://<account>.blob.core.windows.net/<container>',
      ],
    ],
    [
      'a builder destination with a tag',
      'builder:\n  type: docker\n  destination: 123.dkr.ecr.us-east-1.amazonaws.com/repo:latest\n',
      [
        'field "builder.destination" (value: "123.dkr.ecr.us-east-1.amazonaws.com/repo:latest"): must be an image repository without a tag',
      ],
    ],
    [
      'a gcp environment without region (an aws one may leave it to AWS_REGION or the profile)',
      'environment:\n  type: gcp\n  project: p\n',
      ['field "environment.region" (value: missing): is required for a gcp environment'],
    ],
    [
      'a gcp environment without project',
      'environment:\n  type: gcp\n  region: us-central1\n',
      ['field "environment.project" (value: missing): is required for a gcp environment'],
    ],
    [
      'an unknown environment type',
      'environment:\n  type: openstack\n',
      ['field "environment.type" (value: "openstack"): must be one of aws, gcp, azure'],
    ],
    [
      'an ecr registry without an aws environment',
      'registry:\n  type: ecr\n  repository: my-ecr-repo\n',
      ['field "registry.type" (value: "ecr"): ecr needs an aws environment'],
    ],
    [
      'an ecr registry without a repository',
      'environment:\n  type: aws\n  region: us-east-1\nregistry:\n  type: ecr\n',
      ['field "registry.repository" (value: missing): is required for an ecr registry'],
    ],
    [
      'a gcr registry in an aws environment, without image-name',
      'environment:\n  type: aws\n  region: us-east-1\nregistry:\n  type: gcr\n  repository: r\n',
      [
        'field "registry.type" (value: "gcr"): gcr needs a gcp environment',
        'field "registry.image-name" (value: missing): is required for a gcr registry',
      ],
    ],
    ['queues given as a single string', 'queues: default\n', ['field "queues" (value: "default"): must be a list']],
    ['a queue that is a number', 'queues: [1]\n', ['field "queues[0]" (value: 1): must be a string']],
    ['an empty queue name', 'queues: [default, ""]\n', ['field "queues[1]" (value: ""): must not be empty']],
    ['a legacy queue that is not a string', 'queue: 3\n', ['field "queue" (value: 3): must be a string']],
    ['builder given as a string', 'builder: docker\n', ['field "builder" (value: "docker"): must be a mapping']],
    ['secure_mode as a string', 'secure_mode: "yes"\n', ['field "secure_mode" (value: "yes"): must be a boolean']],
    ['verbosity above 2', 'verbosity: 3\n', ['field "verbosity" (value: 3): must be at most 2']],
    [
      'a negative stopped_run_timeout',
      'stopped_run_timeout: -1\n',
      ['field "stopped_run_timeout" (value: -1): must be at least 0'],
    ],
    ['an empty entity', 'entity: ""\n', ['field "entity" (value: ""): must not be empty']],
    [
      'several problems at once, each on its own line',
      'max_job: 3\nmax_jobs: -2\nbuilder:\n  type: podman\n',
      [
        'field "max_jobs" (value: -2): must be -1 (unlimited) or a positive integer',
        'field "builder.type" (value: "podman"): must be one of docker, kaniko, noop, buildah',
        'unknown field "max_job": remove it or check its spelling',
      ],
    ],
    [
      'a top-level list instead of a mapping',
      '- default\n- gpu\n',
      ['the top level must be a mapping of keys (entity, max_jobs, queues, ...)'],
    ],
    [
      'a top-level scalar instead of a mapping',
      'default\n',
      ['the top level must be a mapping of keys (entity, max_jobs, queues, ...)'],
    ],
    [
      'invalid YAML (an unclosed flow list)',
      'entity: e\nqueues: [default\n',
      [expect.stringMatching(/^it is not valid YAML at line 3, column 1: \S.*[^:]$/)],
    ],
    [
      'invalid YAML (a duplicated key)',
      'max_jobs: 1\nmax_jobs: 2\n',
      [expect.stringMatching(/^it is not valid YAML at line 2, column 1: .*unique/)],
    ],
    [
      'the specification example copied with its full-width colons',
      'entity: e\nqueues:\n- default\nbuilder：\n  type：docker\n',
      [
        expect.stringMatching(
          /^it is not valid YAML at line 4, column 1: .+; line 4 has a full-width colon "：" where YAML needs ":"$/,
        ),
      ],
    ],
  ])('%s', (_name, text, expected) => {
    expect(problemsOf(text)).toEqual(expected);
  });

  it('names the source file and lists every problem in the message', () => {
    expect(() => parseAgentConfigYaml('max_job: 3\nqueues: default\n', '/etc/liftoff/agent.yaml')).toThrow(
      '/etc/liftoff/agent.yaml is invalid:\n' +
        '  - field "queues" (value: "default"): must be a list\n' +
        '  - unknown field "max_job": remove it or check its spelling',
    );
  });

  it('does not add the full-width colon hint when the only full-width colon is in a comment', () => {
    expect(problemsOf('# 設定：例\nqueues: [default\n')).toEqual([
      expect.stringMatching(/^it is not valid YAML at line 3, column 1: [^;]*$/),
    ]);
  });
});

describe('assertConfigSupported', () => {
  it('accepts the specification example (aws environment, ecr registry, docker builder)', () => {
    expect(() => assertConfigSupported(parseAgentConfigYaml(SPEC_EXAMPLE, SOURCE), SOURCE)).not.toThrow();
  });

  it('accepts an azure environment with an acr registry (issue 15)', () => {
    const file = parseAgentConfigYaml(
      'environment:\n  type: azure\nregistry:\n  type: acr\n  uri: liftoffjobs.azurecr.io/team/app\n',
      SOURCE,
    );
    expect(() => assertConfigSupported(file, SOURCE)).not.toThrow();
  });

  it('an acr registry needs a uri (or builder.destination) on an azurecr.io or loopback host', () => {
    const problems = (yaml: string) => problemsOf(`environment:\n  type: azure\n${yaml}`);
    expect(problemsOf('environment:\n  type: azure\n  region: eastus\n')).toEqual([
      'field "environment.region" (value: "eastus"): is not used by an azure environment (credentials and endpoints come from the agent environment)',
    ]);
    expect(problems('registry:\n  type: acr\n')).toEqual([
      'field "registry.uri" (value: missing): is required for an acr registry',
    ]);
    expect(problems('registry:\n  type: acr\n  uri: evil.example.com/app\n')).toEqual([
      'field "registry.uri" (value: "evil.example.com/app"): must be <registry>.azurecr.io/<repository> (lower-case; nested repositories are fine)',
    ]);
    expect(
      problems('registry:\n  type: acr\nbuilder:\n  type: docker\n  destination: x.azurecr.io.evil.com/a\n'),
    ).toHaveLength(1);
    const ok = (yaml: string) => parseAgentConfigYaml(`environment:\n  type: azure\n${yaml}`, SOURCE);
    expect(
      ok('registry:\n  type: acr\nbuilder:\n  type: docker\n  destination: liftoffjobs.azurecr.io/a\n').registry,
    ).toEqual({
      type: 'acr',
    });
    expect(ok('registry:\n  type: acr\n  uri: 127.0.0.1:5000/team/app\n').registry?.uri).toBe(
      '127.0.0.1:5000/team/app',
    );
  });

  // Since issues 13–15 every builder, registry and environment type of W&B's config is built: none is refused. A
  // type the schema admits without an implementation behind it would be refused at start-up, and fails here first.
  it('supports every builder, registry and environment type the config schema admits', () => {
    expect([...BuilderConfig.shape.type.options].sort()).toEqual([...SUPPORTED_BUILDERS].sort());
    expect([...RegistryConfig.shape.type.options].sort()).toEqual([...SUPPORTED_REGISTRIES].sort());
    expect([...EnvironmentConfig.shape.type.options].sort()).toEqual([...SUPPORTED_ENVIRONMENTS].sort());
    const unsupported = {
      ...parseAgentConfigYaml('', SOURCE),
      builder: { type: 'podman' },
    } as unknown as AgentConfigFile;
    expect(() => assertConfigSupported(unsupported, SOURCE)).toThrow(NotSupportedError);
    expect(() => assertConfigSupported(unsupported, SOURCE)).toThrow('builder type "podman" is not supported yet');
  });

  it('accepts the gcp variant with the docker builder (gcp environment, gcr registry)', () => {
    const file = parseAgentConfigYaml(GCP_EXAMPLE.replace(/builder:[\s\S]*$/, 'builder:\n  type: docker\n'), SOURCE);
    expect(file.registry?.type).toBe('gcr');
    expect(() => assertConfigSupported(file, SOURCE)).not.toThrow();
  });

  it.each<[string, string]>([
    ['a noop builder', 'entity: e\nqueues: [default]\nbuilder:\n  type: noop\n'],
    ['a docker builder with a destination', 'builder:\n  type: docker\n  destination: 127.0.0.1:5000/jobs\n'],
    // Since issue 15 the kaniko builder is built (builders/inCluster), so the gcp example loads whole.
    ['the gcp variant (kaniko builder)', GCP_EXAMPLE],
    ['a kaniko builder alone', 'builder:\n  type: kaniko\n  build-context-store: s3://b/ctx/\n'],
    ['an empty file', ''],
    ['secure_mode: false', 'secure_mode: false\n'],
    ['secure_mode: true', 'secure_mode: true\n'],
    ['a W&B kubernetes agent file with secure_mode: true', WANDB_SECURE_K8S],
    ['null builder, registry and environment', 'builder:\nregistry:\nenvironment:\n'],
  ])('accepts %s', (_name, text) => {
    expect(() => assertConfigSupported(parseAgentConfigYaml(text, SOURCE), SOURCE)).not.toThrow();
  });
});

describe('resolveAgentConfig', () => {
  let tmp: string;
  beforeEach(() => {
    tmp = mkdtempSync(join(tmpdir(), 'liftoff-agent-config-'));
  });
  afterEach(() => {
    rmSync(tmp, { recursive: true, force: true });
  });

  const writeConfig = (text: string, name = 'launch-config.yaml'): string => {
    const path = join(tmp, name);
    writeFileSync(path, text);
    return path;
  };
  /** The error `resolveAgentConfig` throws, checked to be a ConfigInvalidError. */
  const failure = (flags: AgentFlags, env: Env): ConfigInvalidError => {
    try {
      resolveAgentConfig(flags, env);
    } catch (e) {
      expect(e).toBeInstanceOf(ConfigInvalidError);
      return e as ConfigInvalidError;
    }
    throw new Error('resolveAgentConfig did not throw');
  };

  it('uses the defaults when neither file, environment nor flags set a value', () => {
    const resolved = resolveAgentConfig({ queues: ['q'] }, { HOME: tmp });
    expect(resolved).toEqual({
      entity: 'default',
      maxJobs: 1,
      queues: ['q'],
      verbosity: 0,
      name: undefined,
      stopGraceSeconds: DEFAULT_STOP_GRACE_SECONDS,
      pollIntervalMs: 0,
      file: {},
      source: undefined,
    });
  });

  it('polls on an interval only when asked, and refuses a non-positive interval', () => {
    expect(resolveAgentConfig({ queues: ['q'], pollIntervalSeconds: 10 }, { HOME: tmp }).pollIntervalMs).toBe(10_000);
    expect(() => resolveAgentConfig({ queues: ['q'], pollIntervalSeconds: 0 }, { HOME: tmp })).toThrow(
      'value 0: must be a positive number of seconds',
    );
  });

  const FILE =
    'entity: file-team\nmax_jobs: 3\nqueues: [a, b]\nverbosity: 1\nname: file-agent\nstopped_run_timeout: 42\n';

  it.each<[string, AgentFlags, Env, { entity: string; maxJobs: number }]>([
    ['the file alone', {}, {}, { entity: 'file-team', maxJobs: 3 }],
    [
      'the environment over the file',
      {},
      { LIFTOFF_ENTITY: 'env-team', LIFTOFF_LAUNCH_MAX_JOBS: '5' },
      { entity: 'env-team', maxJobs: 5 },
    ],
    [
      'flags over the environment',
      { entity: 'flag-team', maxJobs: 7 },
      { LIFTOFF_ENTITY: 'env-team', LIFTOFF_LAUNCH_MAX_JOBS: '5' },
      { entity: 'flag-team', maxJobs: 7 },
    ],
    ['flags over the file', { entity: 'flag-team', maxJobs: 2 }, {}, { entity: 'flag-team', maxJobs: 2 }],
    [
      'an empty environment value, which is ignored',
      {},
      { LIFTOFF_ENTITY: '', LIFTOFF_LAUNCH_MAX_JOBS: '' },
      { entity: 'file-team', maxJobs: 3 },
    ],
    [
      '-1 from the environment as unlimited',
      {},
      { LIFTOFF_LAUNCH_MAX_JOBS: '-1' },
      { entity: 'file-team', maxJobs: Infinity },
    ],
    ['-1 from a flag as unlimited', { maxJobs: -1 }, {}, { entity: 'file-team', maxJobs: Infinity }],
  ])('takes entity and max_jobs from %s', (_name, flags, env, expected) => {
    const config = writeConfig(FILE);
    const resolved = resolveAgentConfig({ ...flags, config }, { HOME: tmp, ...env });
    expect({ entity: resolved.entity, maxJobs: resolved.maxJobs }).toEqual(expected);
    expect(resolved.source).toBe(config);
  });

  it('turns max_jobs: -1 in the file into Infinity', () => {
    const config = writeConfig('max_jobs: -1\nqueues: [a]\n');
    expect(resolveAgentConfig({ config }, { HOME: tmp }).maxJobs).toBe(Infinity);
  });

  it('takes verbosity, name and the stop grace period from the file, verbosity and name from flags over it', () => {
    const config = writeConfig(FILE);
    const fromFile = resolveAgentConfig({ config }, { HOME: tmp });
    expect([fromFile.verbosity, fromFile.name, fromFile.stopGraceSeconds]).toEqual([1, 'file-agent', 42]);
    const fromFlags = resolveAgentConfig({ config, verbosity: 2, name: 'flag-agent' }, { HOME: tmp });
    expect([fromFlags.verbosity, fromFlags.name]).toEqual([2, 'flag-agent']);
  });

  it('replaces the file queues with the --queue flags (without duplicates)', () => {
    const config = writeConfig(FILE);
    expect(resolveAgentConfig({ config }, { HOME: tmp }).queues).toEqual(['a', 'b']);
    expect(resolveAgentConfig({ config, queues: ['c', 'd', 'c'] }, { HOME: tmp }).queues).toEqual(['c', 'd']);
  });

  it.each<[string, string, string[]]>([
    ['appends the legacy queue key to queues', 'queues: [a]\nqueue: b\n', ['a', 'b']],
    ['does not repeat a legacy queue already listed', 'queues: [a, b]\nqueue: a\n', ['a', 'b']],
    ['uses the legacy queue key alone', 'queue: foo\n', ['foo']],
  ])('%s', (_name, text, queues) => {
    expect(resolveAgentConfig({ config: writeConfig(text) }, { HOME: tmp }).queues).toEqual(queues);
  });

  it('refuses an explicit --config that does not exist, naming the path', () => {
    const missing = join(tmp, 'nope', 'agent.yaml');
    const error = failure({ config: missing, queues: ['q'] }, { HOME: tmp });
    expect(error.message).toBe(`${missing} is invalid:\n  - it cannot be read (ENOENT)`);
    expect(error.problems).toEqual(['it cannot be read (ENOENT)']);
  });

  it('is fine without a file at the default path', () => {
    const resolved = resolveAgentConfig({ queues: ['q'] }, { HOME: tmp });
    expect(resolved.source).toBeUndefined();
    expect(resolved.file).toEqual({});
  });

  it.each<[string, (home: string) => Env, (home: string) => string]>([
    ['$HOME/.config/liftoff', (home) => ({ HOME: home }), (home) => join(home, '.config', 'liftoff')],
    [
      '$XDG_CONFIG_HOME/liftoff',
      (home) => ({ HOME: join(home, 'elsewhere'), XDG_CONFIG_HOME: join(home, 'xdg') }),
      (home) => join(home, 'xdg', 'liftoff'),
    ],
  ])('reads the default file from %s', (_name, env, dir) => {
    mkdirSync(dir(tmp), { recursive: true });
    const path = join(dir(tmp), 'launch-config.yaml');
    writeFileSync(path, 'entity: from-default-path\nqueues: [dq]\n');
    const resolved = resolveAgentConfig({}, env(tmp));
    expect([resolved.entity, resolved.queues, resolved.source]).toEqual(['from-default-path', ['dq'], path]);
  });

  it('reports an invalid file under its path', () => {
    const config = writeConfig('max_job: 3\n', 'bad.yaml');
    const error = failure({ config, queues: ['q'] }, { HOME: tmp });
    expect(error.message).toBe(`${config} is invalid:\n  - unknown field "max_job": remove it or check its spelling`);
  });

  it('refuses to start without any queue, saying how to pass one', () => {
    const config = writeConfig('entity: e\n');
    const error = failure({ config }, { HOME: tmp });
    expect(error.problems).toEqual([
      'no queue to poll: pass -q QUEUE (repeatable) or list them under "queues:" in the config file',
    ]);
    expect(error.message).toContain('-q QUEUE');
  });

  it.each(['abc', '0', '-2', '1.5', '2x'])('refuses LIFTOFF_LAUNCH_MAX_JOBS=%s', (value) => {
    const error = failure({ queues: ['q'] }, { HOME: tmp, LIFTOFF_LAUNCH_MAX_JOBS: value });
    expect(error.message).toBe(
      `LIFTOFF_LAUNCH_MAX_JOBS is invalid:\n  - value "${value}": must be -1 (unlimited) or a positive integer`,
    );
  });

  it('refuses --max-jobs 0', () => {
    const error = failure({ queues: ['q'], maxJobs: 0 }, { HOME: tmp });
    expect(error.message).toBe('--max-jobs is invalid:\n  - value "0": must be -1 (unlimited) or a positive integer');
  });
});

describe('launch-config.yaml: run-as, job-env and macro-env (Liftoff)', () => {
  it('parses each run-as shape and the name lists', () => {
    expect(parseAgentConfigYaml('run-as: agent\n', SOURCE)['run-as']).toBe('agent');
    expect(parseAgentConfigYaml('run-as: dynamic\n', SOURCE)['run-as']).toBe('dynamic');
    expect(parseAgentConfigYaml('run-as: {user: ml, group: 1234}\n', SOURCE)['run-as']).toEqual({
      user: 'ml',
      group: 1234,
    });
    expect(parseAgentConfigYaml('run-as: {dynamic: {first: 300000, count: 10}}\n', SOURCE)['run-as']).toEqual({
      dynamic: { first: 300000, count: 10 },
    });
    const lists = parseAgentConfigYaml('job-env: [HTTPS_PROXY, WANDB_BASE_URL]\nmacro-env: [AWS_REGION]\n', SOURCE);
    expect(lists['job-env']).toEqual(['HTTPS_PROXY', 'WANDB_BASE_URL']);
    expect(lists['macro-env']).toEqual(['AWS_REGION']);
  });

  it('refuses a dynamic range among system users, one past the uid space, and names that are not variables', () => {
    expect(problemsOf('run-as: {dynamic: {first: 10, count: 5}}\n').join('\n')).toContain('at least 1000');
    expect(problemsOf('run-as: {dynamic: {first: 2147483000, count: 1000}}\n').join('\n')).toContain(
      'at most 2147483646',
    );
    expect(problemsOf('job-env: ["A B"]\n').join('\n')).toContain('environment variable name');
    expect(problemsOf('run-as: root\n').length).toBeGreaterThan(0);
  });
});
