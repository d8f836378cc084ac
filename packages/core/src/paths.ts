import { homedir } from 'node:os';
import { join } from 'node:path';

/** Process environment as handed in by the entry point; libraries never read `process.env` themselves. */
export type Env = Readonly<Record<string, string | undefined>>;

export const DEFAULT_PORT = 7450;
export const DEFAULT_HOST = '127.0.0.1';

export function configDir(env: Env): string {
  return join(env.XDG_CONFIG_HOME || join(env.HOME || homedir(), '.config'), 'liftoff');
}
export function defaultDataDir(env: Env): string {
  return join(env.XDG_DATA_HOME || join(env.HOME || homedir(), '.local', 'share'), 'liftoff');
}
export const credentialsPath = (env: Env): string => join(configDir(env), 'credentials');
export const defaultAgentConfigPath = (env: Env): string => join(configDir(env), 'launch-config.yaml');
