import type { Kysely } from 'kysely';
import type { Db } from './db.js';
import type { Database } from './schema.js';

export interface UploadTokenRow {
  run_id: string;
  agent_id: string;
  expires_at: number;
}

/**
 * Per-run upload tokens (migration 0018; docs/outputs.md, Kubernetes): the sha256 of each token with its run, the
 * agent that asked for it and its expiry. A token counts only while its run is live: every path that ends a run
 * drops the run's tokens in the same transaction (dropUploadTokensIn), and the routes check the run's state on use
 * as well, so a path that ended a run without dropping them still leaves them useless.
 */
export class UploadTokens {
  constructor(private readonly db: Kysely<Database>) {}

  async create(row: UploadTokenRow & { token_hash: string; created_at: number }): Promise<void> {
    await this.db.insertInto('run_upload_tokens').values(row).execute();
  }

  async find(tokenHash: string): Promise<UploadTokenRow | undefined> {
    const r = await this.db
      .selectFrom('run_upload_tokens')
      .select(['run_id', 'agent_id', 'expires_at'])
      .where('token_hash', '=', tokenHash)
      .executeTakeFirst();
    return r && { run_id: r.run_id, agent_id: r.agent_id, expires_at: Number(r.expires_at) };
  }

  /** Revokes every token of the run; returns how many there were. */
  async revoke(runId: string): Promise<number> {
    const r = await this.db.deleteFrom('run_upload_tokens').where('run_id', '=', runId).executeTakeFirst();
    return Number(r.numDeletedRows);
  }
}

/** Drops the upload tokens of runs that end (or are deleted) in the caller's transaction. */
export async function dropUploadTokensIn(trx: Db, runIds: readonly string[]): Promise<void> {
  if (runIds.length)
    await trx
      .deleteFrom('run_upload_tokens')
      .where('run_id', 'in', [...runIds])
      .execute();
}
