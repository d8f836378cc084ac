import { LiftoffClient, UnauthenticatedError, credentialsPath, readCredentials, type Env } from '@liftoff/core';

export interface ConnectionOptions {
  url?: string;
}

/** Server URL and key: --url, then LIFTOFF_BASE_URL / LIFTOFF_API_KEY, then ~/.config/liftoff/credentials. */
export function connect(opts: ConnectionOptions, env: Env): LiftoffClient {
  const creds = readCredentials(credentialsPath(env));
  const baseUrl = opts.url ?? env.LIFTOFF_BASE_URL ?? creds?.url;
  const apiKey = env.LIFTOFF_API_KEY ?? creds?.api_key;
  if (!baseUrl || !apiKey) {
    throw new UnauthenticatedError(
      `No server credentials: set LIFTOFF_BASE_URL and LIFTOFF_API_KEY, or start "liftoff server" once on this machine to create ${credentialsPath(env)}.`,
    );
  }
  return new LiftoffClient({ baseUrl, apiKey });
}
