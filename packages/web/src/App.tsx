import { useCallback, useEffect, useMemo, useRef, useState, type FormEvent } from 'react';
import { ThemePicker, useDocumentTitle, useFocusFirstInvalid, useFocusHeadingOnNavigation } from './a11y.js';
import { Api, ApiError, type Whoami } from './api.js';
import { Link, SessionContext, navigate, useLocation, type Session } from './hooks.js';
import { AgentsPage } from './pages/AgentsPage.js';
import { GlobalRunsPage } from './pages/GlobalRunsPage.js';
import { ItemPage } from './pages/ItemPage.js';
import { JobPage } from './pages/JobPage.js';
import { QueuePage } from './pages/QueuePage.js';
import { QueuesPage } from './pages/QueuesPage.js';
import { RunPage } from './pages/RunPage.js';
import { SweepPage } from './pages/SweepPage.js';
import { SweepsPage } from './pages/SweepsPage.js';
import { ErrorBanner } from './ui.js';
import { LoadError } from './loadError.js';
import { StaleBanner } from './StaleBanner.js';

const KEY_STORAGE = 'liftoff.apiKey';
const ENTITY_STORAGE = 'liftoff.entity';

function Logo() {
  return (
    <svg width="26" height="26" viewBox="0 0 32 32" aria-hidden="true">
      <rect width="32" height="32" rx="7" fill="#4f46e5" />
      <path d="M16 5c4 3 6 8 6 13l-3 3h-6l-3-3c0-5 2-10 6-13z" fill="#fff" />
      <circle cx="16" cy="14" r="2.2" fill="#4f46e5" />
      <path d="M13 23h6l-3 5z" fill="#fbbf24" />
    </svg>
  );
}

function SignIn({ onSignedIn, notice }: { onSignedIn: (key: string, who: Whoami) => void; notice?: string }) {
  const [key, setKey] = useState('');
  const [error, setError] = useState<string | undefined>(undefined);
  const [busy, setBusy] = useState(false);
  const form = useRef<HTMLFormElement>(null);
  const focusInvalid = useFocusFirstInvalid(form);
  useDocumentTitle('Sign in');

  const submit = async (e: FormEvent) => {
    e.preventDefault();
    const trimmed = key.trim();
    if (!trimmed) {
      setError('Enter an API key.');
      focusInvalid();
      return;
    }
    setBusy(true);
    setError(undefined);
    try {
      const who = await new Api(trimmed).whoami();
      onSignedIn(trimmed, who);
    } catch (err) {
      if (err instanceof ApiError && err.status === 401) {
        setError(`That API key was not accepted: ${err.message}`);
      } else {
        setError((err as Error).message);
      }
      focusInvalid();
    } finally {
      setBusy(false);
    }
  };

  return (
    <main className="signin">
      <ThemePicker />
      <form
        ref={form}
        className="card signin-card"
        onSubmit={(e) => void submit(e)}
        aria-labelledby="signin-title"
        noValidate
      >
        <div className="signin-brand">
          <Logo />
          <span>Liftoff</span>
        </div>
        <h1 id="signin-title">Sign in</h1>
        <p className="muted">
          Paste an API key of this server. The admin key is in <code>~/.config/liftoff/credentials</code> on the machine
          running <code>liftoff server</code>. It is kept in this browser tab only.
        </p>
        {notice && <div className="banner banner-info">{notice}</div>}
        <div className={`field${error ? ' field-invalid' : ''}`}>
          <label htmlFor="api-key">API key</label>
          <input
            id="api-key"
            name="api-key"
            type="password"
            autoComplete="off"
            spellCheck={false}
            value={key}
            onChange={(e) => setKey(e.target.value)}
            aria-invalid={Boolean(error)}
            aria-describedby={error ? 'api-key-error' : undefined}
            autoFocus
          />
          {error && (
            <p className="field-error" id="api-key-error" role="alert">
              {error}
            </p>
          )}
        </div>
        <button type="submit" className="btn btn-primary btn-block" disabled={busy}>
          {busy ? 'Signing in…' : 'Sign in'}
        </button>
      </form>
    </main>
  );
}

function EntityPicker({ entity, onChange }: { entity: string; onChange: (e: string) => void }) {
  const [value, setValue] = useState(entity);
  useEffect(() => setValue(entity), [entity]);
  return (
    <form
      className="entity-picker"
      onSubmit={(e) => {
        e.preventDefault();
        if (value.trim()) onChange(value.trim());
      }}
    >
      <label htmlFor="entity">Entity</label>
      <input id="entity" value={value} onChange={(e) => setValue(e.target.value)} size={10} />
    </form>
  );
}

const TAB_TITLE: Record<string, string> = { items: 'Items', runs: 'Runs', agents: 'Agents', config: 'Config' };

