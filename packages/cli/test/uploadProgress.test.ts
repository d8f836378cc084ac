import { describe, expect, it } from 'vitest';
import { PROGRESS_MIN_BYTES, uploadProgress } from '../src/uploadProgress.js';

const sink = (isTTY: boolean) => {
  const out: string[] = [];
  return { out, stream: { isTTY, write: (s: string) => out.push(s) } };
};
const MiB = 1024 * 1024;

describe('upload progress', () => {
  it('stays quiet for a small archive', () => {
    expect(uploadProgress('x', PROGRESS_MIN_BYTES - 1, sink(true).stream)).toBeUndefined();
  });

  it('writes a line per quarter where stderr is not a terminal', () => {
    const { out, stream } = sink(false);
    const report = uploadProgress('the code archive of d', 4 * MiB, stream) as (n: number) => void;
    for (let sent = 256 * 1024; sent <= 4 * MiB; sent += 256 * 1024) report(sent);
    expect(out).toEqual([
      'uploading the code archive of d: 0.3 of 4.0 MiB (6%)\n',
      'uploading the code archive of d: 1.0 of 4.0 MiB (25%)\n',
      'uploading the code archive of d: 2.0 of 4.0 MiB (50%)\n',
      'uploading the code archive of d: 3.0 of 4.0 MiB (75%)\n',
      'uploading the code archive of d: 4.0 of 4.0 MiB (100%)\n',
    ]);
  });

  it('rewrites one line on a terminal and ends it when done', () => {
    const { out, stream } = sink(true);
    const report = uploadProgress('a', 2 * MiB, stream) as (n: number) => void;
    report(MiB);
    report(MiB);
    report(2 * MiB);
    expect(out).toEqual(['\ruploading a: 1.0 of 2.0 MiB (50%)', '\ruploading a: 2.0 of 2.0 MiB (100%)\n']);
  });
});
