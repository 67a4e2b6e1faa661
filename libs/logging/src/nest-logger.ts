import type { LoggerService } from '@nestjs/common';
import type { Level, Logger } from 'pino';
import { buildIdIn } from './build-id';

type Fields = Record<string, unknown>;

function looksLikeStack(value: unknown): value is string {
  return typeof value === 'string' && /\n\s+at /.test(value);
}

/**
 * Nest's LoggerService on a pino logger: `new Logger(Ctx).warn(msg)` becomes one JSON line with
 * `context: "Ctx"`. A message may be an object (`{ msg, buildId, ... }`), whose fields are
 * kept; a string message naming a build (`build <id> ...`) gets `buildId` too.
 */
export class NestLogger implements LoggerService {
  constructor(private readonly logger: Logger) {}

  log(message: unknown, ...params: unknown[]): void {
    this.write('info', message, params);
  }

  error(message: unknown, ...params: unknown[]): void {
    this.write('error', message, params, true);
  }

  warn(message: unknown, ...params: unknown[]): void {
    this.write('warn', message, params);
  }

  debug(message: unknown, ...params: unknown[]): void {
    this.write('debug', message, params);
  }

  verbose(message: unknown, ...params: unknown[]): void {
    this.write('trace', message, params);
  }

  fatal(message: unknown, ...params: unknown[]): void {
    this.write('fatal', message, params);
  }

  private write(level: Level, message: unknown, params: unknown[], isError = false): void {
    if (!this.logger.isLevelEnabled(level)) return;
    const fields: Fields = {};
    const rest = [...params];
    // Nest appends the logger's context last, and error() puts a stack (or undefined) before it.
    if (rest.length > 0 && typeof rest[rest.length - 1] === 'string' && !looksLikeStack(rest[rest.length - 1])) {
      fields.context = rest.pop();
    }
    if (isError && rest.length > 0 && (rest[0] === undefined || looksLikeStack(rest[0]))) {
      const stack = rest.shift();
      if (stack !== undefined) fields.stack = stack;
    }
    if (rest.length > 0) fields.args = rest;

    let msg: string;
    if (message instanceof Error) {
      fields.err = message;
      msg = message.message;
    } else if (typeof message === 'object' && message !== null) {
      const { msg: text, message: altText, ...own } = message as Fields;
      Object.assign(fields, own);
      msg = typeof text === 'string' ? text : typeof altText === 'string' ? altText : '';
    } else {
      msg = String(message);
    }
    if (fields.buildId === undefined) {
      const buildId = buildIdIn(msg);
      if (buildId) fields.buildId = buildId;
    }
    this.logger[level](fields, msg);
  }
}
