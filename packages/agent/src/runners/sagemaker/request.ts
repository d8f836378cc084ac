import { RunnerError } from '@liftoff/core';
import type { CreateTrainingJobRequest, Tag } from '@aws-sdk/client-sagemaker';

/**
 * The members of CreateTrainingJobRequest (botocore 1.43's sagemaker/2017-07-24 model, the same set as
 * @aws-sdk/client-sagemaker 3.1142's). A top-level key of `resource_args.sagemaker` outside this list is refused by
 * name: W&B passes it on and boto fails later with a generic validation error.
 */
export const REQUEST_MEMBERS = [
  'TrainingJobName',
  'HyperParameters',
  'AlgorithmSpecification',
  'RoleArn',
  'InputDataConfig',
  'OutputDataConfig',
  'ResourceConfig',
  'VpcConfig',
  'StoppingCondition',
  'Tags',
  'EnableNetworkIsolation',
  'EnableInterContainerTrafficEncryption',
  'EnableManagedSpotTraining',
  'CheckpointConfig',
  'DebugHookConfig',
  'DebugRuleConfigurations',
  'TensorBoardOutputConfig',
  'ExperimentConfig',
  'ProfilerConfig',
  'ProfilerRuleConfigurations',
  'Environment',
  'RetryStrategy',
  'RemoteDebugConfig',
  'InfraCheckConfig',
  'SessionChainingConfig',
  'ServerlessJobConfig',
  'MlflowConfig',
  'ModelPackageConfig',
] as const;

/** Tags Liftoff sets itself; the sweep trusts them, so a job may not set them. */
export const TAG_RUN = 'LiftoffRunId';
export const TAG_AGENT = 'LiftoffAgent';

/** SageMaker's limit per Environment value; longer LIFTOFF_RUN_CONFIG values are split into numbered pieces. */
export const ENV_VALUE_MAX = 512;

/**
 * Keys W&B's runner pops or that would let a job choose what the agent's configuration decides (where the agent
 * reaches AWS, as whom, which job it is). Each with what to do instead.
 */
const REFUSED: Record<string, string> = {
  region: 'the region comes from the agent config (environment.region)',
  profile: 'credentials come from the agent, never from a job',
  EcrRepoName: 'the registry comes from the agent config (registry or builder.destination)',
  TrainingJobName: 'Liftoff names the job liftoff-<run id> so that a restarted agent finds it again',
};

/** W&B's rule (`to_camel_case`), applied to every top-level key: `role_arn` and `environment` alike. */
export function camelKey(key: string): string {
  return key
    .split('_')
    .filter((p) => p.length > 0)
    .map((p) => p.charAt(0).toUpperCase() + p.slice(1))
    .join('');
}

/**
 * The training job's name. JobContext carries no attempt number, but every attempt of an item is a run of its own
 * with a fresh run id, so the run id alone is unique per attempt (and what reconcile has). 8 characters of [a-z0-9]
 * after the prefix: within SageMaker's 63 and its pattern.
 */
export const jobNameOf = (runId: string): string => `liftoff-${runId}`;

export interface RequestContext {
  name: string;
  runId: string;
  agentId: string;
  image: string;
  entryPoint: readonly string[];
  args: readonly string[];
  /** The run's environment (jobEnv.ts); secrets are not allowed to reach here (see assertNoSecrets). */
  runEnv: Readonly<Record<string, string>>;
}

type Obj = Record<string, unknown>;
const isObj = (v: unknown): v is Obj => typeof v === 'object' && v !== null && !Array.isArray(v);

/**
 * `resource_args.sagemaker` → CreateTrainingJobRequest. Liftoff's keys win over the job's: the name, the image and
 * the entry point and args (always applied, also over a given AlgorithmSpecification), and its two tags. RoleArn is
 * left as given: a bare role name is completed from STS later (after the preflight, which makes no AWS call).
 */
