import { useEffect, useRef, useState, type FormEvent } from 'react';
import { ApiError, PRIORITIES, fieldErrors, type Item, type JobSource, type PriorityName, type Queue } from './api.js';
import { useSession } from './hooks.js';
import { packFiles, uploadPath } from './tar.js';
import { ErrorBanner, Field } from './ui.js';
import { parseEnv, parseMapping, splitArgv } from './util.js';

/** Field → message; template variables are `var:NAME`, messages for no field are `''`. */
type Errors = Record<string, string | undefined>;

/** Which form field a server message about `spec.…` belongs to. */
function fieldFor(path: string): string {
  if (path.startsWith('spec.source.url')) return 'url';
  if (path.startsWith('spec.source.ref')) return 'ref';
  if (path.startsWith('spec.source.archive')) return 'files';
  if (path.startsWith('spec.source.image')) return 'image';
  if (path.startsWith('spec.entry_point')) return 'entry';
  if (path.startsWith('spec.args')) return 'args';
  if (path.startsWith('spec.run_config')) return 'config';
  if (path.startsWith('spec.env')) return 'env';
  if (path.startsWith('spec.name')) return 'name';
  if (path.startsWith('priority')) return 'priority';
  if (path.startsWith('template_variables.')) return `var:${path.slice('template_variables.'.length).split(/[.[]/)[0]}`;
  return '';
}

