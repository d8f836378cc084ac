/**
 * The runs table's state in the URL (`?columns=config.lr,metric.loss&sort=-metric.loss&compare=ID,ID`), so a reload
 * or a shared link shows the same table. The cursor is not kept: a reload starts from the first page.
 */
export interface RunsView {
  path: string;
  columns: string[];
  sort: string;
  compare: string[];
}

/** The API's bound on columns per request (runColumns.ts MAX_COLUMNS). */
export const MAX_TABLE_COLUMNS = 20;
const DEFAULT_SORT = '-created_at';
const list = (v: string | null) => (v ?? '').split(',').filter(Boolean);

export function readRunsView(location: string): RunsView {
  const [path = '/', query = ''] = location.split('?');
  const p = new URLSearchParams(query);
  return {
    path,
    columns: list(p.get('columns')).slice(0, MAX_TABLE_COLUMNS),
    sort: p.get('sort') || DEFAULT_SORT,
    compare: list(p.get('compare')),
  };
}

export function runsViewHref(view: RunsView): string {
  const p = new URLSearchParams();
  if (view.columns.length) p.set('columns', view.columns.join(','));
  if (view.sort !== DEFAULT_SORT) p.set('sort', view.sort);
  if (view.compare.length) p.set('compare', view.compare.join(','));
  const q = p.toString();
  return q ? `${view.path}?${q}` : view.path;
}
