import { describe, expect, it } from 'vitest';
import { mapWandbSpec, specLookalikeKey, type MappedSpec } from '../src/wandbSpec.js';

const dirs = new Set(['./code', '/home/me/project']);
const isDir = (p: string) => dirs.has(p);
const base = { args: [], run_config: {}, resource_args: {}, template_variables: {} };

/**
 * W&B launch specs in the shapes of wandb-launch.md §2.1 and W&B's docs ("Add job to queue", `wandb launch --config`,
 * the queue config examples), each with the push it maps to.
 */
const mapped: Array<[string, unknown, MappedSpec]> = [
  [
    'a job with overrides (docs: launch --config)',
    {
      job: 'my-team/my-project/train-job:latest',
      overrides: { run_config: { lr: 0.01, epochs: 3 }, args: ['--fast'] },
      resource: 'local-container',
      resource_args: { 'local-container': { gpus: 'all' } },
    },
    {
      ...base,
      source: { type: 'job', name: 'train-job', version: 'latest' },
      entity: 'my-team',
      project: 'my-project',
      args: ['--fast'],
      run_config: { lr: 0.01, epochs: 3 },
      resource: 'local-container',
      resource_args: { 'local-container': { gpus: 'all' } },
    },
  ],
  [
    'a job by name only',
    { job: 'train-job', entity: 'me', project: 'P' },
    { ...base, source: { type: 'job', name: 'train-job' }, entity: 'me', project: 'p' },
  ],
  [
    'a git uri with entry point and version',
    {
      uri: 'https://github.com/wandb/launch-jobs.git',
      git: { version: 'main' },
      entry_point: ['python', 'jobs/hello.py'],
      entity: 'e',
      project: 'proj',
      name: 'hello',
    },
    {
      ...base,
      source: { type: 'git', url: 'https://github.com/wandb/launch-jobs.git', ref: 'main' },
      entry_point: ['python', 'jobs/hello.py'],
      entity: 'e',
      project: 'proj',
      name: 'hello',
    },
  ],
  [
    'legacy git.repo',
    { git: { repo: 'git@github.com:me/r.git', version: 'v1' }, entry_point: 'python train.py --x "a b"' },
    {
      ...base,
      source: { type: 'git', url: 'git@github.com:me/r.git', ref: 'v1' },
      entry_point: ['python', 'train.py', '--x', 'a b'],
    },
  ],
  [
    'a local directory uri',
    { uri: './code', entry_point: ['python3', 'train.py'], overrides: { dockerfile: 'Dockerfile.gpu' } },
    {
      ...base,
      source: { type: 'code', dir: './code' },
      entry_point: ['python3', 'train.py'],
      dockerfile: 'Dockerfile.gpu',
    },
  ],
  [
    'docker.docker_image with overrides.entry_point over entry_point',
    {
      docker: { docker_image: 'python:3.12-slim' },
      entry_point: ['python', 'old.py'],
      overrides: { entry_point: ['python', '-c', 'print(1)'] },
      priority: 'high',
    },
    {
      ...base,
      source: { type: 'image', image: 'python:3.12-slim' },
      entry_point: ['python', '-c', 'print(1)'],
      priority: 'high',
    },
  ],
  [
    'image_uri with template variables and a numeric priority',
    { image_uri: 'registry.local/train:1', template_variables: { gpus: 2, tier: 'large' }, priority: 0 },
    {
      ...base,
      source: { type: 'image', image: 'registry.local/train:1' },
      template_variables: { gpus: 2, tier: 'large' },
      priority: 'critical',
    },
  ],
  [
    'builder base image in resource_args',
    {
      uri: '/home/me/project',
      entry_point: ['python', 'train.py'],
      resource: 'kubernetes',
      resource_args: { kubernetes: { builder: { base_image: 'pytorch/pytorch:2.1' } } },
    },
    {
      ...base,
      source: { type: 'code', dir: '/home/me/project' },
      entry_point: ['python', 'train.py'],
      resource: 'kubernetes',
      resource_args: { kubernetes: { builder: { base_image: 'pytorch/pytorch:2.1' } } },
    },
  ],
];

