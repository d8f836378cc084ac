import { useEffect, useRef, useState, type FormEvent } from 'react';
import { useFocusFirstInvalid } from '../a11y.js';
import {
  ApiError,
  RESOURCE_TYPES,
  hasBuiltRunner,
  queueResourceArgs,
  type Agent,
  type Queue,
  type ResourceType,
} from '../api.js';
import { formProblem, type FormProblem } from '../configProblems.js';
import { useNow, useSession } from '../hooks.js';
import { usePoll } from '../poll.js';
import { res } from '../resources.js';
import { Link } from '../router.js';
import { DataTable } from '../table.js';
import { Command, Empty, ErrorBanner, Field, RunnerMissing } from '../ui.js';
import { formatAgo, loadYaml, parseMapping } from '../util.js';
import { actionError } from '../loadError.js';

export function agentsOf(agents: readonly Agent[] | undefined, queue: string): Agent[] {
  return (agents ?? []).filter((a) => a.queues.includes(queue));
}

function CreateQueueForm({ onCreated, onCancel }: { onCreated: (q: Queue) => void; onCancel: () => void }) {
  const { api, entity } = useSession();
  const [name, setName] = useState('');
  const [resource, setResource] = useState<ResourceType>('local-process');
  const [config, setConfig] = useState('');
  /** Every problem of the last attempt, the form's own checks and the server's, in the order found. */
  const [problems, setProblems] = useState<FormProblem[]>([]);
  const [busy, setBusy] = useState(false);
  const form = useRef<HTMLFormElement>(null);
  const focusInvalid = useFocusFirstInvalid(form);

  // The config is YAML: its reader is a chunk of its own, fetched while the user fills the form.
  useEffect(() => void loadYaml().catch(() => undefined), []);

  const submit = async (e: FormEvent) => {
    e.preventDefault();
    await loadYaml().catch(() => undefined);
    const found: FormProblem[] = [];
    let parsed: Record<string, unknown> = {};
    if (!name.trim()) found.push({ field: 'name', text: 'Name: give the queue a name.' });
    try {
      parsed = parseMapping(config, 'The resource config');
    } catch (err) {
      found.push({ field: 'resource_args', text: (err as Error).message });
    }
    setProblems(found);
    if (found.length) {
      focusInvalid();
      return;
    }
    setBusy(true);
    try {
      // The CLI's `queue create --config` stores the same text the same way (core queueConfigText.ts).
      const resourceArgs = queueResourceArgs(resource, parsed);
      const q = await api.createQueue(entity, { name: name.trim(), resource, resource_args: resourceArgs });
      onCreated(q);
    } catch (err) {
      if (err instanceof ApiError && err.problems.length) {
        setProblems(err.problems.map((p) => formProblem(p, resource)));
      } else if (err instanceof ApiError && err.code === 'CONFLICT') {
        setProblems([{ field: 'name', text: `Name: ${err.message}` }]);
      } else {
        setProblems([{ field: '', text: actionError(err) }]);
      }
      focusInvalid();
    } finally {
      setBusy(false);
    }
  };
  const fieldError = (field: FormProblem['field']) =>
    problems
      .filter((p) => p.field === field)
      .map((p) => p.text)
      .join(' ') || undefined;

  const example = resource === 'local-container' ? 'cpus: 2\nmemory: 4g' : '# default resource args of every job';
  return (
    <form
      ref={form}
      className="card form-card"
      onSubmit={(e) => void submit(e)}
      aria-labelledby="create-queue-title"
      noValidate
    >
      <h2 id="create-queue-title">New queue</h2>
      {problems.length > 0 && (
        <div className="banner banner-error" role="alert" aria-labelledby="create-queue-problems">
          <p id="create-queue-problems">
            {problems.length === 1 ? 'The queue cannot be created:' : `${problems.length} problems to fix:`}
          </p>
          <ul className="problem-list">
            {problems.map((p, i) => (
              <li key={i}>{p.text}</li>
            ))}
          </ul>
        </div>
      )}
      <div className="form-row">
        <Field label="Name" error={fieldError('name')} hint="Letters, digits, “.”, “_” and “-”.">
          {(p) => <input {...p} name="name" value={name} onChange={(e) => setName(e.target.value)} autoFocus />}
        </Field>
        <Field
          label="Resource type"
          error={fieldError('resource')}
          hint={
            hasBuiltRunner(resource)
              ? undefined
              : `No agent of this Liftoff release runs ${resource} jobs yet: the queue takes them, but they stay pending.`
          }
        >
          {(p) => (
            <select
              {...p}
              name="resource"
              value={resource}
              onChange={(e) => setResource(e.target.value as ResourceType)}
            >
              {RESOURCE_TYPES.map((r) => (
                <option key={r} value={r}>
                  {hasBuiltRunner(r) ? r : `${r} (no runner yet)`}
                </option>
              ))}
            </select>
          )}
        </Field>
      </div>
      <Field
        label="Default resource config (YAML or JSON)"
        error={fieldError('resource_args')}
        hint={
          <>
            Options of the chosen resource type for every job of this queue, merged under each job’s own (e.g.{' '}
            <code>cpus: 2</code> for local-container). Leave empty for none.
          </>
        }
      >
        {(p) => (
          <textarea
            {...p}
            name="resource_args"
            className="mono"
            rows={5}
            placeholder={example}
            value={config}
            onChange={(e) => setConfig(e.target.value)}
            spellCheck={false}
          />
        )}
      </Field>
      <div className="form-actions">
        <button type="button" className="btn" onClick={onCancel}>
          Cancel
        </button>
        <button type="submit" className="btn btn-primary" disabled={busy}>
          {busy ? 'Creating…' : 'Create queue'}
        </button>
      </div>
    </form>
  );
}

