import { useRef, useState, type FormEvent } from 'react';
import { useFocusFirstInvalid } from '../a11y.js';
import { ApiError, RESOURCE_TYPES, fieldErrors, type Agent, type Queue, type ResourceType } from '../api.js';
import { Link, useNow, usePoll, useSession } from '../hooks.js';
import { DataTable } from '../table.js';
import { Command, Empty, ErrorBanner, Field } from '../ui.js';
import { formatAgo, parseMapping } from '../util.js';

export function agentsOf(agents: readonly Agent[] | undefined, queue: string): Agent[] {
  return (agents ?? []).filter((a) => a.queues.includes(queue));
}

function CreateQueueForm({ onCreated, onCancel }: { onCreated: (q: Queue) => void; onCancel: () => void }) {
  const { api, entity } = useSession();
  const [name, setName] = useState('');
  const [resource, setResource] = useState<ResourceType>('local-process');
  const [config, setConfig] = useState('');
  const [errors, setErrors] = useState<Map<string, string>>(new Map());
  const [busy, setBusy] = useState(false);
  const form = useRef<HTMLFormElement>(null);
  const focusInvalid = useFocusFirstInvalid(form);

  const submit = async (e: FormEvent) => {
    e.preventDefault();
    const errs = new Map<string, string>();
    let resourceArgs: Record<string, unknown> = {};
    try {
      resourceArgs = parseMapping(config, 'The resource config');
    } catch (err) {
      errs.set('resource_args', (err as Error).message);
    }
    if (!name.trim()) errs.set('name', 'Give the queue a name.');
    setErrors(errs);
    if (errs.size) {
      focusInvalid();
      return;
    }
    setBusy(true);
    try {
      const q = await api.createQueue(entity, { name: name.trim(), resource, resource_args: resourceArgs });
      onCreated(q);
    } catch (err) {
      const m = err instanceof ApiError ? err.message : (err as Error).message;
      const byField = fieldErrors(m);
      const out = new Map<string, string>();
      for (const [field, msg] of byField) {
        if (field.startsWith('resource_args') || (field === '' && /resource_args/.test(msg)))
          out.set('resource_args', msg);
        else if (field.startsWith('name') || (err instanceof ApiError && err.code === 'CONFLICT')) out.set('name', msg);
        else if (field.startsWith('resource')) out.set('resource', msg);
        else out.set('', msg);
      }
      setErrors(out);
      focusInvalid();
    } finally {
      setBusy(false);
    }
  };

  const example =
    resource === 'local-process' ? 'local-process: {}' : `${resource}:\n  # default resource args of every job`;
  return (
    <form
      ref={form}
      className="card form-card"
      onSubmit={(e) => void submit(e)}
      aria-labelledby="create-queue-title"
      noValidate
    >
      <h2 id="create-queue-title">New queue</h2>
      {errors.get('') && <ErrorBanner>{errors.get('')}</ErrorBanner>}
      <div className="form-row">
        <Field label="Name" error={errors.get('name')} hint="Letters, digits, “.”, “_” and “-”.">
          {(p) => <input {...p} name="name" value={name} onChange={(e) => setName(e.target.value)} autoFocus />}
        </Field>
        <Field label="Resource type" error={errors.get('resource')}>
          {(p) => (
            <select
              {...p}
              name="resource"
              value={resource}
              onChange={(e) => setResource(e.target.value as ResourceType)}
            >
              {RESOURCE_TYPES.map((r) => (
                <option key={r} value={r}>
                  {r}
                </option>
              ))}
            </select>
          )}
        </Field>
      </div>
      <Field
        label="Default resource config (YAML or JSON)"
        error={errors.get('resource_args')}
        hint={
          <>
            The queue’s <code>resource_args</code>, keyed by resource type, merged under every job’s own. Leave empty
            for none.
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
      setError((e as Error).message);
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
  const queues = usePoll((api) => api.queues(entity), [entity]);
  const agents = usePoll((api) => api.agents(entity), [entity]);
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
            { id: 'resource', header: 'Resource', cell: (q) => <span className="chip">{q.resource}</span> },
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
