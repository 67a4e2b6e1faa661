/** Where an SSH builder host is: parsed from `ssh://user@host[:port]`. */
export interface SshAddress {
  user: string;
  host: string;
  port: number;
}

/**
 * Parses `ssh://user@host[:port]` (port 22 by default; IPv6 hosts in brackets).
 * The user is required and a password is refused: builder hosts are reached with a key.
 */
export function parseSshUrl(url: string): SshAddress {
  const fail = (why: string): never => {
    throw new Error(`invalid SSH builder URL ${JSON.stringify(url)}: ${why} (expected ssh://user@host[:port])`);
  };
  let parsed: URL;
  try {
    parsed = new URL(url);
  } catch {
    return fail('it cannot be parsed');
  }
  if (parsed.protocol !== 'ssh:') fail(`the scheme must be ssh://, not ${parsed.protocol}//`);
  if (parsed.password !== '') fail('passwords are not accepted; use a private key');
  const user = decodeURIComponent(parsed.username);
  if (user === '') fail('the user is missing');
  if (!/^[A-Za-z0-9_][A-Za-z0-9._-]*$/.test(user)) fail('the user name is not valid');
  const host = parsed.hostname.replace(/^\[(.*)\]$/, '$1');
  if (host === '' || host.startsWith('-')) fail('the host is missing or invalid');
  if ((parsed.pathname !== '' && parsed.pathname !== '/') || parsed.search !== '' || parsed.hash !== '') {
    fail('it must not have a path, query or fragment');
  }
  return { user, host, port: parsed.port === '' ? 22 : Number(parsed.port) };
}
