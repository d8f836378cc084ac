import type { ReactNode, ThHTMLAttributes } from 'react';

/**
 * The one table of the list pages (the global runs, the agents, a queue's items): columns declared once with a
 * header and a cell, optional row selection by checkbox, and a pager. Pages keep their own data and paging state;
 * this only renders it, so every list looks and reads the same to a screen reader. Below 640 px wide the rows
 * become cards (styles.css "tables as cards"): each cell shows its column's label (data-label) before its value.
 */
export interface TableColumn<T> {
  id: string;
  header: ReactNode;
  /** The column's name on a phone, where each row is a card; defaults to the header when that is text. */
  label?: string;
  cell: (row: T) => ReactNode;
  numeric?: boolean;
  /** Extra attributes of the header cell (e.g. aria-sort). */
  th?: ThHTMLAttributes<HTMLTableCellElement> & Record<`data-${string}`, string>;
  /** Extra attributes of each body cell (data-* hooks for tests and styles). */
  td?: Record<`data-${string}`, string>;
  className?: string;
}

export interface Selection {
  selected: ReadonlySet<string>;
  toggle: (id: string) => void;
  /** Selects (or, when all are selected, clears) every selectable row of the page. */
  toggleAll: (ids: string[]) => void;
  /** Rows that cannot be selected (e.g. runs already ended) get no checkbox. */
  selectable: (id: string) => boolean;
  label: (id: string) => string;
}

export function DataTable<T>({
  label,
  columns,
  rows,
  rowKey,
  rowAttrs,
  selection,
}: {
  label: string;
  columns: TableColumn<T>[];
  rows: T[];
  rowKey: (row: T) => string;
  rowAttrs?: (row: T) => Record<string, string>;
  selection?: Selection;
}) {
  const selectable = selection ? rows.map(rowKey).filter((id) => selection.selectable(id)) : [];
  const allOn = selectable.length > 0 && selectable.every((id) => selection?.selected.has(id));
  return (
    <div className="card table-card">
      <table className="table table-cards" aria-label={label}>
        <thead>
          <tr>
            {selection && (
              <th scope="col" className="select">
                <input
                  type="checkbox"
                  aria-label={`Select all ${selectable.length} on this page`}
                  checked={allOn}
                  disabled={selectable.length === 0}
                  onChange={() => selection.toggleAll(selectable)}
                />
              </th>
            )}
            {columns.map((c) => (
              <th key={c.id} scope="col" className={c.numeric ? 'num' : undefined} {...c.th}>
                {c.header}
              </th>
            ))}
          </tr>
        </thead>
        <tbody>
          {rows.map((r) => {
            const id = rowKey(r);
            return (
              <tr key={id} {...rowAttrs?.(r)}>
                {selection && (
                  <td className="select">
                    {selection.selectable(id) && (
                      <input
                        type="checkbox"
                        aria-label={selection.label(id)}
                        checked={selection.selected.has(id)}
                        onChange={() => selection.toggle(id)}
                      />
                    )}
                  </td>
                )}
                {columns.map((c) => (
                  <td
                    key={c.id}
                    className={[c.numeric ? 'num' : '', c.className ?? ''].join(' ').trim() || undefined}
                    data-label={c.label ?? (typeof c.header === 'string' ? c.header : undefined)}
                    {...c.td}
                  >
                    {c.cell(r)}
                  </td>
                ))}
              </tr>
            );
          })}
        </tbody>
      </table>
    </div>
  );
}

/**
 * First / Previous / Next / Last by cursor; a button is disabled when the list cannot go that way. `ends` says
 * which of First and Last the list offers at all (the runs list cannot start from its end).
 */
export function Pager({
  label,
  ends = 'none',
  onFirst,
  onPrev,
  onNext,
  onLast,
  note,
}: {
  label: string;
  ends?: 'both' | 'first' | 'none';
  onFirst?: (() => void) | undefined;
  onPrev?: (() => void) | undefined;
  onNext?: (() => void) | undefined;
  onLast?: (() => void) | undefined;
  note?: ReactNode;
}) {
  const button = (text: string, fn: (() => void) | undefined) => (
    <button type="button" className="btn btn-small" disabled={!fn} onClick={fn}>
      {text}
    </button>
  );
  return (
    <nav className="pager" aria-label={label}>
      {note && <span className="muted small pager-note">{note}</span>}
      {ends !== 'none' && button('First', onFirst)}
      {button('Previous', onPrev)}
      {button('Next', onNext)}
      {ends === 'both' && button('Last', onLast)}
    </nav>
  );
}