function DeleteQueueButton({ queue, onDeleted }: { queue: Queue; onDeleted: () => void }) {
  const { api, entity } = useSession();
  const [confirming, setConfirming] = useState(false);
  const [error, setError] = useState<string | undefined>(undefined);
  if (!confirming) {
    return (
      <button
        type="button"
        className="btn btn-small btn-danger-ghost"
        onClick={() => setConfirming(true)}
        aria-label={`Delete queue ${queue.name}`}
      >
        Delete
      </button>
    );
  }
  const del = async () => {
    try {
      await api.deleteQueue(entity, queue.name);
      onDeleted();
    } catch (e) {
      setError(actionError(e));
    }
  };
  return (
    <span className="confirm">
      {error ? (
        <span className="field-error" role="alert">
          {error}
        </span>
      ) : (
        <span>Delete “{queue.name}”?</span>
      )}
      <button type="button" className="btn btn-small btn-danger" onClick={() => void del()} autoFocus>
        Delete
      </button>
      <button
        type="button"
        className="btn btn-small"
        onClick={() => {
          setConfirming(false);
          setError(undefined);
        }}
      >
        Keep
      </button>
    </span>
  );
}

export function QueuesPage() {
  const { entity } = useSession();
  const queues = usePoll(res.queues(entity));
  const agents = usePoll(res.agents(entity));
  const [creating, setCreating] = useState(false);
  const [notice, setNotice] = useState<string | undefined>(undefined);
  const now = useNow(5000);
  const liveAgents = (q: Queue) => agentsOf(agents.data, q.name).filter((a) => a.status !== 'KILLED');

  return (
    <div className="page">
      <div className="page-head">
        <div>
          <h1>Queues</h1>
          <p className="muted">
            Entity <strong>{entity}</strong>. Jobs wait on a queue until a launch agent polling it takes them.
          </p>
        </div>
        {!creating && (
          <button type="button" className="btn btn-primary" onClick={() => setCreating(true)}>
            New queue
          </button>
        )}
      </div>
      {creating && (
        <CreateQueueForm
          onCancel={() => setCreating(false)}
          onCreated={(q) => {
            setCreating(false);
            setNotice(`Queue “${q.name}” created.`);
            queues.reload();
          }}
        />
      )}
      {notice && (
        <div className="banner banner-success" role="status">
          {notice}
        </div>
      )}
      {queues.error && <ErrorBanner>{queues.error.message}</ErrorBanner>}
      {queues.data && queues.data.length === 0 && (
        <Empty title="No queues yet">
          <p>Create one with “New queue”, or from a terminal:</p>
          <Command text="liftoff queue create my-queue" />
        </Empty>
      )}
      {queues.data && queues.data.length > 0 && (
        <DataTable
          label="Queues"
          rows={queues.data}
          rowKey={(q) => q.id}
          rowAttrs={(q) => ({ 'data-queue': q.name })}
          columns={[
            {
              id: 'name',
              header: 'Queue',
              cell: (q) => (
                <Link href={`/queues/${encodeURIComponent(q.name)}`} className="strong-link">
                  {q.name}
                </Link>
              ),
            },
            {
              id: 'resource',
              header: 'Resource',
              cell: (q) => (
                <>
                  <span className="chip">{q.resource}</span> <RunnerMissing resource={q.resource} />
                </>
              ),
            },
            { id: 'pending', header: 'Pending', numeric: true, td: { 'data-col': 'pending' }, cell: (q) => q.pending },
            { id: 'running', header: 'Running', numeric: true, td: { 'data-col': 'running' }, cell: (q) => q.running },
            {
              id: 'agents',
              header: 'Agents polling',
              td: { 'data-col': 'agents' },
              cell: (q) => {
                const live = liveAgents(q);
                if (agents.data === undefined) return '…';
                if (live.length === 0) return <span className="warn-text">none</span>;
                return (
                  <span title={live.map((a) => a.name).join(', ')}>
                    {live.length} {live.length === 1 ? 'agent' : 'agents'}
                  </span>
                );
              },
            },
            {
              id: 'last-agent',
              header: 'Last agent seen',
              td: { 'data-col': 'last-agent' },
              cell: (q) => {
                const all = agentsOf(agents.data, q.name);
                const last = all.reduce<number | null>((m, a) => Math.max(m ?? 0, a.last_heartbeat_at), null);
                return liveAgents(q).length > 0 ? (
                  <span className="ok-text">now</span>
                ) : (
                  <span className="muted">{formatAgo(last, now)}</span>
                );
              },
            },
            {
              id: 'actions',
              header: <span className="sr-only">Actions</span>,
              className: 'actions',
              cell: (q) => (
                <DeleteQueueButton
                  queue={q}
                  onDeleted={() => {
                    setNotice(`Queue “${q.name}” deleted.`);
                    queues.reload();
                  }}
                />
              ),
            },
          ]}
        />
      )}
      {!queues.data && !queues.error && <p className="muted">Loading…</p>}
    </div>
  );
}
