/**
 * The server's queue config problems ("resource_args.local-container.privileged: is refused: ...", one per entry
 * of a CONFIG_INVALID answer) worded for the "New queue" form: the field named by its label in the form, and each
 * problem filed under the form field it is about, so the form shows all of them at once, each next to its input.
 */

export interface FormProblem {
  /** The form field: name, resource, resource_args, or '' for one the form has no input for. */
  field: 'name' | 'resource' | 'resource_args' | '';
  /** The line shown to the user. */
  text: string;
}

export function formProblem(line: string, resource: string): FormProblem {
  const at = line.indexOf(': ');
  const path = at > 0 && !/\s/.test(line.slice(0, at)) ? line.slice(0, at) : '';
  const message = path ? line.slice(at + 2) : line;
  const text = (label: string) => `${label}: ${message}`;
  if (path === 'name') return { field: 'name', text: text('Name') };
  if (path === 'resource') return { field: 'resource', text: text('Resource type') };
  if (path === 'resource_args' || path.startsWith('resource_args.')) {
    const rest = path.split('.').slice(1);
    // The form's text is the resource's own section, so its keys are named without the section.
    const key = rest[0] === resource ? rest.slice(1) : rest;
    return { field: 'resource_args', text: text(key.length ? `Resource config, ${key.join('.')}` : 'Resource config') };
  }
  if (path.startsWith('template_variables.')) {
    const name = path.split('.')[1] ?? '';
    return { field: 'resource_args', text: text(`Template variable “${name}”`) };
  }
  return { field: '', text: path ? text(path) : message };
}
