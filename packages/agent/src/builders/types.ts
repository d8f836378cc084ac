import { LiftoffError, type LaunchSpec } from '@liftoff/core';

export interface BuildRequest {
  runId: string;
  spec: LaunchSpec;
  /** The fetched code: the build context. */
  codeDir: string;
  /** Identity of the code (archive digest, or remote and commit); part of the image tag. */
  sourceIdentity: string;
  /** Base image for generated Dockerfiles, already resolved (resource args > agent config > default). */
  baseImage: string;
  onLog: (text: string) => void;
  /** A `[liftoff]` line in the run's log (in-cluster builders: the Job created, a capability granted). */
  onNote?: (line: string) => void;
  /** A problem that may resolve (an unschedulable build pod, an image pull back-off), or null once it has. */
  onWarning?: (warning: string | null) => void;
  /** True once the run was cancelled: in-cluster builders then delete their build Job. */
  isCancelled?: () => boolean;
}

export interface BuildResult {
  image: string;
  /** False when an image with the same inputs already existed and the build was skipped. */
  built: boolean;
  /** Set by the noop builder: run `image` with a copy of the code at this path in the container. */
  mountCodeAt?: string;
  /** Set for generated images: the code is at this path in the image, and the job starts in a per-run copy of it. */
  workCopyAt?: string;
}

/** Turns a job's code into an image a container runner can start. */
export interface Builder {
  readonly type: 'docker' | 'noop' | 'kaniko' | 'buildah';
  build(req: BuildRequest): Promise<BuildResult>;
}

/** A failure of the build stage: the run fails with stage `build` and this message. */
export class BuildError extends LiftoffError {
  constructor(message: string, cause?: unknown) {
    super('RUNNER_FAILED', message, { cause });
  }
}

/** The run was cancelled while its image was being built in the cluster (the build Job was deleted). */
export class BuildCancelledError extends BuildError {
  constructor() {
    super('Cancelled during the image build; the build Job was deleted.');
  }
}

export const DEFAULT_BASE_IMAGE = 'python:3.12-slim';
