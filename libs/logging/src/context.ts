import { AsyncLocalStorage } from 'node:async_hooks';

/** Fields every log line written in the current context carries (request id, build id, ...). */
export type LogFields = Record<string, string | number | boolean | undefined>;

const storage = new AsyncLocalStorage<LogFields>();

/**
 * Runs `fn` with `fields` added to every log line it (and whatever it starts) writes; nested
 * contexts inherit the outer fields.
 */
export function runWithLogContext<T>(fields: LogFields, fn: () => T): T {
  return storage.run({ ...storage.getStore(), ...fields }, fn);
}

/**
 * Adds fields to the current context, e.g. the id of a build once a request has created it.
 * Outside any context this does nothing: there is nothing the fields could belong to.
 */
export function addLogContext(fields: LogFields): void {
  const store = storage.getStore();
  if (store) Object.assign(store, fields);
}

/** The current context's fields (empty outside any context). */
export function logContext(): LogFields {
  return storage.getStore() ?? {};
}
