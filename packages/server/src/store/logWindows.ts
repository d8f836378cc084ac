import { sql, type Kysely } from 'kysely';
import type { LogKind } from '@liftoff/core';
import type { Database } from './schema.js';
import { countNewlines } from './logs.js';

/** One stored chunk of a run's log. */
export interface StoredChunk {
  offset: number;
  size: number;
  data: Buffer;
  kind: LogKind;
}

/** A window of a run's log (byte range, whole UTF-8 characters), with where it sits in lines. */
export interface LogWindow {
  /** First byte of the window. */
  offset: number;
  /** The byte after its last one. */
  next: number;
  /** 1-based number of the line the window's first byte is on. */
  line: number;
  data: string;
  /** Byte ranges (absolute offsets) of the window that are the agent's notes. */
  notes: Array<{ offset: number; size: number }>;
}

/** Rows read per query while walking a log (a stored chunk is at most one upload: 1 MiB by default). */
const CHUNK_BATCH = 64;

/**
 * Random access into a run's stored log for the log viewer: byte windows, line numbers and "where does line N
 * start", without reading the log from its start. Line numbers are sums of the per-chunk line-break counts
 * (migration 0020), read through the (run_id, offset, newlines) index; only the one chunk holding the position is
 * read for its bytes.
 */
export class LogWindows {
  constructor(private readonly db: Kysely<Database>) {}

  /** The stored size of the log: the end of its last chunk (0 when empty). */
  async size(runId: string): Promise<number> {
    const last = await this.db
      .selectFrom('log_chunks')
      .select(['offset', 'size'])
      .where('run_id', '=', runId)
      .orderBy('offset', 'desc')
      .limit(1)
      .executeTakeFirst();
    return last ? Number(last.offset) + Number(last.size) : 0;
  }

  /**
   * The chunks that overlap [from, to), in order, at most `maxRows`. The first is found by seeking to the last
   * chunk starting at or before `from`, so the cost does not grow with how far into the log `from` is.
   */
  async chunks(runId: string, from: number, to: number, maxRows = CHUNK_BATCH): Promise<StoredChunk[]> {
    const first = await this.db
      .selectFrom('log_chunks')
      .select('offset')
      .where('run_id', '=', runId)
      .where('offset', '<=', from)
      .orderBy('offset', 'desc')
      .limit(1)
      .executeTakeFirst();
    const rows = await this.db
      .selectFrom('log_chunks')
      .select(['offset', 'size', 'data', 'kind'])
      .where('run_id', '=', runId)
      .where('offset', '>=', first ? Number(first.offset) : 0)
      .where('offset', '<', to)
      .orderBy('offset')
      .limit(maxRows)
      .execute();
    return rows
      .map((r) => ({
        offset: Number(r.offset),
        size: Number(r.size),
        data: Buffer.from(r.data),
        kind: r.kind as LogKind,
      }))
      .filter((c) => c.offset + c.size > from);
  }

  /** The bytes [from, to) of the log joined (fewer when the log ends first), with the chunks they came from. */
  async bytes(runId: string, from: number, to: number): Promise<{ bytes: Buffer; chunks: StoredChunk[] }> {
    const parts: Buffer[] = [];
    const all: StoredChunk[] = [];
    let at = from;
    while (at < to) {
      const chunks = await this.chunks(runId, at, to);
      if (!chunks.length) break;
      for (const c of chunks) {
        all.push(c);
        parts.push(c.data.subarray(Math.max(0, at - c.offset), Math.min(c.size, to - c.offset)));
        at = c.offset + c.size;
      }
    }
    return { bytes: Buffer.concat(parts), chunks: all };
  }

  /** Counts the line breaks of the run's chunks written before migration 0020 (once; later reads find them). */
  private async fillNewlines(runId: string): Promise<void> {
    for (;;) {
      const rows = await this.db
        .selectFrom('log_chunks')
        .select(['offset', 'data'])
        .where('run_id', '=', runId)
        .where('newlines', 'is', null)
        .orderBy('offset')
        .limit(CHUNK_BATCH)
        .execute();
      if (!rows.length) return;
      for (const r of rows)
        await this.db
          .updateTable('log_chunks')
          .set({ newlines: countNewlines(Buffer.from(r.data)) })
          .where('run_id', '=', runId)
          .where('offset', '=', r.offset)
          .execute();
    }
  }

