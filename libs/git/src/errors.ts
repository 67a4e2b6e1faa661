/** A git command failed. The message ends with the tail of git's stderr, with any credentials redacted. */
export class GitError extends Error {
  constructor(
    message: string,
    /** git's exit code, or null when it was killed (timeout, cancel). */
    readonly exitCode: number | null = null,
  ) {
    super(message);
    this.name = new.target.name;
  }
}

/** The ref (or commit) does not exist in the remote repository. Retrying will not help. */
export class RefNotFoundError extends GitError {}

/** A repository URL that this farm refuses to hand to git (unsafe transport, option injection, credentials...). */
export class InvalidRepoUrlError extends Error {
  constructor(message: string) {
    super(message);
    this.name = new.target.name;
  }
}

/** A ref name or commit SHA that is not well formed. */
export class InvalidRefError extends Error {
  constructor(message: string) {
    super(message);
    this.name = new.target.name;
  }
}

/** A repository-relative path (Dockerfile, build context) that is malformed or escapes the checkout. */
export class InvalidRepoPathError extends Error {
  constructor(
    /** The request field the path came from, e.g. `dockerfile` or `context`. */
    readonly field: string,
    message: string,
  ) {
    super(message);
    this.name = new.target.name;
  }
}
