import type { Api, ItemState, RunFilters } from './api.js';

/**
 * What the UI reads from the API, each under one cache key (TanStack Query, see poll.ts): two views of the same
 * resource share its cache entry and its request. A key names the resource and its arguments only; poll.ts puts
 * the signed-in key's identity and the entity in front of it, so another key or entity never sees this one's data.
 */
export interface Resource<T> {
  key: readonly unknown[];
  load: (api: Api) => Promise<T>;
}

const resource = <T>(key: readonly unknown[], load: (api: Api) => Promise<T>): Resource<T> => ({ key, load });

type ItemPageQuery = Parameters<Api['itemPage']>[2];
type RunListQuery = RunFilters & { columns?: string; sort?: string; cursor?: string; limit?: number };

export const res = {
  queues: (entity: string) => resource(['queues', entity], (api) => api.queues(entity)),
  queue: (entity: string, name: string) => resource(['queue', entity, name], (api) => api.queue(entity, name)),
  agents: (entity: string) => resource(['agents', entity], (api) => api.agents(entity)),
  /** A queue's latest runs (its charts and Runs tab). */
  queueRuns: (entity: string, queue: string, limit: number) =>
    resource(['queueRuns', entity, queue, limit], (api) => api.runs(entity, queue, limit)),
  items: (entity: string, queue: string, state: ItemState | undefined, limit: number) =>
    resource(['items', entity, queue, state ?? '', limit], (api) => api.items(entity, queue, state, limit)),
  itemPage: (entity: string, queue: string, query: ItemPageQuery) =>
    resource(['itemPage', entity, queue, query], (api) => api.itemPage(entity, queue, query)),
  item: (id: string) => resource(['item', id], (api) => api.item(id)),
  run: (id: string) => resource(['run', id], (api) => api.run(id)),
  /** `phase` is part of the key so a run that just ended reads its outputs once more (they come just before). */
  runOutputs: (id: string, phase: 'live' | 'ended') => resource(['runOutputs', id, phase], (api) => api.runOutputs(id)),
  runList: (entity: string, query: RunListQuery) =>
    resource(['runList', entity, query], (api) => api.runList(entity, query)),
  runKeys: (entity: string, queue: string | undefined) =>
    resource(['runKeys', entity, queue ?? ''], (api) => api.runKeys(entity, queue)),
  jobs: (entity: string) => resource(['jobs', entity], (api) => api.listJobs(entity)),
  jobVersion: (entity: string, name: string, ref: string) =>
    resource(['jobVersion', entity, name, ref], (api) => api.jobVersion(entity, name, ref)),
  sweeps: (entity: string) => resource(['sweeps', entity], (api) => api.sweeps(entity)),
  sweep: (entity: string, id: string) => resource(['sweep', entity, id], (api) => api.sweep(entity, id)),
};
