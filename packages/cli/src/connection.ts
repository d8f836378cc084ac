import { readFileSync } from 'node:fs';
import type { LiftoffClient } from '@liftoff/core';
import { ConfigInvalidError, UnauthenticatedError, credentialsPath, type Env } from '@liftoff/core/base';

export interface ConnectionOptions {
  url?: string;
  /** PEM file of a CA to trust for an https server (besides the system's). */
  caFile?: string;
}

/**
 * Server URL and key: --url, then LIFTOFF_BASE_URL / LIFTOFF_API_KEY, then ~/.config/liftoff/credentials. A CA
 * file: --ca-file, then LIFTOFF_CA_FILE, then the credentials file's `ca_file`. The client (and with it the API
 * schemas) loads here, when a command first talks to a server, not when the CLI starts: `liftoff --help` and the
 * usage errors stay as quick as commander alone.
 */
export async function connect(opts: ConnectionOptions, env: Env): Promise<LiftoffClient> {
  const { LiftoffClient } = await import('@liftoff/core/client');
  let baseUrl = opts.url ?? env.LIFTOFF_BASE_URL;
  let apiKey = env.LIFTOFF_API_KEY;
  let caFile = opts.caFile ?? (env.LIFTOFF_CA_FILE || undefined);
  // The credentials file (YAML, and its parser) is read only for what the flags and the environment leave out; its
  // CA file matters only to an https server.
  if (!baseUrl || !apiKey || (caFile === undefined && !baseUrl.startsWith('http://'))) {
    const creds = (await import('@liftoff/core/credentials')).readCredentials(credentialsPath(env));
    baseUrl ??= creds?.url;
    apiKey ??= creds?.api_key;
    caFile ??= creds?.ca_file;
  }
  if (!baseUrl || !apiKey) {
    throw new UnauthenticatedError(
      `No server credentials: set LIFTOFF_BASE_URL and LIFTOFF_API_KEY, or start "liftoff server" once on this machine to create ${credentialsPath(env)}.`,
    );
  }
  return new LiftoffClient({ baseUrl, apiKey, ca: caFile === undefined ? undefined : readCaFile(caFile) });
}

export function readCaFile(path: string): string {
  let text: string;
  try {
    text = readFileSync(path, 'utf8');
  } catch (e) {
    throw new ConfigInvalidError(`CA file ${path}`, [
      `cannot be read (${(e as NodeJS.ErrnoException).code ?? String(e)}); give the PEM file of the CA that signed the server's certificate`,
    ]);
  }
  if (!text.includes('-----BEGIN CERTIFICATE-----'))
    throw new ConfigInvalidError(`CA file ${path}`, ['holds no PEM certificate ("-----BEGIN CERTIFICATE-----")']);
  return text;
}