  /** The line breaks in bytes [0, offset) of the log. */
  async newlinesBefore(runId: string, offset: number): Promise<number> {
    if (offset <= 0) return 0;
    await this.fillNewlines(runId);
    const [holder] = await this.chunks(runId, offset - 1, offset, 1);
    const before = holder ? holder.offset : offset;
    const sum = await this.db
      .selectFrom('log_chunks')
      .select(sql<string | number | null>`SUM(newlines)`.as('n'))
      .where('run_id', '=', runId)
      .where('offset', '<', before)
      .executeTakeFirst();
    const partial = holder ? countNewlines(holder.data.subarray(0, offset - holder.offset)) : 0;
    return Number(sum?.n ?? 0) + partial;
  }

  /** The log's line count: its line breaks, plus one for a last line without one. */
  async lineCount(runId: string, size: number): Promise<number> {
    if (size === 0) return 0;
    const breaks = await this.newlinesBefore(runId, size);
    const [last] = await this.chunks(runId, size - 1, size, 1);
    return breaks + (last && last.data[size - 1 - last.offset] === 10 ? 0 : 1);
  }

  /**
   * The byte offset line `line` (1-based) starts at; null past the log's last line. Walks the per-chunk counts
   * (index only, in batches) to the chunk holding that line's start, then reads that one chunk.
   */
  async offsetOfLine(runId: string, line: number): Promise<number | null> {
    if (line <= 1) return 0;
    await this.fillNewlines(runId);
    let want = line - 1; // line breaks to pass
    let after = -1;
    for (;;) {
      const rows = await this.db
        .selectFrom('log_chunks')
        .select(['offset', 'size', 'newlines'])
        .where('run_id', '=', runId)
        .where('offset', '>', after)
        .orderBy('offset')
        .limit(1024)
        .execute();
      if (!rows.length) return null;
      for (const r of rows) {
        const n = Number(r.newlines ?? 0);
        if (n >= want) {
          const [chunk] = await this.chunks(runId, Number(r.offset), Number(r.offset) + 1, 1);
          if (!chunk) return null;
          let at = -1;
          for (let k = 0; k < want; k++) at = chunk.data.indexOf(10, at + 1);
          const start = chunk.offset + at + 1;
          return start < (await this.size(runId)) ? start : null;
        }
        want -= n;
        after = Number(r.offset);
      }
    }
  }

  /**
   * The window of at most `limit` bytes from `offset`, moved onto whole characters: its start forward past a
   * character's continuation bytes, its end back to just after the window's last line break (or, when the window
   * holds none, to the end of its last whole character). It always holds at least one character when any byte
   * is left, so paging by `next` always moves on.
   */
  async window(runId: string, offset: number, limit: number): Promise<LogWindow> {
    // Up to 3 bytes more on each side: enough to move the start past a character and to finish one at the end.
    const { bytes, chunks } = await this.bytes(runId, offset, offset + limit + 3);
    let start = 0;
    while (start < Math.min(3, bytes.length) && isContinuation(bytes[start])) start++;
    let end = Math.min(bytes.length, start + limit);
    if (end < bytes.length) {
      const lastBreak = bytes.lastIndexOf(10, end - 1);
      if (lastBreak >= start) end = lastBreak + 1;
      else {
        let cut = end;
        while (cut > start && isContinuation(bytes[cut])) cut--;
        if (cut === start) {
          cut = end;
          while (cut < bytes.length && isContinuation(bytes[cut])) cut++;
        }
        end = cut;
      }
    }
    const from = offset + start;
    const to = offset + end;
    const notes: LogWindow['notes'] = [];
    for (const c of chunks) {
      if (c.kind !== 'note') continue;
      const a = Math.max(from, c.offset);
      const b = Math.min(to, c.offset + c.size);
      if (b <= a) continue;
      const prev = notes.at(-1);
      if (prev && prev.offset + prev.size === a) prev.size += b - a;
      else notes.push({ offset: a, size: b - a });
    }
    return {
      offset: from,
      next: to,
      line: (await this.newlinesBefore(runId, from)) + 1,
      data: bytes.subarray(start, end).toString('utf8'),
      notes,
    };
  }
}

/** A UTF-8 continuation byte (10xxxxxx): not the start of a character. */
function isContinuation(b: number | undefined): boolean {
  return b !== undefined && (b & 0xc0) === 0x80;
}
