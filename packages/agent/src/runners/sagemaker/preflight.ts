import { RunnerError } from '@liftoff/core';
import type { CreateTrainingJobRequest } from '@aws-sdk/client-sagemaker';

/**
 * SageMaker's documented limits (botocore's sagemaker/2017-07-24 model), checked before any AWS call so that a job
 * fails at stage `run` naming the field and what to do, instead of with an opaque ValidationException after STS and
 * ECR were already asked. The SDK itself checks none of these.
 *
 * Environment entries: the model said 48 up to botocore 1.29 (Debian's python3-botocore) and says 100 in 1.43 (the
 * current one, and the API reference). Liftoff follows the current model: refusing 49..100 would refuse jobs AWS
 * runs.
 */
export const LIMITS = {
  nameMax: 63,
  envEntries: 100,
  envKeyMax: 512,
  envValueMax: 512,
  argItems: 100,
  argMax: 256,
  tags: 50,
  tagKeyMax: 128,
  tagValueMax: 256,
  hyperParameters: 100,
  hyperParameterKeyMax: 256,
  hyperParameterValueMax: 2500,
} as const;

// The model's patterns, anchored: AWS matches them whole (TrainingJobName's has no `$` in the model).
const NAME = /^[a-zA-Z0-9](-*[a-zA-Z0-9]){0,62}$/;
const ROLE_ARN = /^arn:aws[a-z-]*:iam::\d{12}:role\/?[a-zA-Z_0-9+=,.@\-_/]+$/;
/** A bare role name (or path/name) that the runner completes into an ARN from STS. */
const ROLE_NAME = /^[a-zA-Z_0-9+=,.@\-_/]{1,64}$/;
const ENV_KEY = /^[a-zA-Z_][a-zA-Z0-9_]*$/;
const TAG_TEXT = /^[\p{L}\p{Z}\p{N}_.:/=+\-@]*$/u;
/** The model's `.*` for arguments is one line: Java's `.` stops at line terminators. */
const LINE_BREAK = /[\n\r\u0085\u2028\u2029]/;

const FIELD = 'resource_args.sagemaker';

function refuse(field: string, problem: string, fix: string): never {
  throw new RunnerError(`SageMaker would refuse this job: ${field} ${problem}. ${fix}`);
}

export function preflight(req: CreateTrainingJobRequest): void {
  const name = req.TrainingJobName ?? '';
  if (name.length > LIMITS.nameMax || !NAME.test(name)) {
    refuse(
      'TrainingJobName',
      `"${name}" does not match ${NAME.source} (at most 63 characters, no "_")`,
      'Report this: Liftoff chose the name.',
    );
  }
  if (!req.RoleArn) {
    refuse(
      `${FIELD}.RoleArn`,
      'is missing',
      'Give the execution role SageMaker assumes: an ARN or a role name of this account.',
    );
  }
  if (!ROLE_ARN.test(req.RoleArn) && !ROLE_NAME.test(req.RoleArn)) {
    refuse(
      `${FIELD}.RoleArn`,
      `"${req.RoleArn}" is neither an IAM role ARN nor a role name`,
      'Give arn:aws:iam::<account>:role/<name> or just <name>.',
    );
  }
  if (!req.OutputDataConfig?.S3OutputPath) {
    refuse(
      `${FIELD}.OutputDataConfig.S3OutputPath`,
      'is missing',
      'Give the s3:// prefix SageMaker writes the model to.',
    );
  }
  if (!req.ResourceConfig) {
    refuse(`${FIELD}.ResourceConfig`, 'is missing', 'Give InstanceType, InstanceCount and VolumeSizeInGB.');
  }
  if (!req.StoppingCondition) {
    refuse(`${FIELD}.StoppingCondition`, 'is missing', 'Give MaxRuntimeInSeconds (and MaxWaitTimeInSeconds for spot).');
  }
  const env = Object.entries(req.Environment ?? {});
  if (env.length > LIMITS.envEntries) {
    refuse(
      'Environment',
      `has ${env.length} entries, more than SageMaker's ${LIMITS.envEntries} (the run's LIFTOFF_* variables count too)`,
      'Pass fewer variables, or put settings into the run config.',
    );
  }
  for (const [k, v] of env) {
    if (k.length > LIMITS.envKeyMax || !ENV_KEY.test(k)) {
      refuse(
        `Environment.${k}`,
        `is not a valid name (${ENV_KEY.source}, at most 512 characters)`,
        'Rename the variable.',
      );
    }
    if (v.length > LIMITS.envValueMax) {
      refuse(
        `Environment.${k}`,
        `is ${v.length} characters long, more than SageMaker's ${LIMITS.envValueMax}`,
        'Shorten it, or pass it through the run config (LIFTOFF_RUN_CONFIG is split to fit).',
      );
    }
  }
  const spec = req.AlgorithmSpecification;
  for (const [field, list] of [
    ['the entry point (ContainerEntrypoint)', spec?.ContainerEntrypoint],
    ['the arguments (ContainerArguments)', spec?.ContainerArguments],
  ] as const) {
    if (!list) continue;
    if (list.length > LIMITS.argItems) {
      refuse(
        field,
        `has ${list.length} items, more than SageMaker's ${LIMITS.argItems}`,
        'Pass fewer arguments, or put them into the run config.',
      );
    }
    list.forEach((a, i) => {
      if (a.length > LIMITS.argMax) {
        refuse(
          `${field} item ${i}`,
          `is ${a.length} characters long, more than SageMaker's ${LIMITS.argMax}`,
          'Shorten it, or pass it through the run config.',
        );
      }
      if (LINE_BREAK.test(a))
        refuse(`${field} item ${i}`, 'contains a line break', 'SageMaker accepts one line per argument.');
    });
  }
  const tags = req.Tags ?? [];
  if (tags.length > LIMITS.tags) {
    refuse(
      `${FIELD}.Tags`,
      `has ${tags.length} tags with Liftoff's two, more than SageMaker's ${LIMITS.tags}`,
      'Drop some tags.',
    );
  }
  for (const t of tags) {
    const key = t.Key ?? '';
    const value = t.Value ?? '';
    if (!key || key.length > LIMITS.tagKeyMax || !TAG_TEXT.test(key)) {
      refuse(
        `${FIELD}.Tags`,
        `has the invalid key "${key}" (1-128 letters, digits, spaces and _.:/=+-@)`,
        'Rename it.',
      );
    }
    if (value.length > LIMITS.tagValueMax || !TAG_TEXT.test(value)) {
      refuse(
        `${FIELD}.Tags.${key}`,
        'has an invalid value (at most 256 letters, digits, spaces and _.:/=+-@)',
        'Change it.',
      );
    }
  }
  const hp = Object.entries(req.HyperParameters ?? {});
  if (hp.length > LIMITS.hyperParameters) {
    refuse(
      `${FIELD}.HyperParameters`,
      `has ${hp.length} entries, more than SageMaker's ${LIMITS.hyperParameters}`,
      'Pass fewer, or use the run config.',
    );
  }
  for (const [k, v] of hp) {
    if (k.length > LIMITS.hyperParameterKeyMax || typeof v !== 'string' || v.length > LIMITS.hyperParameterValueMax) {
      refuse(
        `${FIELD}.HyperParameters.${k}`,
        'must be a string of at most 2500 characters under a key of at most 256',
        'Shorten it.',
      );
    }
  }
}
