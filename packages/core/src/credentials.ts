import { mkdirSync, readFileSync, writeFileSync, chmodSync } from 'node:fs';
import { dirname } from 'node:path';
import { parse as parseYaml, stringify as stringifyYaml } from 'yaml';
import { z } from 'zod';
import { ConfigInvalidError } from './errors.js';

/** `~/.config/liftoff/credentials`: where the CLI and agents find the server and their key by default. */
export const Credentials = z.object({
  url: z.string().url(),
  api_key: z.string().min(1),
  /** A PEM file of the CA that signed an https server's certificate (see ClientOptions.ca). */
  ca_file: z.string().min(1).optional(),
});
export type Credentials = z.infer<typeof Credentials>;

export function readCredentials(path: string): Credentials | undefined {
  let text: string;
  try {
    text = readFileSync(path, 'utf8');
  } catch {
    return undefined;
  }
  const parsed = Credentials.safeParse(parseYaml(text));
  if (!parsed.success) {
    throw new ConfigInvalidError(path, [
      'it must hold "url" and "api_key"; delete it and restart the server to recreate it',
    ]);
  }
  return parsed.data;
}

export function writeCredentials(path: string, creds: Credentials): void {
  mkdirSync(dirname(path), { recursive: true, mode: 0o700 });
  // A directory that existed before keeps its mode otherwise; job users must not even list it.
  chmodSync(dirname(path), 0o700);
  const body = `# Written by "liftoff server" on first start. Keep it secret: the key is an admin key.\n${stringifyYaml(creds)}`;
  writeFileSync(path, body, { mode: 0o600 });
  chmodSync(path, 0o600);
}
