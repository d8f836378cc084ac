import type { Kysely } from 'kysely';
import { v7 as uuidv7 } from 'uuid';
import { ConflictError, NotFoundError } from '@liftoff/core';
import type { Database } from './schema.js';

/** Users, team memberships and the entities a key may act in. */
export class Accounts {
  constructor(private readonly db: Kysely<Database>) {}

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
      await trx.insertInto('memberships').values({ entity_id: entityId, user_id: user.id, created_at: now }).execute();
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

  async addMember(entityId: string, userId: string, now: number): Promise<void> {
    const kind = await this.db.selectFrom('entities').select('kind').where('id', '=', entityId).executeTakeFirst();
    if (kind?.kind === 'user') throw new ConflictError("A user's personal entity has no other members; use a team.");
    await this.db
      .insertInto('memberships')
      .values({ entity_id: entityId, user_id: userId, created_at: now })
      .onConflict((oc) => oc.columns(['entity_id', 'user_id']).doNothing())
      .execute();
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

  async entityIdsOf(userId: string): Promise<string[]> {
    const rows = await this.db.selectFrom('memberships').select('entity_id').where('user_id', '=', userId).execute();
    return rows.map((r) => r.entity_id);
  }

  async kindOf(entityId: string): Promise<'user' | 'team'> {
    const r = await this.db.selectFrom('entities').select('kind').where('id', '=', entityId).executeTakeFirst();
    return r?.kind === 'user' ? 'user' : 'team';
  }
}
