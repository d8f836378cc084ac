import { sql, type Kysely } from 'kysely';
import { ConflictError, ForbiddenError, NotFoundError, type LogKind } from '@liftoff/core';
import type { Database } from './schema.js';

/** A stretch of one kind of log bytes, at its absolute byte offset. */
export interface LogSegment {
  kind: LogKind;
  offset: number;
  text: string;
}

/**
 * Run logs: chunks stored at byte offsets, so retried uploads are idempotent and gaps are refused. Each chunk is the
 * job's output or the agent's notes; readers get both in order and know which is which.
 */
export class Logs {
  constructor(private readonly db: Kysely<Database>) {}

  /**
   * Appends a chunk at byte `offset`. A retried chunk (already stored at that offset) is accepted without storing it
   * twice; a chunk that would leave a gap is refused so the agent resends from the returned size.
   */
  async append(
    runId: string,
    agentId: string,
    offset: number,
    data: string,
    kind: LogKind = 'output',
  ): Promise<{ size: number }> {
    const bytes = Buffer.from(data, 'utf8');
    const size = bytes.length;
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
      await trx.insertInto('log_chunks').values({ run_id: runId, offset, size, data: bytes, kind }).execute();
      await trx
        .updateTable('runs')
        .set({ log_size: current + size })
        .where('id', '=', runId)
        .execute();
      return { size: current + size };
    });
  }

  /**
   * Reads stored log bytes from `offset`, up to about `maxBytes` (whole chunks), as one text and as segments of one
   * kind each (adjacent chunks of a kind joined).
   */
  async read(
    runId: string,
    offset: number,
    maxBytes = 1 << 20,
  ): Promise<{ data: string; next: number; segments: LogSegment[] }> {
    const rows = await this.db
      .selectFrom('log_chunks')
      .select(['offset', 'size', 'data', 'kind'])
      .where('run_id', '=', runId)
      .where(sql<boolean>`${sql.ref('offset')} + ${sql.ref('size')} > ${offset}`)
      .orderBy('offset')
      .limit(256)
      .execute();
    const segments: LogSegment[] = [];
    let next = offset;
    let total = 0;
    for (const r of rows) {
      const start = Number(r.offset);
      let buf = Buffer.from(r.data);
      if (start < next) buf = buf.subarray(next - start);
      const kind = r.kind as LogKind;
      const last = segments.at(-1);
      if (last?.kind === kind) last.text += buf.toString('utf8');
      else segments.push({ kind, offset: Math.max(start, next), text: buf.toString('utf8') });
      next = start + Number(r.size);
      total += buf.length;
      if (total >= maxBytes) break;
    }
    return { data: segments.map((s) => s.text).join(''), next, segments };
  }
}
