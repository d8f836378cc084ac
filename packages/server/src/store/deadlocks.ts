import type { DialectName } from './database.js';

/** PostgreSQL's answer to a deadlock: another transaction won; this one was rolled back whole and may run again. */
export const DEADLOCK = '40P01';

/**
 * Runs `transaction` again when PostgreSQL rolled it back for a deadlock (at most `attempts` times). Safe only for a
 * whole transaction: nothing of a rolled-back attempt was kept. Claims, acks and re-registrations lock item rows in
 * different orders (a claim in dispatch order, an ack in id order, a requeue in scan order), and a fixed order across
 * all of them would cost the indexes each uses; a lost race is retried instead, as the loser of a deadlock should be.
 */
export async function retryDeadlocks<T>(dialect: DialectName, transaction: () => Promise<T>, attempts = 3): Promise<T> {
  for (let attempt = 1; ; attempt++) {
    try {
      return await transaction();
    } catch (e) {
      const code = (e as { code?: unknown }).code;
      if (dialect !== 'postgres' || code !== DEADLOCK || attempt >= attempts) throw e;
    }
  }
}