/** The document title of a route (the page's own name where the path has it). */
export function routeTitle(parts: string[]): string {
  const [a, b, c] = parts;
  if (!a || (a === 'queues' && !b)) return 'Queues';
  if (a === 'queues' && b) return `${TAB_TITLE[c ?? 'items'] ?? 'Items'} · ${b}`;
  if (a === 'runs') return b ? `Run ${b}` : 'Runs';
  if (a === 'agents' && !b) return 'Agents';
  if (a === 'items' && b) return `Item ${b}`;
  if (a === 'jobs' && b && c) return `Job ${b} v${c}`;
  if (a === 'sweeps') return b ? `Sweep ${b}` : 'Sweeps';
  return 'Page not found';
}

function Routes() {
  const location = useLocation();
  const path = location.split('?')[0] ?? '/';
  const parts = path.split('/').filter(Boolean).map(decodeURIComponent);
  useDocumentTitle(routeTitle(parts));
  useFocusHeadingOnNavigation(path);
  if (parts.length === 0 || (parts[0] === 'queues' && parts.length === 1)) return <QueuesPage />;
  if (parts[0] === 'queues' && parts[1]) return <QueuePage name={parts[1]} tab={parts[2] ?? 'items'} />;
  if (parts[0] === 'runs' && parts.length === 1) return <GlobalRunsPage />;
  if (parts[0] === 'agents' && parts.length === 1) return <AgentsPage />;
  if (parts[0] === 'runs' && parts[1]) return <RunPage id={parts[1]} />;
  if (parts[0] === 'items' && parts[1]) return <ItemPage id={parts[1]} />;
  if (parts[0] === 'sweeps' && parts.length === 1) return <SweepsPage />;
  if (parts[0] === 'sweeps' && parts[1]) return <SweepPage id={parts[1]} />;
  if (parts[0] === 'jobs' && parts[1] && parts[2]) return <JobPage name={parts[1]} version={parts[2]} />;
  return (
    <div className="page">
      <LoadError error={new ApiError(404, 'NOT_FOUND', `There is no page at ${path}.`)} />
    </div>
  );
}

export function App() {
  const [key, setKey] = useState<string | null>(() => sessionStorage.getItem(KEY_STORAGE));
  const [who, setWho] = useState<Whoami | null>(null);
  const [notice, setNotice] = useState<string | undefined>(undefined);
  const [entity, setEntityState] = useState<string>(() => sessionStorage.getItem(ENTITY_STORAGE) ?? '');

  const signOut = useCallback((reason?: string) => {
    sessionStorage.removeItem(KEY_STORAGE);
    setKey(null);
    setWho(null);
    setNotice(reason ? `Signed out: ${reason}` : undefined);
  }, []);

  // A key kept from earlier in this tab: check it again.
  useEffect(() => {
    if (!key || who) return;
    new Api(key).whoami().then(setWho, (e: unknown) => {
      if (e instanceof ApiError && e.status === 401) signOut(e.message);
      else setNotice((e as Error).message);
    });
  }, [key, who, signOut]);

  const setEntity = useCallback((e: string) => {
    sessionStorage.setItem(ENTITY_STORAGE, e);
    setEntityState(e);
    navigate('/');
  }, []);

  const session = useMemo<Session | null>(() => {
    if (!key || !who) return null;
    // whoami names the key's entity ("*": all; a key of several entities lists them with commas).
    const own = who.entity.split(',')[0]?.trim();
    const effective = entity || (own && own !== '*' ? own : 'default');
    return { api: new Api(key), whoami: who, entity: effective, setEntity, signOut };
  }, [key, who, entity, setEntity, signOut]);

  if (!key) {
    return (
      <SignIn
        notice={notice}
        onSignedIn={(k, w) => {
          sessionStorage.setItem(KEY_STORAGE, k);
          setNotice(undefined);
          setWho(w);
          setKey(k);
        }}
      />
    );
  }
  if (!session) {
    return (
      <main className="signin">
        {notice ? <ErrorBanner>{notice}</ErrorBanner> : <p className="muted">Signing in…</p>}
      </main>
    );
  }

  return (
    <SessionContext.Provider value={session}>
      <a href="#main" className="skip-link">
        Skip to content
      </a>
      <header className="topbar">
        <div className="topbar-inner">
          <Link href="/" className="brand">
            <Logo />
            <span>Liftoff</span>
          </Link>
          <nav aria-label="Main">
            <Link href="/">Queues</Link>
            <Link href="/runs">Runs</Link>
            <Link href="/agents">Agents</Link>
            <Link href="/sweeps">Sweeps</Link>
          </nav>
          <div className="topbar-right">
            <ThemePicker />
            <EntityPicker entity={session.entity} onChange={setEntity} />
            <span className="whoami" title={`role ${session.whoami.role}`}>
              {session.whoami.key_name}
            </span>
            <button type="button" className="btn btn-ghost" onClick={() => signOut()}>
              Sign out
            </button>
          </div>
        </div>
      </header>
      <main id="main" tabIndex={-1}>
        <StaleBanner />
        <Routes />
      </main>
    </SessionContext.Provider>
  );
}
