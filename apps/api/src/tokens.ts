/** Injection tokens for the api's infrastructure. */
export const API_CONFIG = Symbol('API_CONFIG');
export const REDIS = Symbol('REDIS');
export const FLOW_PRODUCER = Symbol('FLOW_PRODUCER');
