import { useSession } from '../hooks.js';
import { usePoll } from '../poll.js';
import { res } from '../resources.js';
import { Link } from '../router.js';
import { joinArgv } from '../util.js';
import { LoadError } from '../loadError.js';

/** A version of a job (docs/jobs.md): what a run page's "Job" links to. */
export function JobPage({ name, version }: { name: string; version: string }) {
  const { entity } = useSession();
  const v = usePoll(res.jobVersion(entity, name, version), 30_000);
  const d = v.data;
  if (!d)
    return <div className="page">{v.error ? <LoadError error={v.error} /> : <p className="muted">Loading…</p>}</div>;
  const s = d.source;
  return (
    <div className="page">
      <p className="crumbs">
        <Link href="/">Queues</Link> / jobs / {d.job} /
      </p>
      <div className="page-head">
        <h1>
          {d.job}:{d.version}
        </h1>
      </div>
      <dl className="kv" aria-label="Job version">
        <dt>Aliases</dt>
        <dd data-field="aliases">{d.aliases.join(', ') || <span className="muted">none</span>}</dd>
        <dt>Source</dt>
        <dd className="mono" data-field="job-source">
          {s.type === 'git'
            ? `git ${s.url} @ ${s.ref ?? ''}`
            : s.type === 'code'
              ? `code archive ${s.archive_id}`
              : `image ${s.image}`}
        </dd>
        <dt>Entry point</dt>
        <dd className="mono">
          {d.entry_point.length ? joinArgv(d.entry_point) : <span className="muted">the image’s</span>}
        </dd>
        {d.dockerfile && (
          <>
            <dt>Dockerfile</dt>
            <dd className="mono">{d.dockerfile}</dd>
          </>
        )}
        {d.base_image && (
          <>
            <dt>Base image</dt>
            <dd className="mono">{d.base_image}</dd>
          </>
        )}
        {d.description && (
          <>
            <dt>Description</dt>
            <dd>{d.description}</dd>
          </>
        )}
        <dt>Run-config schema</dt>
        <dd className="mono" data-field="job-schema">
          {d.schema ? <pre>{JSON.stringify(d.schema, null, 2)}</pre> : <span className="muted">none</span>}
        </dd>
      </dl>
    </div>
  );
}
