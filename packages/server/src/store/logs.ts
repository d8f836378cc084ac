import { sql, type Kysely } from 'kysely';
import { ConflictError, ForbiddenError, NotFoundError } from '@liftoff/core';
import type { Database } from './schema.js';

/** Run logs: chunks stored at byte offsets, so retried uploads are idempotent and gaps are refused. */
export class Logs {
  constructor(private readonly db: Kysely<Database>) {}

  /**
   * Appends a chunk at byte `offset`. A retried chunk (already stored at that offset) is accepted without storing it
   * twice; a chunk that would leave a gap is refused so the agent resends from the returned size.
   */
  async append(runId: string, agentId: string, offset: number, data: string): Promise<{ size: number }> {
    const size = Buffer.byteLength(data);
    return this.db.transaction().execute(async (trx) => {
      const run = await trx
        .selectFrom('runs')
        .select(['log_size', 'agent_id'])
        .where('id', '=', runId)
        .executeTakeFirst();
      if (!run) throw new NotFoundError(`Run "${runId}" not found.`);
      if (run.agent_id !== agentId) throw new ForbiddenError(`Run "${runId}" is held by another agent.`);
      const current = Number(run.log_size);
      if (offset + size <= current) return { size: current };
      if (offset !== current) {
        throw new ConflictError(
          `Log offset ${offset} does not match the stored size ${current}; resend from ${current}.`,
        );
      }
      await trx.insertInto('log_chunks').values({ run_id: runId, offset, size, data }).execute();
      await trx
        .updateTable('runs')
        .set({ log_size: current + size })
        .where('id', '=', runId)
        .execute();
      return { size: current + size };
    });
  }

  /** Reads stored log bytes from `offset`, up to about `maxBytes` (whole chunks). */
  async read(runId: string, offset: number, maxBytes = 1 << 20): Promise<{ data: string; next: number }> {
    const rows = await this.db
      .selectFrom('log_chunks')
      .select(['offset', 'size', 'data'])
      .where('run_id', '=', runId)
      .where(sql<boolean>`${sql.ref('offset')} + ${sql.ref('size')} > ${offset}`)
      .orderBy('offset')
      .limit(256)
      .execute();
    const parts: Buffer[] = [];
    let next = offset;
    let total = 0;
    for (const r of rows) {
      const start = Number(r.offset);
      let buf = Buffer.from(r.data);
      if (start < next) buf = buf.subarray(next - start);
      parts.push(buf);
      next = start + Number(r.size);
      total += buf.length;
      if (total >= maxBytes) break;
    }
    return { data: Buffer.concat(parts).toString('utf8'), next };
  }
}
