import { randomBytes } from 'node:crypto';
import type { Kysely } from 'kysely';
import { v7 as uuidv7 } from 'uuid';
import { NotFoundError, OutputUploadConflictError, OutputsTooLargeError, type RunOutput } from '@liftoff/core';
import type { Database } from './schema.js';

/** Per-run and per-entity caps on stored outputs (ServerSettings.outputLimits). */
export interface OutputLimits {
  runBytes: number;
  runFiles: number;
  entityBytes: number;
}

export interface OutputRow {
  id: string;
  run_id: string;
  path: string;
  size: number;
  sha256: string;
  received: number;
  state: 'uploading' | 'committed';
}

/**
 * A fresh artifact-store key for a chunk of an output: server-made ids only (artifacts/types.ts), and a random part,
 * so two writers of one chunk (a retried request racing the original) never write under the same key: the one whose
 * record loses leaves an orphan it deletes, never bytes under the winner's key.
 */
export const chunkKey = (runId: string, outputId: string, seq: number): string =>
  `${runId}/${outputId}/${seq}-${randomBytes(8).toString('hex')}`;

const toRow = (r: Record<string, unknown>): OutputRow => ({
  id: r.id as string,
  run_id: r.run_id as string,
  path: r.path as string,
  size: Number(r.size),
  sha256: r.sha256 as string,
  received: Number(r.received),
  state: r.state as OutputRow['state'],
});

/**
 * Records of run outputs (migration 0014). The bytes are the artifact store's; this keeps which chunks make up which
 * file, how much of each arrived, and what is listed. Nothing is listed until the run's one commit, which flips all
 * its files in a single transaction.
 */
export class Outputs {
  constructor(private readonly db: Kysely<Database>) {}

  async committed(runId: string): Promise<boolean> {
    return !!(await this.db
      .selectFrom('run_output_commits')
      .select('run_id')
      .where('run_id', '=', runId)
      .executeTakeFirst());
  }

  /**
   * The upload of `path` for the run: the existing one when size and digest match (its `received` says where to
   * resume), else a fresh one (a changed file's old chunks are returned for deletion). Checks the run's and the
   * entity's limits counting every file recorded, listed or not (their chunks take space either way).
   */
  async start(
    run: { id: string; entity_id: string },
    file: { path: string; size: number; sha256: string },
    limits: OutputLimits,
    now: number,
  ): Promise<{ row: OutputRow; staleKeys: string[] }> {
    return this.db.transaction().execute(async (trx) => {
      if (await trx.selectFrom('run_output_commits').select('run_id').where('run_id', '=', run.id).executeTakeFirst())
        throw committedAlready(run.id);
      const found = await trx
        .selectFrom('run_outputs')
        .selectAll()
        .where('run_id', '=', run.id)
        .where('path', '=', file.path)
        .executeTakeFirst();
      if (found && Number(found.size) === file.size && found.sha256 === file.sha256)
        return { row: toRow(found), staleKeys: [] };
      const others = trx.selectFrom('run_outputs').where('id', '!=', found?.id ?? '');
      const runTotal = await others
        .select((eb) => [
          eb.fn.coalesce(eb.fn.sum<number>('size'), eb.lit(0)).as('bytes'),
          eb.fn.countAll<number>().as('files'),
        ])
        .where('run_id', '=', run.id)
        .executeTakeFirstOrThrow();
      if (Number(runTotal.files) + 1 > limits.runFiles)
        throw new OutputsTooLargeError(`Run ${run.id}'s outputs`, Number(runTotal.files) + 1, limits.runFiles, 'files');
      if (Number(runTotal.bytes) + file.size > limits.runBytes)
        throw new OutputsTooLargeError(`Run ${run.id}'s outputs`, Number(runTotal.bytes) + file.size, limits.runBytes);
      const entityTotal = await others
        .select((eb) => eb.fn.coalesce(eb.fn.sum<number>('size'), eb.lit(0)).as('bytes'))
        .where('entity_id', '=', run.entity_id)
        .executeTakeFirstOrThrow();
      if (Number(entityTotal.bytes) + file.size > limits.entityBytes)
        throw new OutputsTooLargeError(
          "The outputs of this run's entity, all runs together,",
          Number(entityTotal.bytes) + file.size,
          limits.entityBytes,
        );
      let staleKeys: string[] = [];
      if (found) {
        staleKeys = await this.dropChunks(trx, run.id, found.id);
        await trx.deleteFrom('run_outputs').where('id', '=', found.id).execute();
      }
      const row: OutputRow = { id: uuidv7(), run_id: run.id, ...file, received: 0, state: 'uploading' };
      await trx
        .insertInto('run_outputs')
        .values({ ...row, entity_id: run.entity_id, created_at: now })
        .execute();
      return { row, staleKeys };
    });
  }

  async get(runId: string, outputId: string): Promise<OutputRow> {
    const r = await this.db
      .selectFrom('run_outputs')
      .selectAll()
      .where('id', '=', outputId)
      .where('run_id', '=', runId)
      .executeTakeFirst();
    if (!r) throw new NotFoundError(`Upload "${outputId}" of run ${runId} not found; start it again.`);
    return toRow(r);
  }