export function LaunchDialog({
  queue,
  onClose,
  onLaunched,
}: {
  queue: Queue;
  onClose: () => void;
  onLaunched: (item: Item) => void;
}) {
  const { api, entity } = useSession();
  const dialog = useRef<HTMLDialogElement>(null);
  // Image jobs need a container queue; a local-process queue is offered git and upload only.
  const imagesOk = queue.resource !== 'local-process';
  const [sourceType, setSourceType] = useState<'git' | 'code' | 'image'>('git');
  const [image, setImage] = useState('');
  const [url, setUrl] = useState('');
  const [ref, setRef] = useState('');
  const [files, setFiles] = useState<File[]>([]);
  const [entry, setEntry] = useState('');
  const [args, setArgs] = useState('');
  const [config, setConfig] = useState('');
  const [priority, setPriority] = useState<PriorityName>('medium');
  // A server without the switch takes any priority.
  const prioritiesOn = queue.prioritization_mode !== 'DISABLED';
  const variables = Object.entries(queue.template_variables ?? {});
  const [vars, setVars] = useState<Record<string, string>>(() =>
    Object.fromEntries(variables.map(([k, v]) => [k, v.schema.default === undefined ? '' : String(v.schema.default)])),
  );
  const [env, setEnv] = useState('');
  const [name, setName] = useState('');
  const [errors, setErrors] = useState<Errors>({});
  const [busy, setBusy] = useState<string | undefined>(undefined);

  useEffect(() => {
    const d = dialog.current;
    if (d && !d.open) d.showModal();
    // showModal focuses the first focusable element (the close button); start in the first field instead.
    d?.querySelector<HTMLElement>('[data-autofocus]')?.focus();
  }, []);

  const submit = async (e: FormEvent) => {
    e.preventDefault();
    const errs: Errors = {};
    const spec: Record<string, unknown> = {};
    const check = (field: string, fn: () => void) => {
      try {
        fn();
      } catch (err) {
        errs[field] = (err as Error).message;
      }
    };
    if (sourceType === 'git') {
      if (!url.trim()) errs.url = 'Give the git repository URL (https://, ssh://, file:// or user@host:path).';
    } else if (sourceType === 'code' && files.length === 0) {
      errs.files = 'Choose the directory to upload.';
    } else if (sourceType === 'image' && !image.trim()) {
      errs.image = 'Give the image, e.g. ghcr.io/org/trainer:1.2';
    }
    check('entry', () => {
      const argv = splitArgv(entry);
      if (argv.length === 0 && sourceType !== 'image')
        throw new Error('Give the program to run, e.g. python3 train.py');
      if (argv.length) spec.entry_point = argv;
    });
    check('args', () => {
      try {
        spec.args = splitArgv(args);
      } catch (err) {
        throw new Error(`Arguments ${(err as Error).message}`);
      }
    });
    check('config', () => (spec.run_config = parseMapping(config, 'The run config')));
    check('env', () => {
      try {
        spec.env = parseEnv(env);
      } catch (err) {
        throw new Error(`Environment: ${(err as Error).message}`);
      }
    });
    if (name.trim()) spec.name = name.trim();
    const templateValues: Record<string, string | number> = {};
    for (const [k, v] of variables) {
      const raw = (vars[k] ?? '').trim();
      if (raw === '') {
        if (v.schema.default === undefined) errs[`var:${k}`] = 'Give a value.';
        continue;
      }
      if (v.schema.type === 'string') templateValues[k] = raw;
      else if (Number.isFinite(Number(raw))) templateValues[k] = Number(raw);
      else errs[`var:${k}`] = `Must be ${v.schema.type === 'integer' ? 'an integer' : 'a number'}.`;
    }
    setErrors(errs);
    if (Object.keys(errs).length) return;

    try {
      let source: JobSource;
      if (sourceType === 'git') {
        source = { type: 'git', url: url.trim(), ...(ref.trim() ? { ref: ref.trim() } : {}) };
      } else if (sourceType === 'image') {
        source = { type: 'image', image: image.trim() };
      } else {
        setBusy('Packing the directory…');
        const { blob, count } = await packFiles(files);
        setBusy(`Uploading ${count} files…`);
        const archive = await api.uploadArchive(blob).catch((err: unknown) => {
          throw Object.assign(err as Error, { field: 'files' });
        });
        source = { type: 'code', archive_id: archive.id };
      }
      setBusy('Launching…');
      const item = await api.push(entity, queue.name, {
        spec: { ...spec, source },
        ...(prioritiesOn ? { priority } : {}),
        ...(variables.length ? { template_variables: templateValues } : {}),
      });
      onLaunched(item);
    } catch (err) {
      const m = (err as Error).message;
      if ((err as { field?: string }).field === 'files') {
        setErrors({ files: m });
      } else if (err instanceof ApiError) {
        const out: Errors = {};
        for (const [path, msg] of fieldErrors(m)) {
          const f = fieldFor(path);
          out[f] = out[f] ? `${out[f]}; ${msg}` : msg;
        }
        setErrors(out);
      } else {
        setErrors({ '': m });
      }
    } finally {
      setBusy(undefined);
    }
  };

  return (
    <dialog
      ref={dialog}
      className="dialog"
      aria-labelledby="launch-title"
      onClose={onClose}
      onCancel={(e) => {
        e.preventDefault();
        onClose();
      }}
    >
      <form onSubmit={(e) => void submit(e)} noValidate>
        <header className="dialog-head">
          <h2 id="launch-title">Launch a job on “{queue.name}”</h2>
          <button type="button" className="btn btn-ghost btn-icon" onClick={onClose} aria-label="Close">
            ×
          </button>
        </header>
        <div className="dialog-body">
          {errors[''] && <ErrorBanner>{errors['']}</ErrorBanner>}
          <fieldset className="segmented">
            <legend>Source</legend>
            <label>
              <input
                type="radio"
                name="source"
                value="git"
                checked={sourceType === 'git'}
                onChange={() => setSourceType('git')}
              />
              Git repository
            </label>
            <label>
              <input
                type="radio"
                name="source"
                value="code"
                checked={sourceType === 'code'}
                onChange={() => setSourceType('code')}
              />
              Upload a directory
            </label>
            {imagesOk && (
              <label>
                <input
                  type="radio"
                  name="source"
                  value="image"
                  checked={sourceType === 'image'}
                  onChange={() => setSourceType('image')}
                />
                Container image
              </label>
            )}
          </fieldset>
          {sourceType === 'git' ? (
            <div className="form-row">
              <Field
                label="Git URL"
                error={errors.url}
                hint="The agent clones it: https://, ssh://, file:// or user@host:path."
              >
                {(p) => (
                  <input
                    {...p}
                    name="git-url"
                    value={url}
                    onChange={(e) => setUrl(e.target.value)}
                    placeholder="https://github.com/org/repo.git"
                    spellCheck={false}
                    data-autofocus
                  />
                )}
              </Field>
              <Field label="Ref (optional)" error={errors.ref} hint="Branch, tag or commit.">
                {(p) => (
                  <input
                    {...p}
                    name="git-ref"
                    value={ref}
                    onChange={(e) => setRef(e.target.value)}
                    placeholder="main"
                    spellCheck={false}
                  />
                )}
              </Field>
            </div>
          ) : sourceType === 'image' ? (
            <Field
              label="Image"
              error={errors.image}
              hint="Run as is, without a build: [registry/]repository[:tag][@sha256:digest]."
            >
              {(p) => (
                <input
                  {...p}
                  name="image"
                  className="mono"
                  value={image}
                  onChange={(e) => setImage(e.target.value)}
                  placeholder="ghcr.io/org/trainer:1.2"
                  spellCheck={false}
                />
              )}
            </Field>
          ) : (
            <Field
              label="Code directory"
              error={errors.files}
              hint={
                files.length
                  ? `${files.length} files chosen (.git, node_modules, __pycache__ and .venv are skipped).`
                  : 'Packed as .tar.gz in the browser and uploaded; .git, node_modules, __pycache__ and .venv are skipped.'
              }
            >
              {(p) => (
                <input
                  {...p}
                  name="code-dir"
                  type="file"
                  multiple
                  // Directory picking: a non-standard attribute every current browser supports.
                  {...{ webkitdirectory: '' }}
                  onChange={(e) => setFiles(Array.from(e.target.files ?? []).filter((f) => uploadPath(f) !== null))}
                />
              )}
            </Field>
          )}
          <Field
            label={sourceType === 'image' ? 'Entry point (optional: the image’s own)' : 'Entry point'}
            error={errors.entry}
            hint="Program and arguments, split like a shell would but run without one (no pipes or redirections)."
          >
            {(p) => (
              <input
                {...p}
                name="entry-point"
                className="mono"
                value={entry}
                onChange={(e) => setEntry(e.target.value)}
                placeholder="python3 train.py"
                spellCheck={false}
              />
            )}
          </Field>
          <Field label="Arguments (optional)" error={errors.args} hint="Appended to the entry point.">
            {(p) => (
              <input
                {...p}
                name="args"
                className="mono"
                value={args}
                onChange={(e) => setArgs(e.target.value)}
                placeholder="--epochs 3"
                spellCheck={false}
              />
            )}
          </Field>
          <Field
            label="Run config (YAML or JSON, optional)"
            error={errors.config}
            hint={
              <>
                Handed to the job as JSON in <code>LIFTOFF_RUN_CONFIG</code>.
              </>
            }
          >
            {(p) => (
              <textarea
                {...p}
                name="run-config"
                className="mono"
                rows={3}
                value={config}
                onChange={(e) => setConfig(e.target.value)}
                placeholder={'lr: 0.001\nbatch_size: 32'}
                spellCheck={false}
              />
            )}
          </Field>
          <div className="form-row">
            <Field
              label="Priority"
              error={errors.priority}
              hint={
                prioritiesOn
                  ? 'Higher priorities are served first; FIFO within one.'
                  : 'Prioritization is off on this queue: items run in the order they were pushed.'
              }
            >
              {(p) => (
                <select
                  {...p}
                  name="priority"
                  value={prioritiesOn ? priority : 'medium'}
                  disabled={!prioritiesOn}
                  onChange={(e) => setPriority(e.target.value as PriorityName)}
                >
                  {Object.keys(PRIORITIES).map((k) => (
                    <option key={k} value={k}>
                      {k}
                    </option>
                  ))}
                </select>
              )}
            </Field>
            <Field label="Run name (optional)" error={errors.name}>
              {(p) => <input {...p} name="run-name" value={name} onChange={(e) => setName(e.target.value)} />}
            </Field>
          </div>
          {variables.length > 0 && (
            <fieldset className="vars">
              <legend>Template variables of “{queue.name}”</legend>
              {variables.map(([k, { schema }]) => (
                <Field
                  key={k}
                  label={`${k} (${schema.type})`}
                  error={errors[`var:${k}`]}
                  hint={[
                    schema.description,
                    schema.minimum !== undefined ? `min ${schema.minimum}` : '',
                    schema.maximum !== undefined ? `max ${schema.maximum}` : '',
                    schema.default !== undefined ? `default ${schema.default}` : 'required',
                  ]
                    .filter(Boolean)
                    .join(' · ')}
                >
                  {(p) =>
                    schema.enum ? (
                      <select
                        {...p}
                        name={`var-${k}`}
                        value={vars[k] ?? ''}
                        onChange={(e) => setVars({ ...vars, [k]: e.target.value })}
                      >
                        {schema.default === undefined && <option value="">choose…</option>}
                        {schema.enum.map((o) => (
                          <option key={String(o)} value={String(o)}>
                            {String(o)}
                          </option>
                        ))}
                      </select>
                    ) : (
                      <input
                        {...p}
                        name={`var-${k}`}
                        type={schema.type === 'string' ? 'text' : 'number'}
                        step={schema.type === 'integer' ? 1 : 'any'}
                        min={schema.minimum}
                        max={schema.maximum}
                        value={vars[k] ?? ''}
                        onChange={(e) => setVars({ ...vars, [k]: e.target.value })}
                      />
                    )
                  }
                </Field>
              ))}
            </fieldset>
          )}
          <Field label="Environment (optional)" error={errors.env} hint="One KEY=VALUE per line.">
            {(p) => (
              <textarea
                {...p}
                name="env"
                className="mono"
                rows={2}
                value={env}
                onChange={(e) => setEnv(e.target.value)}
                placeholder="WANDB_MODE=offline"
                spellCheck={false}
              />
            )}
          </Field>
        </div>
        <footer className="dialog-foot">
          <span className="muted small" aria-live="polite">
            {busy}
          </span>
          <button type="button" className="btn" onClick={onClose}>
            Cancel
          </button>
          <button type="submit" className="btn btn-primary" disabled={Boolean(busy)}>
            Launch
          </button>
        </footer>
      </form>
    </dialog>
  );
}
