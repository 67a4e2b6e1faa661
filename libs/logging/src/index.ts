export { createLogger, scrubSecrets, REDACT_PATHS, REDACTED, type CreateLoggerOptions, type Logger } from './logger';
export { runWithLogContext, addLogContext, logContext, type LogFields } from './context';
export { NestLogger } from './nest-logger';
export { requestLogging, REQUEST_ID_HEADER, type RequestLoggingOptions } from './http';
export { buildIdIn } from './build-id';
