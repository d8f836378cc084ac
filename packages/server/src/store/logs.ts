import { sql, type Kysely } from 'kysely';
import { ConflictError, ForbiddenError, RunLostError, type LogKind } from '@liftoff/core';
import type { DialectName } from './database.js';
import type { Db } from './db.js';
import { runNotFound } from './runs.js';
import type { Database } from './schema.js';
import type { Metrics } from './metrics.js';
import { scanMetricLines } from '../metricLines.js';

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
  constructor(
    private readonly db: Kysely<Database>,
    private readonly metrics: Metrics,
    private readonly dialect: DialectName,
  ) {}

  /**
   * Appends a chunk at byte `offset` of the agent-facing log (`runs.log_received`). A retried chunk (already
   * accepted at that offset) is accepted without storing it twice; a chunk that would leave a gap is refused so the
   * agent resends from the returned size. At most `cap` bytes are stored (the server's cap, or the run's queue's
   * when lower): the chunk that crosses it is cut there and followed by one truncation note, and every later chunk
   * is answered as accepted (so the agent moves on) without storing anything. Past the cap offsets are not checked:
   * nothing is stored that a gap or a repeat could corrupt, and a refusal there could only wedge the agent.
   *
   * The new bytes of the job's output (never notes, never a retried chunk's bytes again) are scanned for metric
   * lines in the same transaction, before the cap decides what is kept: metrics printed past the cap still count.
   *
   * A run of an entity the caller may not see (`visible`) is "not found", as an unknown one, checked on the row read
   * here. On PostgreSQL the common append is three statements between BEGIN and COMMIT (the run read and locked, the
   * chunk and the run's sizes written together): each is a round trip, and appends are most of what the server does
   * for a job that prints little.
   */
  async append(
    runId: string,
    agentId: string,
    offset: number,
    data: string,
    kind: LogKind,
    serverCap: number,
    now: number,
    visible: (entityId: string) => boolean = () => true,
  ): Promise<{ size: number }> {
    return this.db
      .transaction()
      .execute((trx) => this.appendIn(trx, runId, agentId, offset, data, kind, serverCap, now, visible));
  }

  /**
   * `append` inside the caller's transaction (a sync's, store/sync.ts). Every refusal (not found, another agent's,
   * lost, a wrong offset) is thrown before this append writes anything, so a caller may answer it as this entry's
   * alone and still commit the rest of its transaction.
   */
  async appendIn(
    trx: Db,
    runId: string,
    agentId: string,
    offset: number,
    data: string,
    kind: LogKind,
    serverCap: number,
    now: number,
    visible: (entityId: string) => boolean = () => true,
  ): Promise<{ size: number }> {
    const bytes = Buffer.from(data, 'utf8');
    const size = bytes.length;
    const postgres = this.dialect === 'postgres';
    // SQLite: the write makes this transaction the writer before it reads (one writer at a time). PostgreSQL: the
    // read below locks the row itself; NO KEY, so the chunk's foreign key to the run does not wait on it.
    if (!postgres) await lockRun(trx, runId);
    const read = trx
      .selectFrom('runs')
      .innerJoin('queues', 'queues.id', 'runs.queue_id')
      .select([
        'queues.entity_id',
        'runs.log_size',
        'runs.log_received',
        'runs.log_dropped',
        'runs.log_cap_note_at',
        'runs.agent_id',
        'runs.status',
        'runs.metric_carry',
        'runs.metric_lines',
        'runs.metric_seq',
        'runs.metric_refused',
        'queues.max_log_bytes',
      ])
      .where('runs.id', '=', runId);
    const run = await (postgres ? read.modifyEnd(sql`FOR NO KEY UPDATE OF runs`) : read).executeTakeFirst();
    if (!run || !visible(run.entity_id)) throw runNotFound(runId);
    if (run.agent_id !== agentId) throw new ForbiddenError(`Run "${runId}" is held by another agent.`);
    if (run.status === 'lost') throw new RunLostError(runId);
    const stored = Number(run.log_size);
    const received = Number(run.log_received);
    const end = offset + size;
    if (end <= received) return { size: received };
    if (kind === 'output' && (offset === received || run.log_cap_note_at !== null))
      await this.scanMetrics(trx, runId, run, offset < received ? bytes.subarray(received - offset) : bytes, now);
    if (run.log_cap_note_at !== null) {
      const dropped = Number(run.log_dropped) + end - Math.max(offset, received);
      await trx.updateTable('runs').set({ log_received: end, log_dropped: dropped }).where('id', '=', runId).execute();
      const noteAt = Number(run.log_cap_note_at);
      const note = await trx
        .selectFrom('log_chunks')
        .select('data')
        .where('run_id', '=', runId)
        .where('offset', '=', noteAt)
        .executeTakeFirst();
      if (note)
        await trx
          .updateTable('log_chunks')
          .set({ data: withDropped(Buffer.from(note.data), dropped) })
          .where('run_id', '=', runId)
          .where('offset', '=', noteAt)
          .execute();
      return { size: end };
    }
    if (offset !== received) {
      throw new ConflictError(
        `Log offset ${offset} does not match the stored size ${received}; resend from ${received}.`,
      );
    }
    const cap = Math.min(serverCap, run.max_log_bytes === null ? Infinity : Number(run.max_log_bytes));
    if (stored + size <= cap) {
      const chunk = { run_id: runId, offset: stored, size, data: bytes, kind, newlines: countNewlines(bytes) };
      const sizes = { log_size: stored + size, log_received: end };
      if (postgres)
        await trx
          .with('chunk', (db) => db.insertInto('log_chunks').values(chunk).returning('offset'))
          .updateTable('runs')
          .set(sizes)
          .where('id', '=', runId)
          .execute();
      else {
        await trx.insertInto('log_chunks').values(chunk).execute();
        await trx.updateTable('runs').set(sizes).where('id', '=', runId).execute();
      }
      return { size: end };
    }
    const keep = utf8Prefix(bytes, Math.max(0, cap - stored));
    if (keep > 0)
      await trx
        .insertInto('log_chunks')
        .values({
          run_id: runId,
          offset: stored,
          size: keep,
          data: bytes.subarray(0, keep),
          kind,
          newlines: countNewlines(bytes.subarray(0, keep)),
        })
        .execute();
    const noteAt = stored + keep;
    const note = capNote(cap, size - keep);
    await trx
      .insertInto('log_chunks')
      .values({
        run_id: runId,
        offset: noteAt,
        size: note.length,
        data: note,
        kind: 'note',
        newlines: countNewlines(note),
      })
      .execute();
    await trx
      .updateTable('runs')
      .set({ log_size: noteAt + note.length, log_received: end, log_dropped: size - keep, log_cap_note_at: noteAt })
      .where('id', '=', runId)
      .execute();
    return { size: end };
  }

  /** Parses the metric lines of a run's new output (metricLines.ts) and stores them with the run's scan state. */
  private async scanMetrics(
    trx: Db,
    runId: string,
    run: { metric_carry: string | null; metric_lines: number; metric_seq: number; metric_refused: number },
    fresh: Buffer,
    now: number,
  ): Promise<void> {
    const scan = scanMetricLines(run.metric_carry, fresh.toString('utf8'));
    if (!scan.lines.length && !scan.refused && scan.carry === run.metric_carry) return;
    const counters = {
      lines: Number(run.metric_lines),
      seq: Number(run.metric_seq),
      refused: Number(run.metric_refused) + scan.refused,
    };
    if (scan.lines.length) await this.metrics.ingest(trx, runId, scan.lines, counters, now);
    await trx
      .updateTable('runs')
      .set({
        metric_carry: scan.carry,
        metric_lines: counters.lines,
        metric_seq: counters.seq,
        metric_refused: counters.refused,
      })
      .where('id', '=', runId)
      .execute();
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

/**
 * Takes the run's row lock (PostgreSQL; SQLite runs one transaction at a time anyway) with a no-op UPDATE, so what
 * the caller reads next stays true until it commits: two uploads at one offset, or an upload and the reaper declaring
 * the run lost, then happen one after the other instead of interleaving.
 */
export async function lockRun(db: Db, runId: string): Promise<void> {
  await db
    .updateTable('runs')
    .set((eb) => ({ log_size: eb.ref('log_size') }))
    .where('id', '=', runId)
    .execute();
}

/** The line breaks (0x0A bytes) in `bytes`. */
export function countNewlines(bytes: Uint8Array): number {
  const buf = Buffer.from(bytes.buffer, bytes.byteOffset, bytes.byteLength);
  let n = 0;
  for (let i = buf.indexOf(10); i >= 0; i = buf.indexOf(10, i + 1)) n++;
  return n;
}

/** The longest prefix of `bytes` of at most `max` bytes that does not cut a UTF-8 character in two. */
function utf8Prefix(bytes: Buffer, max: number): number {
  let n = Math.min(max, bytes.length);
  // A continuation byte (10xxxxxx) right after the cut means the cut splits a character: back off to its start.
  while (n > 0 && n < bytes.length && ((bytes[n] as number) & 0xc0) === 0x80) n--;
  return n;
}

const DROPPED_LABEL = 'bytes dropped since: ';
/** 2^53 has 16 digits: the count's fixed width. */
const DROPPED_WIDTH = 16;

/**
 * The one truncation note of a capped log. Its count of dropped bytes is rewritten in place as more are dropped
 * (withDropped), padded to a fixed width so the note never changes size and no stored offset moves.
 */
export function capNote(cap: number, dropped: number): Buffer {
  const mib = cap % (1 << 20) === 0 ? ` (${cap / (1 << 20)} MiB)` : '';
  return Buffer.from(
    `[liftoff] log truncated: this run stores at most ${cap} bytes${mib} of log; ${DROPPED_LABEL}${String(dropped).padStart(DROPPED_WIDTH)}. Raise the cap with "liftoff server --max-run-log-mib" (LIFTOFF_MAX_RUN_LOG_MIB) or the queue's "--max-log-bytes".\n`,
    'utf8',
  );
}

/** The stored note with its count replaced (the cap it names stays the one in force when it was written). */
function withDropped(note: Buffer, dropped: number): Buffer {
  const at = note.indexOf(DROPPED_LABEL);
  if (at >= 0) note.write(String(dropped).padStart(DROPPED_WIDTH), at + DROPPED_LABEL.length, 'utf8');
  return note;
}
