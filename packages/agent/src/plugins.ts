import { NotSupportedError, type AgentConfigFile } from '@liftoff/core';

/**
 * What this agent can build with, push to and authenticate against. Config keys naming anything else are valid W&B
 * Launch config but refused at start-up with a clear message, never silently ignored.
 */
export const SUPPORTED_BUILDERS: readonly string[] = ['docker', 'noop', 'kaniko', 'buildah'];
export const SUPPORTED_REGISTRIES: readonly string[] = ['ecr', 'gcr', 'acr'];
export const SUPPORTED_ENVIRONMENTS: readonly string[] = ['aws', 'gcp', 'azure'];

export function assertConfigSupported(file: AgentConfigFile, source: string): void {
  const problems: string[] = [];
  if (file.builder && !SUPPORTED_BUILDERS.includes(file.builder.type)) {
    problems.push(
      `builder type "${file.builder.type}" is not supported yet by this Liftoff version (supported: ${SUPPORTED_BUILDERS.join(', ')}); use docker (builds on the local engine), kaniko or buildah (a Kubernetes Job) or noop`,
    );
  }
  if (file.registry && !SUPPORTED_REGISTRIES.includes(file.registry.type)) {
    problems.push(
      `registry type "${file.registry.type}" is not supported yet by this Liftoff version; remove the "registry" key`,
    );
  }
  if (file.environment && !SUPPORTED_ENVIRONMENTS.includes(file.environment.type)) {
    problems.push(
      `environment type "${file.environment.type}" is not supported yet by this Liftoff version; remove the "environment" key`,
    );
  }
  if (problems.length) throw new NotSupportedError(`${source}: ${problems.join('; ')}.`);
}
