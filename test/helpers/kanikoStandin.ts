import { execFileSync } from 'node:child_process';
import { join } from 'node:path';
import { ROOT, onCleanup } from './procs.js';

/** The stand-in Kaniko executor image (test/helpers/kanikoStandin), derived from liftoff-test/python:3, never pulled. */
export const KANIKO_STANDIN = 'liftoff-test/kaniko-standin:1';

/** Builds the stand-in image on the local engine (fast when cached: the layers are the same). */
export function buildKanikoStandin(): string {
  execFileSync('docker', ['build', '-q', '-t', KANIKO_STANDIN, join(ROOT, 'test', 'helpers', 'kanikoStandin')], {
    stdio: ['ignore', 'ignore', 'inherit'],
  });
  return KANIKO_STANDIN;
}

/**
 * At cleanup, untags every local image named under a test registry's host (its port is this test's own): the
 * base images tagged for it and the images the kubelet pulled from it. The layers stay for the other tests.
 */
export function untagImagesOf(host: string): void {
  onCleanup(() => {
    const refs = execFileSync('docker', ['images', '--format', '{{.Repository}}:{{.Tag}}'], { encoding: 'utf8' })
      .split('\n')
      .filter((r) => r.startsWith(`${host}/`));
    if (refs.length) execFileSync('docker', ['rmi', ...refs], { stdio: 'ignore' });
  });
}
