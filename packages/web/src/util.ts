/** The browser's short name of its time zone at a moment ("UTC", "CET", "GMT+2"); its formatter made once. */
const zoneFormat = new Intl.DateTimeFormat(undefined, { timeZoneName: 'short' });
function zoneAt(d: Date): string {
  return zoneFormat.formatToParts(d).find((p) => p.type === 'timeZoneName')?.value ?? '';
}

/** The browser's zone now, for inputs that take a local time. */
export const localZone = (): string => zoneAt(new Date());

/**
 * "2026-11-29 07:31:05 CET": the one formatter of absolute times in the UI (issue 18), in the browser's local time
 * with its zone, so a time read off the screen is never mistaken for UTC or the server's zone. The zone is taken at
 * that moment, so times either side of a daylight-saving change name their own offsets.
 */
export function formatTime(ms: number | null | undefined): string {
  if (ms === null || ms === undefined) return '—';
  const d = new Date(ms);
  const p = (n: number) => String(n).padStart(2, '0');
  const zone = zoneAt(d);
  return `${d.getFullYear()}-${p(d.getMonth() + 1)}-${p(d.getDate())} ${p(d.getHours())}:${p(d.getMinutes())}:${p(d.getSeconds())}${zone ? ` ${zone}` : ''}`;
}

/** "4.2 s", "3 min 05 s", "2 h 04 min". */
export function formatDuration(ms: number | null | undefined): string {
  if (ms === null || ms === undefined || !Number.isFinite(ms)) return '—';
  if (ms < 1000) return `${Math.max(0, Math.round(ms))} ms`;
  const s = ms / 1000;
  if (s < 60) return `${s.toFixed(1)} s`;
  const m = Math.floor(s / 60);
  if (m < 60) return `${m} min ${String(Math.floor(s % 60)).padStart(2, '0')} s`;
  return `${Math.floor(m / 60)} h ${String(m % 60).padStart(2, '0')} min`;
}

/** "just now", "12 s ago", "5 min ago", "3 h ago", else the date. */
export function formatAgo(ms: number | null | undefined, now = Date.now()): string {
  if (ms === null || ms === undefined) return 'never';
  const s = Math.round((now - ms) / 1000);
  if (s < 5) return 'just now';
  if (s < 60) return `${s} s ago`;
  if (s < 3600) return `${Math.floor(s / 60)} min ago`;
  if (s < 86_400) return `${Math.floor(s / 3600)} h ago`;
  return formatTime(ms);
}

/** Ids are UUIDv7: their start is a timestamp shared by ids made close together, so show the random end. */
export const shortId = (id: string): string => (id.length > 12 ? id.slice(-8) : id);

/**
 * Parses a YAML or JSON mapping typed by a user (JSON is YAML, so one parser does both). Empty text is `{}`.
 * Throws an Error with a readable message when the text is not a mapping.
 */
/**
 * The YAML reader (about a fifth of the UI's code) is a chunk loaded on demand (issue 18): forms that read YAML
 * start loading it when they open and await it before they check their fields, so parseMapping can stay synchronous.
 */
let yaml: typeof import('yaml') | undefined;
export async function loadYaml(): Promise<void> {
  yaml ??= await import('yaml');
}

export function parseMapping(text: string, what: string): Record<string, unknown> {
  if (text.trim() === '') return {};
  if (!yaml) throw new Error(`${what} cannot be read yet: the YAML reader is still loading. Try again.`);
  let value: unknown;
  try {
    value = yaml.parse(text, { prettyErrors: true });
  } catch (e) {
    const msg = (e as Error).message.split('\n')[0] ?? 'cannot be parsed';
    throw new Error(`${what} is not valid YAML or JSON: ${msg}`);
  }
  if (value === null || value === undefined) return {};
  if (typeof value !== 'object' || Array.isArray(value)) {
    throw new Error(`${what} must be a mapping (e.g. "key: value" or {"key": "value"}), not ${describe(value)}.`);
  }
  return value as Record<string, unknown>;
}

function describe(v: unknown): string {
  if (Array.isArray(v)) return 'a list';
  if (typeof v === 'string') return 'a string';
  return `a ${typeof v}`;
}

