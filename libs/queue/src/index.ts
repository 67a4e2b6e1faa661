export * from './names';
export * from './payloads';
export * from './job-options';
export * from './flow';
export * from './agent-protocol';
export * from './connection';
export * from './logs';
export * from './agent-presence';