export function buildRequest(resourceArgs: Obj | undefined, ctx: RequestContext): CreateTrainingJobRequest {
  const given: Obj = {};
  for (const [key, value] of Object.entries(resourceArgs ?? {})) {
    // `builder` is the agent's (resource_args.<resource>.builder.base_image), never part of the request.
    if (value === null || value === undefined || key === 'builder') continue;
    const member = camelKey(key);
    const why = REFUSED[key] ?? REFUSED[member];
    if (why) throw new RunnerError(`resource_args.sagemaker.${key} is refused: ${why}.`);
    if (!(REQUEST_MEMBERS as readonly string[]).includes(member)) {
      throw new RunnerError(
        `resource_args.sagemaker.${key} is not a CreateTrainingJob member (as ${member}); see docs/sagemaker.md for the accepted keys.`,
      );
    }
    if (member in given) throw new RunnerError(`resource_args.sagemaker sets ${member} twice (${key}).`);
    given[member] = value;
  }
  const spec = given.AlgorithmSpecification ?? {};
  if (!isObj(spec)) throw new RunnerError('resource_args.sagemaker.AlgorithmSpecification must be an object.');
  const algorithm: Obj = { TrainingInputMode: 'File', ...spec, TrainingImage: ctx.image };
  delete algorithm.ContainerEntrypoint;
  delete algorithm.ContainerArguments;
  if (ctx.entryPoint.length) algorithm.ContainerEntrypoint = [...ctx.entryPoint];
  if (ctx.args.length) algorithm.ContainerArguments = [...ctx.args];
  return {
    ...given,
    TrainingJobName: ctx.name,
    AlgorithmSpecification: algorithm,
    Environment: environment(given.Environment, ctx.runEnv),
    Tags: tags(given.Tags, ctx),
    // Typed as the request the preflight then checks: RoleArn and the other required members may still be missing.
  } as unknown as CreateTrainingJobRequest;
}

/** The run's environment under the job's own `Environment`, with LIFTOFF_RUN_CONFIG split to fit SageMaker. */
function environment(userEnv: unknown, runEnv: Readonly<Record<string, string>>): Record<string, string> {
  if (userEnv !== undefined && !isObj(userEnv)) {
    throw new RunnerError('resource_args.sagemaker.Environment must be a map of names to strings.');
  }
  const env: Record<string, string> = {};
  for (const [k, v] of Object.entries(runEnv)) {
    if (k === 'LIFTOFF_RUN_CONFIG') Object.assign(env, chunkRunConfig(v));
    else env[k] = v;
  }
  for (const [k, v] of Object.entries(userEnv ?? {})) {
    if (k.startsWith('LIFTOFF_')) {
      throw new RunnerError(`resource_args.sagemaker.Environment.${k} is refused: LIFTOFF_* variables are Liftoff's.`);
    }
    if (typeof v !== 'string') throw new RunnerError(`resource_args.sagemaker.Environment.${k} must be a string.`);
    env[k] = v;
  }
  return env;
}

/**
 * LIFTOFF_RUN_CONFIG as is when it fits in 512 characters; else LIFTOFF_RUN_CONFIG_CHUNKS=N and the pieces
 * LIFTOFF_RUN_CONFIG_0..N-1, which the job joins in order (docs/sagemaker.md). Split by code point so that no
 * piece ends inside a surrogate pair.
 */
export function chunkRunConfig(value: string): Record<string, string> {
  const chars = Array.from(value);
  if (chars.length <= ENV_VALUE_MAX) return { LIFTOFF_RUN_CONFIG: value };
  const out: Record<string, string> = {};
  let n = 0;
  for (let i = 0; i < chars.length; i += ENV_VALUE_MAX, n++) {
    out[`LIFTOFF_RUN_CONFIG_${n}`] = chars.slice(i, i + ENV_VALUE_MAX).join('');
  }
  out.LIFTOFF_RUN_CONFIG_CHUNKS = String(n);
  return out;
}

function tags(userTags: unknown, ctx: RequestContext): Tag[] {
  if (userTags !== undefined && !Array.isArray(userTags)) {
    throw new RunnerError('resource_args.sagemaker.Tags must be a list of {Key, Value}.');
  }
  const out: Tag[] = [];
  for (const [i, t] of (userTags ?? []).entries()) {
    if (!isObj(t) || typeof t.Key !== 'string' || typeof t.Value !== 'string') {
      throw new RunnerError(`resource_args.sagemaker.Tags[${i}] must be {Key: string, Value: string}.`);
    }
    if (t.Key === TAG_RUN || t.Key === TAG_AGENT) {
      throw new RunnerError(`resource_args.sagemaker.Tags[${i}] is refused: the ${t.Key} tag is set by Liftoff.`);
    }
    out.push({ Key: t.Key, Value: t.Value });
  }
  out.push({ Key: TAG_RUN, Value: ctx.runId }, { Key: TAG_AGENT, Value: ctx.agentId });
  return out;
}
