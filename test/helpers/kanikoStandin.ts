import { execFileSync } from 'node:child_process';
import { join } from 'node:path';
import { ROOT } from './procs.js';

/** The stand-in Kaniko executor image (test/helpers/kanikoStandin), derived from liftoff-test/python:3, never pulled. */
export const KANIKO_STANDIN = 'liftoff-test/kaniko-standin:1';

/** Builds the stand-in image on the local engine (fast when cached: the layers are the same). */
export function buildKanikoStandin(): string {
  execFileSync('docker', ['build', '-q', '-t', KANIKO_STANDIN, join(ROOT, 'test', 'helpers', 'kanikoStandin')], {
    stdio: ['ignore', 'ignore', 'inherit'],
  });
  return KANIKO_STANDIN;
}
