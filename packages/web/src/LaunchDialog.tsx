import { useEffect, useRef, useState, type FormEvent } from 'react';
import { useFocusFirstInvalid, useReturnFocus } from './a11y.js';
import {
  ApiError,
  PRIORITIES,
  fieldErrors,
  type Item,
  type JobSource,
  type PriorityName,
  type PushedBody,
  type Queue,
} from './api.js';
import { keptOrParsed, prefillFrom } from './launchPrefill.js';
import { LaunchSource, type SourceType } from './LaunchSource.js';
import { JobPicker, type PickedJob } from './JobPicker.js';
import { useSession } from './hooks.js';
import { packFiles } from './tar.js';
import { ErrorBanner, Field } from './ui.js';
import { loadYaml, parseEnv, parseMapping, splitArgv } from './util.js';

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

/**
 * The launch form. With `from` (a re-run) it opens filled with that push: the same source (uploaded code is sent
 * again unless another directory is chosen), command, run config, environment, name, priority and template values,
 * and carries over what the form has no input for.
 */
export function LaunchDialog({
  queue,
  onClose,
  onLaunched,
  from,
}: {
  queue: Queue;
  onClose: () => void;
  onLaunched: (item: Item) => void;
  from?: { pushed: PushedBody; label: string };
}) {
  // First: at this render the button that opened the dialog still has focus; it gets it back on close.
  useReturnFocus();
  const { api, entity } = useSession();
  const dialog = useRef<HTMLDialogElement>(null);
  const focusInvalid = useFocusFirstInvalid(dialog);
  const [pre] = useState(() => (from ? prefillFrom(from.pushed) : undefined));
  // Image jobs need a container queue; a local-process queue is offered git and upload only.
  const imagesOk = queue.resource !== 'local-process';
  const [sourceType, setSourceType] = useState<SourceType>(pre?.sourceType ?? 'git');
  const [image, setImage] = useState(pre?.image ?? '');
  const [url, setUrl] = useState(pre?.url ?? '');
  const [ref, setRef] = useState(pre?.ref ?? '');
  const [files, setFiles] = useState<File[]>([]);
  const [entry, setEntry] = useState(pre?.text.entry ?? '');
  const [args, setArgs] = useState(pre?.text.args ?? '');
  const [config, setConfig] = useState(pre?.text.config ?? '');
  const [priority, setPriority] = useState<PriorityName>(pre?.priority ?? 'medium');
  // A server without the switch takes any priority.
  const prioritiesOn = queue.prioritization_mode !== 'DISABLED';
  const variables = Object.entries(queue.template_variables ?? {});
  const [vars, setVars] = useState<Record<string, string>>(() =>
    Object.fromEntries(
      variables.map(([k, v]) => [k, pre?.vars[k] ?? (v.schema.default === undefined ? '' : String(v.schema.default))]),
    ),
  );
  const [env, setEnv] = useState(pre?.text.env ?? '');
  const [name, setName] = useState(pre?.text.name ?? '');
  const [errors, setErrors] = useState<Errors>({});
  const [busy, setBusy] = useState<string | undefined>(undefined);
  const [picked, setPicked] = useState<PickedJob | undefined>(undefined);

  useEffect(() => {
    const d = dialog.current;
    if (d && !d.open) d.showModal();
    // showModal focuses the first focusable element (the close button); start in the first field instead.
    d?.querySelector<HTMLElement>('[data-autofocus]')?.focus();
  }, []);

  // The run config is YAML: its reader is a chunk of its own, fetched while the user fills the form.
  useEffect(() => void loadYaml().catch(() => undefined), []);

  const submit = async (e: FormEvent) => {
    e.preventDefault();
    // Normally loaded by now; if it cannot be fetched, parseMapping says so on the run config field.
    await loadYaml().catch(() => undefined);
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
    } else if (sourceType === 'code' && files.length === 0 && !pre?.archiveId) {
      errs.files = 'Choose the directory to upload.';
    } else if (sourceType === 'image' && !image.trim()) {
      errs.image = 'Give the image, e.g. ghcr.io/org/trainer:1.2';
    } else if (sourceType === 'job') {
      if (!picked) errs[''] = 'Choose a job.';
      else if (Object.keys(picked.problems).length) errs[''] = 'Fix the run config fields of the job.';
    }
    check('entry', () => {
      const argv = keptOrParsed(entry, pre?.text.entry, pre?.original.entry_point, splitArgv);
      if (argv.length === 0 && sourceType !== 'image' && sourceType !== 'job')
        throw new Error('Give the program to run, e.g. python3 train.py');
      if (argv.length) spec.entry_point = argv;
    });
    check('args', () => {
      try {
        spec.args = keptOrParsed(args, pre?.text.args, pre?.original.args, splitArgv);
      } catch (err) {
        throw new Error(`Arguments ${(err as Error).message}`);
      }
    });
    check(
      'config',
      () =>
        (spec.run_config = keptOrParsed(config, pre?.text.config, pre?.original.run_config, (t) =>
          parseMapping(t, 'The run config'),
        )),
    );
    check('env', () => {
      try {
        spec.env = keptOrParsed(env, pre?.text.env, pre?.original.env, parseEnv);
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
    if (Object.keys(errs).length) {
      focusInvalid();
      return;
    }

    try {
      let source: JobSource;
      if (sourceType === 'job' && picked) {
        // The version pins the source; its entry point is used unless one was typed; the form's values go over
        // the run config text. The server checks the result against the schema before it queues anything.
        source = picked.version.source;
        spec.job = { name: picked.version.job, version: picked.version.version };
        if (!spec.entry_point) spec.entry_point = picked.version.entry_point;
        spec.run_config = { ...(spec.run_config as Record<string, unknown>), ...picked.values };
      } else if (sourceType === 'git') {
        source = { type: 'git', url: url.trim(), ...(ref.trim() ? { ref: ref.trim() } : {}) };
      } else if (sourceType === 'image') {
        source = { type: 'image', image: image.trim() };
      } else if (files.length === 0 && pre?.archiveId) {
        source = { type: 'code', archive_id: pre.archiveId };
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
        spec: { ...pre?.carried, ...spec, source },
        ...(prioritiesOn ? { priority } : {}),
        ...(variables.length ? { template_variables: templateValues } : {}),
      });
      onLaunched(item);
    } catch (err) {
      const m = (err as Error).message;
      if ((err as { field?: string }).field === 'files') {
        setErrors({ files: m });
        focusInvalid();
      } else if (err instanceof ApiError) {
        const out: Errors = {};
        for (const [path, msg] of fieldErrors(m)) {
          const f = fieldFor(path);
          out[f] = out[f] ? `${out[f]}; ${msg}` : msg;
        }
        setErrors(out);
        focusInvalid();
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
          <h2 id="launch-title">
            {from ? `Re-run ${from.label} on “${queue.name}”` : `Launch a job on “${queue.name}”`}
          </h2>
          <button type="button" className="btn btn-ghost btn-icon" onClick={onClose} aria-label="Close">
            ×
          </button>
        </header>
        <div className="dialog-body">
          {errors[''] && <ErrorBanner>{errors['']}</ErrorBanner>}
          <LaunchSource
            sourceType={sourceType}
            setSourceType={setSourceType}
            imagesOk={imagesOk}
            url={url}
            setUrl={setUrl}
            gitRef={ref}
            setGitRef={setRef}
            image={image}
            setImage={setImage}
            files={files}
            setFiles={setFiles}
            {...(pre?.archiveId ? { archiveId: pre.archiveId } : {})}
            errors={errors}
            jobPicker={<JobPicker onChange={setPicked} />}
          />
          <Field
            label={
              sourceType === 'image'
                ? 'Entry point (optional: the image’s own)'
                : sourceType === 'job'
                  ? 'Entry point (optional: the job’s)'
                  : 'Entry point'
            }
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
