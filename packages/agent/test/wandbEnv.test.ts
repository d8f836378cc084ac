import { describe, expect, it } from 'vitest';
import { WANDB_CONFIG_CHUNK, wandbEnvironment } from '../src/jobEnv.js';

const base = { runId: 'r1', itemId: 'i1', queue: 'q', entity: 'e' };

describe('wandbEnvironment', () => {
  it('sets each variable of W&B’s agent it has a value for', () => {
    expect(
      wandbEnvironment({ ...base, runConfig: { lr: 1 }, name: 'n', project: 'p', author: 'a', image: 'img:1' }),
    ).toEqual({
      WANDB_LAUNCH: 'True',
      WANDB_RUN_ID: 'r1',
      WANDB_ENTITY: 'e',
      WANDB_PROJECT: 'p',
      WANDB_NAME: 'n',
      WANDB_USERNAME: 'a',
      WANDB_DOCKER: 'img:1',
      WANDB_LAUNCH_QUEUE_NAME: 'q',
      WANDB_LAUNCH_QUEUE_ENTITY: 'e',
      WANDB_LAUNCH_TRACE_ID: 'i1',
      WANDB_CONFIG: '{"lr":1}',
    });
  });
  it('chunks a large config into WANDB_CONFIG_0..N as W&B does', () => {
    const runConfig = { blob: 'x'.repeat(WANDB_CONFIG_CHUNK * 2) };
    const env = wandbEnvironment({ ...base, runConfig });
    expect(env.WANDB_CONFIG).toBeUndefined();
    expect(env.WANDB_CONFIG_3).toBeUndefined();
    expect(env.WANDB_CONFIG_0?.length).toBe(WANDB_CONFIG_CHUNK);
    expect(JSON.parse([env.WANDB_CONFIG_0, env.WANDB_CONFIG_1, env.WANDB_CONFIG_2].join(''))).toEqual(runConfig);
  });
});
