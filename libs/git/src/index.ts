export { GitError, InvalidRefError, InvalidRepoPathError, InvalidRepoUrlError, RefNotFoundError } from './errors';
export { isCommitSha, validateRefName, validateRepoPath, validateRepoUrl } from './validate';
export { resolveRef, type ResolveRefOptions } from './remote';
export { resolveInCheckout } from './checkout-path';
export { GitMirrors, type MirrorEntry, type CheckoutOptions, type MirrorCheckout } from './mirror';
export type { GitTransportOptions } from './run';
export {
  deliveryInfo,
  FORGES,
  isForge,
  parsePushEvent,
  verifyWebhookSignature,
  WebhookPayloadError,
  type DeliveryInfo,
  type Forge,
  type PushIntent,
  type WebhookHeaders,
} from './webhooks';
