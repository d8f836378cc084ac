import type { ResourceType } from '@liftoff/core';
import { LocalContainerRunner } from './localContainer.js';
import { LocalProcessRunner } from './localProcess.js';
import type { Runner, RunnerDeps } from './types.js';

export type { AdoptContext, JobContext, RunHandle, RunOutcome, Runner, RunnerDeps } from './types.js';

/**
 * Runner type → factory. A queue whose type is missing here is refused when the agent starts. Factories are
 * async so that heavy clients load only where used: the Kubernetes client alone adds half a second to every start
 * of the `liftoff` binary, which also serves quick commands like `liftoff runs cancel`.
 */
export const RUNNERS: Partial<Record<ResourceType, (deps: RunnerDeps) => Promise<Runner>>> = {
  'local-process': async (deps) => new LocalProcessRunner(deps),
  'local-container': async (deps) => new LocalContainerRunner(deps),
  kubernetes: async (deps) => new (await import('./kubernetes/index.js')).KubernetesRunner(deps),
  // The AWS SDK (tens of MB) loads only for agents with a sagemaker queue.
  sagemaker: async (deps) => new (await import('./sagemaker/index.js')).SageMakerRunner(deps),
  // Plain REST through the gcp environment's auth client; `gcp-vertex` is W&B's name for the same resource.
  vertex: async (deps) => new (await import('./vertex/index.js')).VertexRunner(deps),
  'gcp-vertex': async (deps) => new (await import('./vertex/index.js')).VertexRunner(deps, {}, 'gcp-vertex'),
  // The Slurm CLI on the agent host or over ssh (docs/slurm.md).
  slurm: async (deps) => new (await import('./slurm/index.js')).SlurmRunner(deps),
};
