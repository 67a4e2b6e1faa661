export { GitError, InvalidRefError, InvalidRepoPathError, InvalidRepoUrlError, RefNotFoundError } from './errors';
export { isCommitSha, validateRefName, validateRepoPath, validateRepoUrl } from './validate';
export { checkoutCommit, resolveRef, type CheckoutOptions, type ResolveRefOptions } from './remote';
export { resolveInCheckout } from './checkout-path';
export type { GitTransportOptions } from './run';
