import { QueryClientProvider } from '@tanstack/react-query';
import { useCallback, useEffect, useMemo, useRef, useState, type FormEvent, type ReactNode } from 'react';
import { Route, Switch } from 'wouter';
import { ThemePicker, useDocumentTitle, useFocusFirstInvalid, useFocusHeadingOnNavigation } from './a11y.js';
import { Api, ApiError, type Whoami } from './api.js';
import { SessionContext, type Session } from './hooks.js';
import { clearCache, queryClient } from './poll.js';
import { AppRouter, Link, navigate, useUrl } from './router.js';
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

type Params = Record<string, string | undefined>;
/** `s` decoded, or as it is where its escapes are malformed (a hand-typed address). */
const tryDecode = (s: string, decode: (s: string) => string): string => {
  try {
    return decode(s);
  } catch {
    return s;
  }
};
/** A path parameter as the page needs it: the router hands it over as the address bar has it (router.tsx). */
const param = (p: Params, name: string): string => tryDecode(p[name] ?? '', decodeURIComponent);

interface AppRoute {
  path: string;
  title: (p: Params) => string;
  page: (p: Params) => ReactNode;
}

/** Every page of the UI: its path (wouter's syntax), its document title and what it renders. */
const ROUTES: AppRoute[] = [
  { path: '/', title: () => 'Queues', page: () => <QueuesPage /> },
  { path: '/queues', title: () => 'Queues', page: () => <QueuesPage /> },
  {
    path: '/queues/:name/:tab?',
    title: (p) => `${TAB_TITLE[param(p, 'tab') || 'items'] ?? 'Items'} · ${param(p, 'name')}`,
    page: (p) => <QueuePage name={param(p, 'name')} tab={param(p, 'tab') || 'items'} />,
  },
  { path: '/runs', title: () => 'Runs', page: () => <GlobalRunsPage /> },
  { path: '/runs/:id', title: (p) => `Run ${param(p, 'id')}`, page: (p) => <RunPage id={param(p, 'id')} /> },
  { path: '/agents', title: () => 'Agents', page: () => <AgentsPage /> },
  { path: '/items/:id', title: (p) => `Item ${param(p, 'id')}`, page: (p) => <ItemPage id={param(p, 'id')} /> },
  { path: '/sweeps', title: () => 'Sweeps', page: () => <SweepsPage /> },
  { path: '/sweeps/:id', title: (p) => `Sweep ${param(p, 'id')}`, page: (p) => <SweepPage id={param(p, 'id')} /> },
  {
    path: '/jobs/:name/:version',
    title: (p) => `Job ${param(p, 'name')} v${param(p, 'version')}`,
    page: (p) => <JobPage name={param(p, 'name')} version={param(p, 'version')} />,
  },
];

/** A route's page with its document title. */
function RoutePage({ route, params }: { route: AppRoute; params: Params }) {
  useDocumentTitle(route.title(params));
  return route.page(params);
}

function NotFound() {
  const path = useUrl().split('?')[0] ?? '/';
  useDocumentTitle('Page not found');
  return (
    <div className="page">
      <LoadError error={new ApiError(404, 'NOT_FOUND', `There is no page at ${tryDecode(path, decodeURI)}.`)} />
    </div>
  );
}

function Routes() {
  const path = useUrl().split('?')[0] ?? '/';
  useFocusHeadingOnNavigation(path);
  return (
    <Switch>
      {ROUTES.map((r) => (
        <Route key={r.path} path={r.path}>
          {(params: Params) => <RoutePage route={r} params={params} />}
        </Route>
      ))}
      <Route>
        <NotFound />
      </Route>
    </Switch>
  );
}

export function App() {
  return (
    <QueryClientProvider client={queryClient}>
      <AppRouter>
        <Shell />
      </AppRouter>
    </QueryClientProvider>
  );
}

/** Sign-ins of this tab so far, for Session.keyId. */
let signIns = 0;

function Shell() {
  const [key, setKey] = useState<string | null>(() => sessionStorage.getItem(KEY_STORAGE));
  const [who, setWho] = useState<Whoami | null>(null);
  const [notice, setNotice] = useState<string | undefined>(undefined);
  const [entity, setEntityState] = useState<string>(() => sessionStorage.getItem(ENTITY_STORAGE) ?? '');

  const signOut = useCallback((reason?: string) => {
    sessionStorage.removeItem(KEY_STORAGE);
    // Nothing the key read stays behind for whoever signs in next.
    clearCache();
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

  // A new id for each key taken (useMemo: the same one on every render with that key).
  const keyId = useMemo(() => (key ? String(++signIns) : ''), [key]);
  const session = useMemo<Session | null>(() => {
    if (!key || !who) return null;
    // whoami names the key's entity ("*": all; a key of several entities lists them with commas).
    const own = who.entity.split(',')[0]?.trim();
    const effective = entity || (own && own !== '*' ? own : 'default');
    return { api: new Api(key), keyId, whoami: who, entity: effective, setEntity, signOut };
  }, [key, keyId, who, entity, setEntity, signOut]);

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
