import { useEffect, useRef, type ReactNode } from 'react';

/**
 * A modal confirmation (cancel a run, cancel many): the native <dialog> traps focus and closes on Escape. Focus
 * goes to the safe choice (keep) when it opens and back to the element that opened it when it closes, whichever
 * way it closes.
 */
export function ConfirmDialog({
  title,
  children,
  confirmLabel,
  keepLabel = 'Keep',
  busy,
  onConfirm,
  onClose,
}: {
  title: string;
  children?: ReactNode;
  confirmLabel: string;
  keepLabel?: string;
  busy?: boolean;
  onConfirm: () => void;
  onClose: () => void;
}) {
  const dialog = useRef<HTMLDialogElement>(null);
  const keep = useRef<HTMLButtonElement>(null);
  useEffect(() => {
    const trigger = document.activeElement instanceof HTMLElement ? document.activeElement : null;
    const d = dialog.current;
    if (d && !d.open) d.showModal();
    keep.current?.focus();
    return () => {
      if (d?.open) d.close();
      // The trigger may have been re-rendered away (a row that changed): then focus stays where the page puts it.
      if (trigger?.isConnected) trigger.focus();
    };
  }, []);
  return (
    <dialog
      ref={dialog}
      className="dialog dialog-confirm"
      aria-labelledby="confirm-title"
      onCancel={(e) => {
        e.preventDefault();
        onClose();
      }}
    >
      <form
        method="dialog"
        onSubmit={(e) => {
          e.preventDefault();
          onConfirm();
        }}
      >
        <header className="dialog-head">
          <h2 id="confirm-title">{title}</h2>
        </header>
        <div className="dialog-body">{children}</div>
        <footer className="dialog-foot">
          <button type="button" className="btn" ref={keep} onClick={onClose}>
            {keepLabel}
          </button>
          <button type="submit" className="btn btn-danger" disabled={busy}>
            {confirmLabel}
          </button>
        </footer>
      </form>
    </dialog>
  );
}
