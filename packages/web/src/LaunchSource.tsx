import type { ReactNode } from 'react';
import { uploadPath } from './tar.js';
import { Field } from './ui.js';

export type SourceType = 'git' | 'code' | 'image' | 'job';

/** The source part of the launch form: git repository, uploaded directory or container image, and their fields. */
export function LaunchSource(props: {
  sourceType: SourceType;
  setSourceType: (t: SourceType) => void;
  /** Image jobs need a container queue. */
  imagesOk: boolean;
  url: string;
  setUrl: (v: string) => void;
  gitRef: string;
  setGitRef: (v: string) => void;
  image: string;
  setImage: (v: string) => void;
  files: File[];
  setFiles: (f: File[]) => void;
  /** A re-run of uploaded code: its archive, sent again unless a directory is chosen. */
  archiveId?: string;
  errors: Record<string, string | undefined>;
  /** The job picker (JobPicker.tsx), shown for the "Saved job" source. */
  jobPicker?: ReactNode;
}): ReactNode {
  const {
    sourceType,
    setSourceType,
    imagesOk,
    url,
    setUrl,
    gitRef: ref,
    setGitRef: setRef,
    image,
    setImage,
    files,
    setFiles,
    errors,
  } = props;
  return (
    <>
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
        {props.jobPicker !== undefined && (
          <label>
            <input
              type="radio"
              name="source"
              value="job"
              checked={sourceType === 'job'}
              onChange={() => setSourceType('job')}
            />
            Saved job
          </label>
        )}
      </fieldset>
      {sourceType === 'job' ? (
        props.jobPicker
      ) : sourceType === 'git' ? (
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
              : props.archiveId
                ? `The run's code (archive ${props.archiveId.slice(0, 12)}) is sent again; choose a directory to replace it.`
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
    </>
  );
}