/**
 * Splits a command line into argv like a POSIX shell would (quotes, backslashes), without running a shell. Shell
 * operators (pipes, redirections, `;`, `&`, `$(...)`, backticks) are refused, because the agent runs argv directly.
 */
export function splitArgv(line: string): string[] {
  const out: string[] = [];
  let cur = '';
  let inWord = false;
  let i = 0;
  const n = line.length;
  while (i < n) {
    const c = line[i] as string;
    if (c === "'") {
      const end = line.indexOf("'", i + 1);
      if (end < 0) throw new Error('has an unterminated single quote');
      cur += line.slice(i + 1, end);
      inWord = true;
      i = end + 1;
    } else if (c === '"') {
      i++;
      inWord = true;
      for (;;) {
        if (i >= n) throw new Error('has an unterminated double quote');
        const d = line[i] as string;
        if (d === '"') break;
        if (d === '\\' && i + 1 < n && '"\\$`\n'.includes(line[i + 1] as string)) {
          cur += line[i + 1];
          i += 2;
          continue;
        }
        if (d === '$' || d === '`') throw new Error(`uses shell expansion ("${d}"); it is run without a shell`);
        cur += d;
        i++;
      }
      i++;
    } else if (c === '\\') {
      if (i + 1 < n) cur += line[i + 1];
      inWord = true;
      i += 2;
    } else if (/\s/.test(c)) {
      if (inWord) out.push(cur);
      cur = '';
      inWord = false;
      i++;
    } else if ('|&;<>()`$'.includes(c)) {
      throw new Error(
        `contains shell syntax ("${c}"); it is run without a shell, so give the program and its arguments only`,
      );
    } else {
      cur += c;
      inWord = true;
      i++;
    }
  }
  if (inWord) out.push(cur);
  return out;
}

/** Quotes argv back into a command line for display. */
export function joinArgv(argv: readonly string[]): string {
  return argv.map((a) => (/^[A-Za-z0-9_./:=@%+,-]+$/.test(a) ? a : `'${a.replace(/'/g, `'\\''`)}'`)).join(' ');
}

/** KEY=VALUE lines (blank lines and # comments skipped) into a record. */
export function parseEnv(text: string): Record<string, string> {
  const env: Record<string, string> = {};
  for (const [i, raw] of text.split('\n').entries()) {
    const line = raw.trim();
    if (line === '' || line.startsWith('#')) continue;
    const eq = line.indexOf('=');
    if (eq <= 0) throw new Error(`line ${i + 1} ("${line}") is not KEY=VALUE`);
    env[line.slice(0, eq).trim()] = line.slice(eq + 1);
  }
  return env;
}

const SECRET_KEY = /KEY|TOKEN|SECRET|PASSWORD|PASSWD|CREDENTIAL|AUTH/i;
export const REDACTED = '••••••••';

/** The env with the values of secret-looking keys replaced. */
export function redactEnv(env: Record<string, string>): Record<string, string> {
  return Object.fromEntries(Object.entries(env).map(([k, v]) => [k, SECRET_KEY.test(k) ? REDACTED : v]));
}

/** Redacts secret-looking keys at any depth of a JSON value (run config, resource args). */
export function redactDeep(value: unknown): unknown {
  if (Array.isArray(value)) return value.map(redactDeep);
  if (value && typeof value === 'object') {
    return Object.fromEntries(
      Object.entries(value).map(([k, v]) => [
        k,
        SECRET_KEY.test(k) && typeof v !== 'object' ? REDACTED : redactDeep(v),
      ]),
    );
  }
  return value;
}

/** A metric value in at most 6 significant digits, or in exponent form when very large or small. */
/** Series colours of every chart (metric curves, sweep plots): outside the charts chunk, for the SVG scatter too. */
export const COLORS = ['#2563eb', '#dc2626', '#059669', '#d97706', '#7c3aed', '#0891b2', '#db2777', '#4b5563'];

export function formatValue(v: number): string {
  return Math.abs(v) >= 1e6 || (v !== 0 && Math.abs(v) < 1e-3) ? v.toExponential(4) : String(+v.toPrecision(6));
}
