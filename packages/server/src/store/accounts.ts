import { PostgresAdapter, type Kysely } from 'kysely';
import { v7 as uuidv7 } from 'uuid';
import { ConflictError, LastAdminError, NotFoundError, type MemberRole } from '@liftoff/core';
import type { Db } from './db.js';
import type { ReadCaches } from '../caches.js';
import type { Database } from './schema.js';

/**
 * Users, team memberships and the entities a key may act in. Keys are cached with their user's membership roles
 * (auth.ts), so every membership change drops the key cache on every replica.
 */
export class Accounts {
  constructor(
    private readonly db: Kysely<Database>,
    private readonly caches: ReadCaches,
  ) {}

  /** A user and their personal entity of the same name, of which they are the only member. */
  async createUser(name: string, now: number): Promise<{ id: string; name: string }> {
    if (await this.db.selectFrom('users').select('id').where('name', '=', name).executeTakeFirst())
      throw new ConflictError(`User "${name}" already exists.`);
    if (await this.db.selectFrom('entities').select('id').where('name', '=', name).executeTakeFirst())
      throw new ConflictError(`An entity named "${name}" already exists; a user's personal entity takes its name.`);
    const user = { id: uuidv7(), name, created_at: now };
    const entityId = uuidv7();
    await this.db.transaction().execute(async (trx) => {
      await trx.insertInto('users').values(user).execute();
      await trx
        .insertInto('entities')
        .values({ id: entityId, name, created_at: now, max_concurrency: null, kind: 'user' })
        .execute();
      await trx
        .insertInto('memberships')
        .values({ entity_id: entityId, user_id: user.id, created_at: now, role: 'admin' })
        .execute();
    });
    return { id: user.id, name };
  }

  async requireUser(name: string): Promise<{ id: string; name: string }> {
    const u = await this.db.selectFrom('users').select(['id', 'name']).where('name', '=', name).executeTakeFirst();
    if (!u) throw new NotFoundError(`User "${name}" not found. Create it with "liftoff users create ${name}".`);
    return u;
  }

  async createTeam(name: string, now: number): Promise<{ id: string; name: string }> {
    if (await this.db.selectFrom('entities').select('id').where('name', '=', name).executeTakeFirst())
      throw new ConflictError(`Entity "${name}" already exists.`);
    const id = uuidv7();
    await this.db
      .insertInto('entities')
      .values({ id, name, created_at: now, max_concurrency: null, kind: 'team' })
      .execute();
    return { id, name };
  }

  /**
   * Adds a user to a team, or changes an existing member's role. Without `role` a new member is admin when the team
   * has no admin yet (its first member owns it), else member; an existing one keeps theirs. Demoting the last admin
   * is refused.
   */
  async addMember(entityId: string, userId: string, role: MemberRole | undefined, now: number): Promise<void> {
    const kind = await this.db.selectFrom('entities').select('kind').where('id', '=', entityId).executeTakeFirst();
    if (kind?.kind === 'user') throw new ConflictError("A user's personal entity has no other members; use a team.");
    await this.caches.write(this.db, ['keys'], async (trx) => {
      const current = await trx
        .selectFrom('memberships')
        .select('role')
        .where('entity_id', '=', entityId)
        .where('user_id', '=', userId)
        .executeTakeFirst();
      if (current) {
        if (!role || role === current.role) return;
        if (current.role === 'admin') await assertNotLastAdmin(trx, entityId, userId);
        await trx
          .updateTable('memberships')
          .set({ role })
          .where('entity_id', '=', entityId)
          .where('user_id', '=', userId)
          .execute();
        return;
      }
      const admins = await adminCount(trx, entityId);
      await trx
        .insertInto('memberships')
        .values({ entity_id: entityId, user_id: userId, created_at: now, role: role ?? (admins ? 'member' : 'admin') })
        .onConflict((oc) => oc.columns(['entity_id', 'user_id']).doNothing())
        .execute();
    });
  }

  /** Removes a user from a team; 404 when they are not in it, refused for the team's last admin. */
  async removeMember(entityId: string, userId: string, userName: string): Promise<void> {
    const kind = await this.db.selectFrom('entities').select('kind').where('id', '=', entityId).executeTakeFirst();
    if (kind?.kind === 'user') throw new ConflictError("A user's personal entity keeps its user; nothing to remove.");
    await this.caches.write(this.db, ['keys'], async (trx) => {
      const current = await trx
        .selectFrom('memberships')
        .select('role')
        .where('entity_id', '=', entityId)
        .where('user_id', '=', userId)
        .executeTakeFirst();
      if (!current)
        throw new NotFoundError(`User "${userName}" is not a member; list members with "liftoff members list".`);
      if (current.role === 'admin') await assertNotLastAdmin(trx, entityId, userId);
      await trx.deleteFrom('memberships').where('entity_id', '=', entityId).where('user_id', '=', userId).execute();
    });
  }

  async memberRoles(entityId: string): Promise<Record<string, MemberRole>> {
    const rows = await this.db
      .selectFrom('memberships')
      .innerJoin('users', 'users.id', 'memberships.user_id')
      .select(['users.name', 'memberships.role'])
      .where('memberships.entity_id', '=', entityId)
      .orderBy('users.name')
      .execute();
    return Object.fromEntries(rows.map((r) => [r.name, r.role === 'admin' ? 'admin' : 'member']));
  }

  /** A user's role in each of their entities (by entity id). */
  async rolesOf(userId: string): Promise<Record<string, MemberRole>> {
    const rows = await this.db
      .selectFrom('memberships')
      .select(['entity_id', 'role'])
      .where('user_id', '=', userId)
      .execute();
    return Object.fromEntries(rows.map((r) => [r.entity_id, r.role === 'admin' ? 'admin' : 'member']));
  }

  async members(entityId: string): Promise<string[]> {
    const rows = await this.db
      .selectFrom('memberships')
      .innerJoin('users', 'users.id', 'memberships.user_id')
      .select('users.name')
      .where('memberships.entity_id', '=', entityId)
      .orderBy('users.name')
      .execute();
    return rows.map((r) => r.name);
  }

  async kindOf(entityId: string): Promise<'user' | 'team'> {
    const r = await this.db.selectFrom('entities').select('kind').where('id', '=', entityId).executeTakeFirst();
    return r?.kind === 'user' ? 'user' : 'team';
  }
}

/**
 * The entity's admins, counted inside the caller's transaction. On PostgreSQL their rows are locked (FOR UPDATE),
 * so two admins demoting each other at once cannot both see the other still there; SQLite runs one write
 * transaction at a time.
 */
async function adminCount(db: Db, entityId: string): Promise<number> {
  let q = db.selectFrom('memberships').select('user_id').where('entity_id', '=', entityId).where('role', '=', 'admin');
  if (db.getExecutor().adapter instanceof PostgresAdapter) q = q.forUpdate();
  return (await q.execute()).length;
}

/** Refuses to take away the admin role of `userId` when no other admin is left. */
async function assertNotLastAdmin(db: Db, entityId: string, userId: string): Promise<void> {
  if ((await adminCount(db, entityId)) > 1) return;
  const names = await db
    .selectFrom('users')
    .innerJoin('entities', (j) => j.on('entities.id', '=', entityId))
    .select(['users.name as user', 'entities.name as entity'])
    .where('users.id', '=', userId)
    .executeTakeFirst();
  throw new LastAdminError(names?.entity ?? entityId, names?.user ?? userId);
}
