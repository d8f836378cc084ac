import { createHash, randomBytes } from 'node:crypto';
import { mkdirSync, readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';

/**
 * An agent's id must survive restarts so that a restarted agent can reconcile the runs it held. `--name` gives it
 * directly; otherwise the host, entity, queues and config file pick a slot in the data dir that keeps a generated id.
 */
export function agentIdentity(opts: {
  name?: string;
  hostname: string;
  entity: string;
  queues: string[];
  configPath?: string;
  dataDir: string;
}): { id: string; name: string } {
  if (opts.name) return { id: slug(opts.name), name: opts.name };
  const key = createHash('sha256')
    .update(JSON.stringify([opts.hostname, opts.entity, [...opts.queues].sort(), opts.configPath ?? '']))
    .digest('hex')
    .slice(0, 16);
  const dir = join(opts.dataDir, 'agents');
  const file = join(dir, `${key}.id`);
  try {
    const id = readFileSync(file, 'utf8').trim();
    if (id) return { id, name: id };
  } catch {
    // First start with this configuration.
  }
  const id = `${slug(opts.hostname).slice(0, 40)}-${randomBytes(4).toString('hex')}`;
  mkdirSync(dir, { recursive: true });
  writeFileSync(file, `${id}\n`);
  return { id, name: id };
}

const slug = (s: string): string =>
  s
    .replace(/[^A-Za-z0-9._-]+/g, '-')
    .replace(/^-+|-+$/g, '')
    .slice(0, 128) || 'agent';
