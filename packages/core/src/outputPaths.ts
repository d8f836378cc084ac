import { OutputPathRefusedError } from './errors.js';

/** Longest output path in UTF-8 bytes, longest segment (a usual file-system name limit), deepest nesting. */
export const OUTPUT_PATH_MAX_BYTES = 1024;
export const OUTPUT_SEGMENT_MAX_BYTES = 255;
export const OUTPUT_PATH_MAX_DEPTH = 32;

// C0 controls, DEL and C1 controls: a name holding them could rewrite a terminal or a log line when printed.
// eslint-disable-next-line no-control-regex
const CONTROL = /[\u0000-\u001f\u007f-\u009f]/;

/**
 * Checks a run output's path and returns it unchanged. The job names its files, the agent passes the names on and
 * the CLI writes files by them, so the server, the agent and the CLI all apply this one rule: a relative path of
 * "/"-separated segments, none empty, "." or "..", no backslash (a separator on Windows), no control characters,
 * bounded in length and depth. Paths are compared byte for byte (no Unicode normalization).
 */
export function checkOutputPath(path: string): string {
  if (path.length === 0) throw new OutputPathRefusedError(path, 'it is empty');
  if (CONTROL.test(path)) throw new OutputPathRefusedError(path, 'it holds a NUL or control character');
  if (Buffer.byteLength(path) > OUTPUT_PATH_MAX_BYTES)
    throw new OutputPathRefusedError(path, `it is longer than ${OUTPUT_PATH_MAX_BYTES} bytes`);
  if (path.startsWith('/')) throw new OutputPathRefusedError(path, 'it is absolute');
  if (path.includes('\\')) throw new OutputPathRefusedError(path, 'it holds a backslash');
  const segments = path.split('/');
  if (segments.length > OUTPUT_PATH_MAX_DEPTH)
    throw new OutputPathRefusedError(path, `it is nested deeper than ${OUTPUT_PATH_MAX_DEPTH} folders`);
  for (const s of segments) {
    if (s === '' || s === '.' || s === '..')
      throw new OutputPathRefusedError(path, 'it has an empty, "." or ".." segment');
    if (Buffer.byteLength(s) > OUTPUT_SEGMENT_MAX_BYTES)
      throw new OutputPathRefusedError(path, `a name in it is longer than ${OUTPUT_SEGMENT_MAX_BYTES} bytes`);
  }
  return path;
}
