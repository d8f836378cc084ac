/** Archives smaller than this upload without a progress line: they take no time worth watching. */
export const PROGRESS_MIN_BYTES = 1024 * 1024;

const mib = (n: number) => (n / 1024 / 1024).toFixed(1);

/**
 * A progress reporter for an upload of `total` bytes, written to `out` (stderr): on a terminal one line rewritten in
 * place, at most every whole percent; elsewhere (a log, CI) a line at each quarter, so a log is not flooded. Returns
 * undefined for small uploads.
 */
export function uploadProgress(
  what: string,
  total: number,
  out: { write(s: string): unknown; isTTY?: boolean } = process.stderr,
): ((sent: number) => void) | undefined {
  if (total < PROGRESS_MIN_BYTES) return undefined;
  let shown = -1;
  return (sent) => {
    const pct = Math.floor((100 * sent) / total);
    const step = out.isTTY ? pct : Math.floor(pct / 25) * 25;
    if (step === shown) return;
    shown = step;
    const line = `uploading ${what}: ${mib(sent)} of ${mib(total)} MiB (${pct}%)`;
    out.write(out.isTTY ? `\r${line}${sent >= total ? '\n' : ''}` : `${line}\n`);
  };
}
