import { useEffect, useState, type ReactNode } from 'react';
import type { JobVersionInfo } from './api.js';
import { useSession } from './hooks.js';
import { usePoll } from './poll.js';
import { res } from './resources.js';
import { Field } from './ui.js';

/** What the picker hands the launch dialog: the version, and the run-config values its schema form holds. */
export interface PickedJob {
  version: JobVersionInfo;
  values: Record<string, unknown>;
  /** Field → message for values that are not of their type (the server checks the rest against the schema). */
  problems: Record<string, string>;
}

interface PropSchema {
  type?: string | string[];
  enum?: unknown[];
  title?: string;
  description?: string;
  default?: unknown;
  minimum?: number;
  maximum?: number;
}

/** The form's raw text of one property as a value of its type; '' is "not given". */
function convert(raw: string, prop: PropSchema): { value?: unknown; problem?: string } {
  if (raw === '') return {};
  if (prop.enum) return { value: prop.enum[Number(raw)] };
  const type = Array.isArray(prop.type) ? prop.type[0] : prop.type;
  if (type === 'boolean') return { value: raw === 'true' };
  if (type === 'number' || type === 'integer') {
    const n = Number(raw);
    if (!Number.isFinite(n) || (type === 'integer' && !Number.isInteger(n)))
      return { problem: `Must be ${type === 'integer' ? 'an integer' : 'a number'}.` };
    return { value: n };
  }
  if (type === 'string' || type === undefined) return { value: raw };
  try {
    return { value: JSON.parse(raw) };
  } catch {
    return { problem: `Give it as JSON (${type}).` };
  }
}

function initial(prop: PropSchema): string {
  if (prop.default === undefined) return '';
  if (prop.enum) return String(prop.enum.findIndex((v) => JSON.stringify(v) === JSON.stringify(prop.default)));
  return typeof prop.default === 'string' ? prop.default : JSON.stringify(prop.default);
}

/**
 * Picks a job and version of the entity and shows a form generated from the version's run-config schema: one field
 * per top-level property (a select for an enum, a checkbox for a boolean, numbers and text; anything else as JSON).
 * The server checks the whole config against the schema at launch; its problems come back one per line.
 */
export function JobPicker({ onChange }: { onChange: (picked: PickedJob | undefined) => void }): ReactNode {
  const { api, entity } = useSession();
  // Read once per opening, from the shared cache: a dialog opened again shows the list at once.
  const jobList = usePoll(res.jobs(entity), 0);
  const jobs = jobList.data;
  const [versionError, setError] = useState<string | undefined>(undefined);
  const error = versionError ?? jobList.error?.message;
  const [name, setName] = useState('');
  const [ref, setRef] = useState('latest');
  const [version, setVersion] = useState<JobVersionInfo | undefined>(undefined);
  const [raw, setRaw] = useState<Record<string, string>>({});

  useEffect(() => {
    setVersion(undefined);
    if (!name) return;
    api.jobVersion(entity, name, ref).then(
      (v) => {
        setVersion(v);
        const props = (v.schema?.properties ?? {}) as Record<string, PropSchema>;
        setRaw(Object.fromEntries(Object.entries(props).map(([k, p]) => [k, initial(p)])));
      },
      (e: unknown) => setError((e as Error).message),
    );
  }, [api, entity, name, ref]);

  const props = (version?.schema?.properties ?? {}) as Record<string, PropSchema>;
  const required = new Set((version?.schema?.required ?? []) as string[]);
  useEffect(() => {
    if (!version) return onChange(undefined);
    const values: Record<string, unknown> = {};
    const problems: Record<string, string> = {};
    for (const [k, p] of Object.entries(props)) {
      const { value, problem } = convert(raw[k] ?? '', p);
      if (problem) problems[k] = problem;
      else if (value !== undefined) values[k] = value;
    }
    onChange({ version, values, problems });
    // props derive from version; raw holds the inputs.
  }, [version, raw]);

  const job = jobs?.find((j) => j.name === name);
  const refs = job
    ? [
        ...Object.keys(job.aliases).sort(),
        ...Array.from({ length: job.versions }, (_, i) => `v${job.versions - 1 - i}`),
      ]
    : [];
  const set = (k: string, v: string) => setRaw({ ...raw, [k]: v });
  return (
    <div data-testid="job-picker">
      <div className="form-row">
        <Field
          label="Job"
          error={error}
          hint={jobs && jobs.length === 0 ? 'No jobs yet: create one with "liftoff job create".' : undefined}
        >
          {(p) => (
            <select {...p} name="job" value={name} onChange={(e) => setName(e.target.value)} data-autofocus>
              <option value="">choose…</option>
              {(jobs ?? []).map((j) => (
                <option key={j.name} value={j.name}>
                  {j.name}
                </option>
              ))}
            </select>
          )}
        </Field>
        <Field label="Version" hint={version ? `${version.version}: ${version.entry_point.join(' ')}` : undefined}>
          {(p) => (
            <select {...p} name="job-version" value={ref} onChange={(e) => setRef(e.target.value)} disabled={!job}>
              {(refs.length ? refs : ['latest']).map((r) => (
                <option key={r} value={r}>
                  {job?.aliases[r] ? `${r} (${job.aliases[r]})` : r}
                </option>
              ))}
            </select>
          )}
        </Field>
      </div>
      {version && Object.keys(props).length > 0 && (
        <fieldset className="vars" data-testid="schema-form">
          <legend>Run config of {version.job}</legend>
          {Object.entries(props).map(([k, prop]) => {
            const type = Array.isArray(prop.type) ? prop.type.join(' | ') : (prop.type ?? 'any');
            const hint = [
              prop.description,
              prop.minimum !== undefined ? `min ${prop.minimum}` : '',
              prop.maximum !== undefined ? `max ${prop.maximum}` : '',
              required.has(k) ? 'required' : '',
            ]
              .filter(Boolean)
              .join(' · ');
            return (
              <Field
                key={k}
                label={`${prop.title ?? k} (${prop.enum ? 'one of' : type})`}
                hint={hint || undefined}
                error={convert(raw[k] ?? '', prop).problem}
              >
                {(p) =>
                  prop.enum ? (
                    <select {...p} name={`cfg-${k}`} value={raw[k] ?? ''} onChange={(e) => set(k, e.target.value)}>
                      <option value="">—</option>
                      {prop.enum.map((o, i) => (
                        <option key={i} value={String(i)}>
                          {typeof o === 'string' ? o : JSON.stringify(o)}
                        </option>
                      ))}
                    </select>
                  ) : type === 'boolean' ? (
                    <select {...p} name={`cfg-${k}`} value={raw[k] ?? ''} onChange={(e) => set(k, e.target.value)}>
                      <option value="">—</option>
                      <option value="true">true</option>
                      <option value="false">false</option>
                    </select>
                  ) : (
                    <input
                      {...p}
                      name={`cfg-${k}`}
                      className={type === 'string' ? undefined : 'mono'}
                      type={type === 'number' || type === 'integer' ? 'number' : 'text'}
                      step={type === 'integer' ? 1 : 'any'}
                      value={raw[k] ?? ''}
                      onChange={(e) => set(k, e.target.value)}
                    />
                  )
                }
              </Field>
            );
          })}
        </fieldset>
      )}
    </div>
  );
}
