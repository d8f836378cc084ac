/**
 * Where built images live. `local` keeps them in the engine's image store; an OCI registry receives a push and is
 * asked, through the registry API, whether a tag already exists (so a build can be skipped on a clean engine).
 */
export interface Registry {
  /** Repository (without tag) that built images are named under. */
  readonly repository: string;
  imageExists(image: string): Promise<boolean>;
  /** Makes a locally built image available to runners (a push, or nothing for the local store). */
  publish(image: string, onLog: (text: string) => void): Promise<void>;
}
