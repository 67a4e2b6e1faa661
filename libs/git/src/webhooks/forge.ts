/** The git forges whose push webhooks the farm understands. Forgejo speaks Gitea's dialect: use `gitea`. */
export type Forge = 'github' | 'gitlab' | 'gitea';

/** Every {@link Forge}, e.g. to validate the `{forge}` segment of a hook URL. */
export const FORGES: readonly Forge[] = ['github', 'gitlab', 'gitea'];

/** True when `value` names a supported forge. */
export function isForge(value: unknown): value is Forge {
  return typeof value === 'string' && (FORGES as readonly string[]).includes(value);
}

/** Request headers as Node gives them (`IncomingMessage.headers`): names lower-cased. */
export type WebhookHeaders = Record<string, string | string[] | undefined>;

/**
 * The single value of a header, or undefined when it is absent or was sent more than once (a
 * signature or delivery id given twice is ambiguous, so it counts as missing). `name` is lower
 * case; other spellings of the name are found too, for callers that did not lower-case.
 */
export function headerValue(headers: WebhookHeaders, name: string): string | undefined {
  let value = Object.hasOwn(headers, name) ? headers[name] : undefined;
  if (value === undefined) {
    const key = Object.keys(headers).find((k) => k.toLowerCase() === name);
    value = key === undefined ? undefined : headers[key];
  }
  if (Array.isArray(value)) return value.length === 1 ? value[0] : undefined;
  return value;
}
