/** Injection tokens for the coordinator's infrastructure. */
export const COORDINATOR_CONFIG = Symbol('COORDINATOR_CONFIG');
export const REDIS = Symbol('REDIS');
export const REGISTRY = Symbol('REGISTRY');
