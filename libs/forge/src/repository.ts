const URL_SCHEMES: ReadonlySet<string> = new Set(['https:', 'http:', 'ssh:', 'git:', 'git+ssh:', 'ssh+git:']);
const PATH_SEGMENT = /^(?!\.{1,2}$)[A-Za-z0-9_.-]+$/;

/**
 * The forge repository path of a clone URL, for projects that did not set it explicitly:
 * `https://github.com/owner/repo.git`, `git@github.com:owner/repo.git` and
 * `ssh://git@host:2222/owner/repo` give `owner/repo`; a GitLab URL gives the whole
 * `group/sub/project`. Credentials in the URL are ignored.
 *
 * A forge served under a sub-path (`https://host/gitlab/group/project`) cannot be told apart
 * from a deeper group: such projects must set the repository explicitly.
 *
 * @throws Error for local paths, `file://` URLs and paths without an owner and a name.
 */
export function repositoryFromCloneUrl(url: string): string {
  const text = typeof url === 'string' ? url.trim() : '';
  let path: string;
  if (/^[A-Za-z][A-Za-z0-9+.-]*:\/\//.test(text)) {
    let parsed: URL;
    try {
      parsed = new URL(text);
    } catch {
      throw new Error('clone URL is not a valid URL');
    }
    if (!URL_SCHEMES.has(parsed.protocol)) {
      throw new Error(`cannot derive a forge repository from a ${parsed.protocol} URL; set the repository explicitly`);
    }
    path = decodePath(parsed.pathname);
  } else {
    // scp-like syntax, as git reads it: a colon before any slash ([user@]host:path).
    const scp = /^(?:[^@/:]+@)?(?:\[[^\]/]+\]|[^@/:]+):(.*)$/.exec(text);
    if (!scp) throw new Error('clone URL is neither a URL nor [user@]host:path; set the repository explicitly');
    path = scp[1];
  }
  const segments = path
    .replace(/^\/+|\/+$/g, '')
    .replace(/\.git$/, '')
    .split('/');
  // ssh://host/~user/repo is a home directory, not a forge owner.
  if (segments.length < 2 || !segments.every((s) => PATH_SEGMENT.test(s))) {
    throw new Error('clone URL path is not owner/repo or group/.../project; set the repository explicitly');
  }
  return segments.join('/');
}

function decodePath(pathname: string): string {
  try {
    return decodeURIComponent(pathname);
  } catch {
    throw new Error('clone URL path has a malformed percent-encoding');
  }
}
