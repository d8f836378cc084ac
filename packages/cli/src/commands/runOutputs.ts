import { createHash } from 'node:crypto';
import { createWriteStream } from 'node:fs';
import { lstat, mkdir, rename, rm } from 'node:fs/promises';
import { dirname, join, relative, resolve, sep, isAbsolute } from 'node:path';
import { Transform } from 'node:stream';
import { pipeline } from 'node:stream/promises';
import type { Command } from 'commander';
import type { LiftoffClient, RunOutput } from '@liftoff/core';
import { OutputDownloadError, checkOutputPath, type Env } from '@liftoff/core/base';
import { connect } from '../connection.js';
import { printJson, stripTerminalControls, table, when } from '../output.js';
import { common, type Common } from './common.js';
import { runIdOf } from './runLookup.js';

const MiB = 1024 * 1024;
const size = (n: number) =>
  n >= MiB ? `${(n / MiB).toFixed(1)} MiB` : n >= 1024 ? `${(n / 1024).toFixed(1)} KiB` : `${n} B`;

/** `liftoff runs outputs ID [--download DIR]`: the files a run left in $LIFTOFF_OUTPUT_DIR (docs/outputs.md). */
export function runOutputsCommand(runs: Command, env: Env): void {
  common(runs.command('outputs <id>').description("list a run's outputs, or download them with --download DIR"))
    .option(
      '-d, --download <dir>',
      'write every output under this directory (created if missing), checking each sha256',
    )
    .action(async (id: string, flags: Common & { download?: string }) => {
      const client = await connect(flags, env);
      const runId = await runIdOf(client, id);
      const { outputs, total_bytes } = await client.listOutputs(runId);
      const link = (await client.getRun(runId)).outputs_link;
      // A job that ran elsewhere (SageMaker, Vertex) wrote its outputs to the cloud: said, never fetched from there.
      if (link && !flags.json)
        console.log(`The job writes its outputs to ${stripTerminalControls(link)} (not copied by Liftoff).`);
      if (flags.download === undefined) {
        if (flags.json) return printJson({ outputs, total_bytes, outputs_link: link });
        if (!outputs.length && !link)
          return console.log(`Run ${runId} has no outputs (a job saves them by writing files to $LIFTOFF_OUTPUT_DIR).`);
        if (!outputs.length) return;
        console.log(
          table(
            ['PATH', 'SIZE', 'SHA256', 'CREATED'],
            outputs.map((o) => [stripTerminalControls(o.path), size(o.size), o.sha256, when(o.created_at)]),
          ),
        );
        return;
      }
      const dir = resolve(flags.download);
      const written: Array<RunOutput & { file: string }> = [];
      for (const o of outputs) written.push({ ...o, file: await download(client, runId, o, dir) });
      if (flags.json) return printJson({ outputs: written, total_bytes });
      console.log(`downloaded ${outputs.length} file(s), ${size(total_bytes)}, to ${dir}`);
    });
}

/**
 * Writes one output under `dir` and nowhere else: its path is checked by the rule the server applies (no "..", no
 * absolute path), the target must resolve inside `dir`, and no folder on the way may be a symlink (one planted in
 * `dir` could point anywhere). The bytes go to a temporary file beside the target, are hashed on the way, and are
 * renamed over the target only when the sha256 and size match what the server listed.
 */
async function download(client: LiftoffClient, runId: string, o: RunOutput, dir: string): Promise<string> {
  const rel = checkOutputPath(o.path);
  const target = join(dir, ...rel.split('/'));
  const back = relative(dir, target);
  if (back.startsWith('..') || isAbsolute(back))
    throw new OutputDownloadError(`Output ${JSON.stringify(rel)} would be written outside ${dir}; not written.`);
  await mkdir(dir, { recursive: true });
  let at = dir;
  for (const part of rel.split('/').slice(0, -1)) {
    at = join(at, part);
    const st = await lstat(at).catch(() => undefined);
    if (!st) await mkdir(at);
    else if (!st.isDirectory())
      throw new OutputDownloadError(
        `${at} is ${st.isSymbolicLink() ? 'a symlink' : 'not a directory'}; output ${JSON.stringify(rel)} is not written through it. Download into an empty directory.`,
      );
  }
  const tmp = join(dirname(target), `.${Math.random().toString(36).slice(2)}.liftoff-partial`);
  const hash = createHash('sha256');
  let bytes = 0;
  try {
    const count = new Transform({
      transform(chunk: Buffer, _e, done) {
        hash.update(chunk);
        bytes += chunk.length;
        done(null, chunk);
      },
    });
    await pipeline(
      await client.downloadOutput(runId, rel),
      count,
      createWriteStream(tmp, { flags: 'wx', mode: 0o644 }),
    );
    const sha = hash.digest('hex');
    if (bytes !== o.size || sha !== o.sha256)
      throw new OutputDownloadError(
        `Output ${JSON.stringify(rel)} arrived as ${bytes} bytes with sha256 ${sha}, not the ${o.size} bytes with sha256 ${o.sha256} the server listed; not written. Download it again.`,
      );
    await rename(tmp, target);
  } finally {
    await rm(tmp, { force: true });
  }
  return target.split(sep).join('/');
}
