export { connectSshBuilder, SshBuilder, type SshBuilderOptions, type SshBuilderTarget } from './ssh-buildah.builder';
export { RemoteCommandError, SshConnectionError } from './connection';
export { HostKeyError, keyFingerprint } from './host-key';
export { parseSshUrl, type SshAddress } from './ssh-url';
export { shellCommand, shellQuote } from './shell-quote';
