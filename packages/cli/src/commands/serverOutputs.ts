import { ConfigInvalidError, type Env } from '@liftoff/core';
import { parseArtifactStore, type ArtifactStoreConfig, type ServerSettings } from '@liftoff/server';
import type { ServerFlags } from './server.js';

/**
 * The run-outputs flags of `liftoff server` / `liftoff up` (docs/outputs.md): the artifact store and the size
 * limits. S3 credentials come from this command's environment (AWS_ACCESS_KEY_ID, AWS_SECRET_ACCESS_KEY,
 * AWS_SESSION_TOKEN) and are handed to the store, which never reads the environment itself.
 */
export function outputOptions(
  flags: ServerFlags,
  env: Env,
): { artifactStore?: ArtifactStoreConfig; outputLimits?: ServerSettings['outputLimits'] } {
  const out: { artifactStore?: ArtifactStoreConfig; outputLimits?: ServerSettings['outputLimits'] } = {};
  const store = flags.artifactStore ?? (env.LIFTOFF_ARTIFACT_STORE || undefined);
  if (store !== undefined) {
    const id = env.AWS_ACCESS_KEY_ID;
    const secret = env.AWS_SECRET_ACCESS_KEY;
    out.artifactStore = parseArtifactStore(store, {
      ...(flags.artifactS3Endpoint ? { endpoint: flags.artifactS3Endpoint } : {}),
      ...(flags.artifactS3Region || env.AWS_REGION ? { region: flags.artifactS3Region || env.AWS_REGION } : {}),
      ...(id && secret
        ? {
            credentials: {
              accessKeyId: id,
              secretAccessKey: secret,
              ...(env.AWS_SESSION_TOKEN ? { sessionToken: env.AWS_SESSION_TOKEN } : {}),
            },
          }
        : {}),
    });
    if (out.artifactStore.kind === 's3' && !out.artifactStore.credentials)
      throw new ConfigInvalidError('--artifact-store s3://', [
        'the server needs S3 credentials: set AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY in its environment',
      ]);
  }
  const amount = (v: string | undefined, flag: string, unit: number) => {
    if (v === undefined) return undefined;
    const n = Number(v);
    if (!Number.isFinite(n) || n <= 0) throw new Error(`--${flag} must be a positive number, got "${v}"`);
    return Math.max(1, Math.round(n * unit));
  };
  const runBytes = amount(flags.maxRunOutputsMib, 'max-run-outputs-mib', 1024 ** 2);
  const entityBytes = amount(flags.maxEntityOutputsGib, 'max-entity-outputs-gib', 1024 ** 3);
  if (runBytes !== undefined || entityBytes !== undefined)
    out.outputLimits = {
      runBytes: runBytes ?? 10 * 1024 ** 3,
      runFiles: 10_000,
      entityBytes: entityBytes ?? 100 * 1024 ** 3,
    };
  return out;
}
