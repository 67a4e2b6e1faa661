export { MANIFEST_STATUS_CONTEXT, platformStatusContext } from './context';
export { ForgeStatusError } from './errors';
export type { ForgeStatusErrorOptions } from './errors';
export { ForgeStatusReporter } from './reporter';
export type { ForgeStatusReporterOptions } from './reporter';
export { repositoryFromCloneUrl } from './repository';
export type { CommitState, CommitStatus, Forge, ForgeTarget } from './types';
