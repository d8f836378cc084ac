import { createContext, useContext, useEffect, useState } from 'react';
import type { Api, Whoami } from './api.js';

/** How often pages ask for what they show, unless they say otherwise. */
export const POLL_MS = 2000;

export interface Session {
  api: Api;
  /**
   * Which sign-in this is: a fresh id each time a key is taken (the API does not name a key's id to its holder).
   * The data cache's keys start with it, so what one key read is never shown to another.
   */
  keyId: string;
  whoami: Whoami;
  entity: string;
  setEntity: (entity: string) => void;
  /** Called when the API answers 401: the key stopped working. */
  signOut: (reason?: string) => void;
}

export const SessionContext = createContext<Session | null>(null);

export function useSession(): Session {
  const s = useContext(SessionContext);
  if (!s) throw new Error('useSession outside SessionContext');
  return s;
}

/** Re-renders every `ms` so relative times ("5 s ago") stay current. */
export function useNow(ms = 1000): number {
  const [now, setNow] = useState(Date.now());
  useEffect(() => {
    const t = setInterval(() => setNow(Date.now()), ms);
    return () => clearInterval(t);
  }, [ms]);
  return now;
}
