import { join } from 'node:path';
import type { Kysely } from 'kysely';
import { ArtifactStoreConfigError } from '@liftoff/core';
import type { DialectName } from '../store/database.js';
import type { Database } from '../store/schema.js';
import { DatabaseArtifactStore } from './database.js';
import { DataDirArtifactStore } from './datadir.js';
import { S3ArtifactStore } from './s3.js';
import type { ArtifactStore, ArtifactStoreConfig } from './types.js';

export type { ArtifactStore, ArtifactStoreConfig, ArtifactStoreKind } from './types.js';

/** AWS's bucket naming rules: 3–63 of a-z 0-9 . -, starting and ending with a letter or digit. */
const BUCKET = /^[a-z0-9][a-z0-9.-]{1,61}[a-z0-9]$/;

/**
 * `--artifact-store datadir|database|s3://bucket/prefix` with its S3 options. Credentials are passed in by the
 * caller (the CLI takes them from its environment), never read here.
 */
export function parseArtifactStore(
  value: string,
  s3: {
    endpoint?: string;
    region?: string;
    credentials?: { accessKeyId: string; secretAccessKey: string; sessionToken?: string };
  } = {},
): ArtifactStoreConfig {
  if (value === 'datadir' || value === 'database') return { kind: value };
  const m = /^s3:\/\/([^/]+)(?:\/(.*))?$/.exec(value);
  if (!m)
    throw new ArtifactStoreConfigError(
      `--artifact-store "${value}" is not a store: use datadir (one server), database or s3://BUCKET/PREFIX (replicas).`,
    );
  const bucket = m[1] ?? '';
  if (!BUCKET.test(bucket))
    throw new ArtifactStoreConfigError(
      `"${bucket}" is not an S3 bucket name: 3-63 lower-case letters, digits, "." or "-", starting and ending with a letter or digit.`,
    );
  let prefix = (m[2] ?? '').replace(/^\/+/, '');
  if (prefix && !prefix.endsWith('/')) prefix += '/';
  if (s3.endpoint !== undefined && !/^https?:\/\/[^/]+/.test(s3.endpoint))
    throw new ArtifactStoreConfigError(
      `--artifact-s3-endpoint "${s3.endpoint}" is not an http(s) URL; give the S3-compatible server's base URL, e.g. http://127.0.0.1:9000.`,
    );
  return {
    kind: 's3',
    bucket,
    prefix,
    region: s3.region ?? 'us-east-1',
    ...(s3.endpoint ? { endpoint: s3.endpoint } : {}),
    ...(s3.credentials ? { credentials: s3.credentials } : {}),
  };
}

/**
 * The store a server uses. Unset: the data dir on SQLite (one process), the database on PostgreSQL (where replicas
 * may share the database but never a data dir). A data-dir store on PostgreSQL is refused: a file uploaded through
 * one replica could not be downloaded through another.
 */
export function openArtifactStore(
  config: ArtifactStoreConfig | undefined,
  deps: { dataDir: string; db: Kysely<Database>; dialect: DialectName },
): ArtifactStore {
  const c: ArtifactStoreConfig = config ?? { kind: deps.dialect === 'postgres' ? 'database' : 'datadir' };
  if (c.kind === 'datadir') {
    if (deps.dialect === 'postgres')
      throw new ArtifactStoreConfigError(
        "The datadir artifact store keeps outputs on this server's disk, which replicas on one PostgreSQL do not share: use --artifact-store database (outputs in PostgreSQL) or --artifact-store s3://BUCKET/PREFIX (an S3-compatible bucket, with --artifact-s3-endpoint for one that is not AWS).",
      );
    return new DataDirArtifactStore(join(deps.dataDir, 'artifacts'));
  }
  if (c.kind === 'database') return new DatabaseArtifactStore(deps.db);
  return new S3ArtifactStore(c);
}
