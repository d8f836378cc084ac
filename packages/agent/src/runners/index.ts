import type { ResourceType } from '@liftoff/core';
import { KubernetesRunner } from './kubernetes/index.js';
import { LocalContainerRunner } from './localContainer.js';
import { LocalProcessRunner } from './localProcess.js';
import type { Runner, RunnerDeps } from './types.js';

export type { AdoptContext, JobContext, RunHandle, RunOutcome, Runner, RunnerDeps } from './types.js';

/** Runner type → factory. A queue whose type is missing here is refused when the agent starts. */
export const RUNNERS: Partial<Record<ResourceType, (deps: RunnerDeps) => Runner>> = {
  'local-process': (deps) => new LocalProcessRunner(deps),
  'local-container': (deps) => new LocalContainerRunner(deps),
  kubernetes: (deps) => new KubernetesRunner(deps),
};