  /** The chunks of an output, in order. */
  async chunks(outputId: string): Promise<Array<{ seq: number; size: number; key: string }>> {
    const rows = await this.db
      .selectFrom('run_output_chunks')
      .select(['seq', 'size', 'key'])
      .where('output_id', '=', outputId)
      .orderBy('seq')
      .execute();
    return rows.map((r) => ({ seq: Number(r.seq), size: Number(r.size), key: r.key }));
  }

  /**
   * Records a chunk already put in the store, if the upload still stands where the writer found it (`at`): a
   * concurrent writer of the same upload, or a reset, makes this false and the writer stops.
   */
  async addChunk(outputId: string, chunk: { seq: number; size: number; key: string }, at: number): Promise<boolean> {
    return this.db.transaction().execute(async (trx) => {
      const r = await trx
        .updateTable('run_outputs')
        .set((eb) => ({ received: eb('received', '+', chunk.size) }))
        .where('id', '=', outputId)
        .where('received', '=', at)
        .where('state', '=', 'uploading')
        .executeTakeFirst();
      if (Number(r.numUpdatedRows) !== 1) return false;
      await trx
        .insertInto('run_output_chunks')
        .values({ output_id: outputId, ...chunk })
        .execute();
      return true;
    });
  }

  /** Back to nothing received (a digest that did not match); returns the chunk keys to delete from the store. */
  async reset(runId: string, outputId: string): Promise<string[]> {
    return this.db.transaction().execute(async (trx) => {
      const keys = await this.dropChunks(trx, runId, outputId);
      await trx.updateTable('run_outputs').set({ received: 0 }).where('id', '=', outputId).execute();
      return keys;
    });
  }

  private async dropChunks(trx: Kysely<Database>, runId: string, outputId: string): Promise<string[]> {
    const rows = await trx.selectFrom('run_output_chunks').select('key').where('output_id', '=', outputId).execute();
    await trx.deleteFrom('run_output_chunks').where('output_id', '=', outputId).execute();
    return rows.map((r) => r.key);
  }

  /**
   * Lists exactly `files` as the run's outputs, in one transaction: each must be uploaded whole with that size and
   * digest. Uploads of the run not named are dropped (their chunk keys are returned for deletion). Once only.
   */
  async commit(
    runId: string,
    files: ReadonlyArray<{ path: string; size: number; sha256: string }>,
    now: number,
  ): Promise<string[]> {
    return this.db.transaction().execute(async (trx) => {
      const inserted = await trx
        .insertInto('run_output_commits')
        .values({ run_id: runId, committed_at: now })
        .onConflict((oc) => oc.column('run_id').doNothing())
        .executeTakeFirst();
      if (Number(inserted.numInsertedOrUpdatedRows ?? 0) !== 1) throw committedAlready(runId);
      const rows = (await trx.selectFrom('run_outputs').selectAll().where('run_id', '=', runId).execute()).map(toRow);
      const byPath = new Map(rows.map((r) => [r.path, r]));
      const keep = new Set<string>();
      for (const f of files) {
        const r = byPath.get(f.path);
        if (!r || r.size !== f.size || r.sha256 !== f.sha256 || r.received !== r.size)
          throw new OutputUploadConflictError(
            `Output ${JSON.stringify(f.path)} of run ${runId} is not uploaded whole with that size and sha256; upload it (again) before committing. Nothing was listed.`,
          );
        if (keep.has(r.id))
          throw new OutputUploadConflictError(`Output ${JSON.stringify(f.path)} is named twice in the commit.`);
        keep.add(r.id);
      }
      const stale: string[] = [];
      for (const r of rows) {
        if (keep.has(r.id)) continue;
        stale.push(...(await this.dropChunks(trx, runId, r.id)));
        await trx.deleteFrom('run_outputs').where('id', '=', r.id).execute();
      }
      if (keep.size)
        await trx
          .updateTable('run_outputs')
          .set({ state: 'committed' })
          .where('run_id', '=', runId)
          .where('id', 'in', [...keep])
          .execute();
      return stale;
    });
  }

  /** The run's listed outputs, by path. */
  async list(runId: string): Promise<RunOutput[]> {
    const rows = await this.db
      .selectFrom('run_outputs')
      .select(['path', 'size', 'sha256', 'created_at'])
      .where('run_id', '=', runId)
      .where('state', '=', 'committed')
      .orderBy('path')
      .execute();
    return rows.map((r) => ({
      path: r.path,
      size: Number(r.size),
      sha256: r.sha256,
      created_at: Number(r.created_at),
    }));
  }

  /** A listed output of the run (the user-facing download). */
  async find(runId: string, path: string): Promise<OutputRow> {
    const r = await this.db
      .selectFrom('run_outputs')
      .selectAll()
      .where('run_id', '=', runId)
      .where('path', '=', path)
      .where('state', '=', 'committed')
      .executeTakeFirst();
    if (!r)
      throw new NotFoundError(
        `Run ${runId} has no output ${JSON.stringify(path.slice(0, 200))}; list them with "liftoff runs outputs ${runId}".`,
      );
    return toRow(r);
  }
}

const committedAlready = (runId: string) =>
  new OutputUploadConflictError(
    `Run ${runId}'s outputs were already committed; a run's outputs are uploaded once, after it ends.`,
  );