/** Specs Liftoff cannot honour, and the key the refusal must name. */
const refused: Array<[unknown, string]> = [
  [{ job: 'j', author: 'me' }, '"author"'],
  [{ job: 'j', builder: { type: 'docker' } }, '"builder"'],
  [{ job: 'j', run_id: 'abc' }, '"run_id"'],
  [{ job: 'j', sweep_id: 's' }, '"sweep_id"'],
  [{ job: 'j', queue_entity: 'q' }, '"queue_entity"'],
  [{ job: 'j', python_version: '3.10' }, '"python_version"'],
  [{ job: 'j', _resume_count: 1 }, '"_resume_count"'],
  [{ job: 'j', _wandb_api_key: 'k' }, '"_wandb_api_key"'],
  [{ job: 'j', additional_services: [] }, '"additional_services"'],
  [{ docker: { docker_image: 'a', user_id: 1000 } }, '"docker.user_id"'],
  [{ job: 'j', overrides: { artifacts: {} } }, '"overrides.artifacts"'],
  [{ job: 'j', overrides: { files: {} } }, '"overrides.files"'],
  [{ job: 'j', overrides: { working_dir: 'x' } }, '"overrides.working_dir"'],
  [{ job: 'j', something_new: 1 }, '"something_new"'],
  [{ job: 'j', overrides: { mystery: 1 } }, '"overrides.mystery"'],
  [{ uri: 'placeholder-uri-scheduler' }, '"uri"'],
  [{ uri: 'https://wandb.ai/me/p/runs/abc' }, '"uri"'],
  [{ job: 'j', resource: 'gpu-cloud' }, '"resource"'],
  [{ job: 'j', overrides: { args: '--fast' } }, '"overrides.args"'],
  [{ job: 'j', overrides: { run_config: [1] } }, '"overrides.run_config"'],
  [{ job: 'j', priority: 'urgent' }, '"priority"'],
  [{ job: 'j', docker: { docker_image: 'a' } }, 'exactly one source'],
  [{ docker: { docker_image: 'a' }, image_uri: 'a' }, 'give the image once'],
  [{ entry_point: ['python'] }, 'no source'],
  [{ job: 'e1/p/j', entity: 'e2' }, '"job" is of entity "e1"'],
  [{ uri: './code', git: { version: 'main' } }, '"git.version"'],
  [{ job: 'j', resource_args: { kubernetes: 3 } }, '"resource_args"'],
  [['not', 'a', 'mapping'], 'top level'],
];

describe('W&B launch spec mapping', () => {
  it.each(mapped)('%s', (_name, spec, expected) => {
    expect(mapWandbSpec(spec, isDir)).toEqual(expected);
  });
  it.each(refused)('refuses %j naming %s', (spec, key) => {
    expect(() => mapWandbSpec(spec, isDir)).toThrow(key);
  });
});

describe('-c with a W&B spec', () => {
  it.each<[Record<string, unknown>, string | undefined]>([
    [{ overrides: { run_config: { lr: 1 } } }, 'overrides'],
    [{ docker: { docker_image: 'x' } }, 'docker.docker_image'],
    [{ resource_args: { kubernetes: {} } }, 'resource_args'],
    [{ job: 'e/p/j:latest', project: 'p' }, 'job'],
    [{ uri: 'https://x/r.git', entry_point: ['python'] }, 'uri'],
    // Run configs that merely share a key name are run configs.
    [{ lr: 0.1, uri: 's3://bucket/data' }, undefined],
    [{ name: 'resnet', project: 'vision', epochs: 3 }, undefined],
    [{ overrides: 3 }, undefined],
  ])('%j → %s', (config, key) => {
    expect(specLookalikeKey(config)).toBe(key);
  });
});
