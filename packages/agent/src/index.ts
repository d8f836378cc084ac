export { LaunchAgent, type AgentOptions } from './agent.js';
export {
  resolveAgentConfig,
  parseMaxJobs,
  DEFAULT_STOP_GRACE_SECONDS,
  type AgentFlags,
  type ResolvedAgentConfig,
} from './config.js';
export { assertConfigSupported, SUPPORTED_BUILDERS, SUPPORTED_ENVIRONMENTS, SUPPORTED_REGISTRIES } from './plugins.js';
export { agentIdentity } from './identity.js';
export { RUNNERS, type Runner, type RunHandle, type RunOutcome, type JobContext } from './runners/index.js';
export { dockerServices } from './docker/services.js';
export { awsClientSettings, awsClientConfig, endpointsFrom } from './environments/aws/settings.js';
export type { AwsClientSettings, AwsService } from './environments/types.js';
export { gcpClientSettings } from './environments/gcp/settings.js';
export type { GcpClientSettings, GcpService } from './environments/types.js';
export { azureClientSettings } from './environments/azure/settings.js';
export type { AzureClientSettings, AzureService } from './environments/types.js';
export { RegistryCredentials } from './docker/credentials.js';
export { generateDockerfile } from './builders/dockerfile.js';
export { jobEnvironment, agentToolEnvironment, type JobEnvInput, type JobPlace } from './jobEnv.js';
export { wandbEnvironment, WANDB_CONFIG_CHUNK, type WandbEnvInput } from './jobEnv.js';
export { detectUserSwitching, DEFAULT_DYNAMIC_RANGE, type UserSwitching, type JobIdentity } from './jobUsers.js';
