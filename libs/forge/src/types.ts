/** The git forges the farm reports commit statuses to. Forgejo speaks Gitea's API: use `gitea`. */
export type Forge = 'github' | 'gitlab' | 'gitea';

/** The farm's commit states, in GitHub's vocabulary; each forge client maps them to its own. */
export type CommitState = 'pending' | 'success' | 'failure' | 'error';

/** Where statuses go: one project's repository on one forge. */
export interface ForgeTarget {
  forge: Forge;
  /**
   * API base URL, configurable per project:
   * GitHub `https://api.github.com` (GitHub Enterprise: `https://host/api/v3`);
   * GitLab `https://gitlab.com` or a self-hosted root (the client adds `/api/v4`);
   * Gitea / Forgejo `https://host` (the client adds `/api/v1`).
   */
  apiUrl: string;
  /**
   * `owner/repo` for GitHub and Gitea; for GitLab the project path `group/sub/project`
   * (URL-encoded as one path segment) or the numeric project id.
   */
  repository: string;
  /** API token allowed to write commit statuses. Never logged, never put in an error. */
  token: string;
}

/** One commit status: the latest one per `context` is what the forge shows. */
export interface CommitStatus {
  /** Full commit SHA (40 hex digits, or 64 for SHA-256 repositories). */
  commit: string;
  /** Status name, e.g. `buildfarm/linux-arm64` or `buildfarm/manifest` (GitLab calls it `name`). */
  context: string;
  state: CommitState;
  /** Short human text; cut to the forge's limit (GitHub: 140 characters). */
  description: string;
  /** Link shown next to the status, e.g. the build's page. http(s) only. */
  targetUrl?: string;
}
