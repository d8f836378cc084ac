import type { Readable } from 'node:stream';

/**
 * Where run outputs' bytes live (docs/outputs.md). Uploads arrive in chunks of at most `chunkBytes`: each is put
 * under its own key once it is whole and only then recorded in the database (store/outputs.ts), so an interrupted
 * upload resumes from the last recorded chunk and a download reads a file's chunks in order. The store knows keys and
 * bytes only; which keys make up which file, and what is listed, is the database's.
 *
 * Keys are `<run id>/<upload id>/<chunk seq>`, made of ids the server generated (never a name a job chose).
 */
export interface ArtifactStore {
  readonly kind: ArtifactStoreKind;
  /** Largest chunk handed to put(): the one piece of an upload held in memory at a time. */
  readonly chunkBytes: number;
  /** Stores `data` under `key`, replacing what was there; when it resolves, get(key) returns exactly these bytes. */
  put(key: string, data: Buffer): Promise<void>;
  /** The bytes under `key`, streamed. */
  get(key: string): Promise<Readable>;
  /** Removes the keys; unknown keys are no error. */
  delete(keys: readonly string[]): Promise<void>;
  close(): Promise<void>;
}

export type ArtifactStoreKind = 'datadir' | 'database' | 's3';

/** The `--artifact-store` setting, parsed (artifacts/index.ts). */
export type ArtifactStoreConfig =
  | { kind: 'datadir' }
  | { kind: 'database' }
  | {
      kind: 's3';
      bucket: string;
      /** Key prefix, "" or ending in "/". */
      prefix: string;
      /** An S3-compatible endpoint (MinIO, moto, a VPC endpoint); buckets are then addressed by path. */
      endpoint?: string;
      region: string;
      /** Static credentials from the server's configuration (the CLI reads them from its environment). */
      credentials?: { accessKeyId: string; secretAccessKey: string; sessionToken?: string };
    };
