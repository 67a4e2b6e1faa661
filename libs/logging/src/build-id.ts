const BUILD_ID = /\b(?:build|publish)[ -]([0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12})\b/i;

/**
 * The build a free-text log message is about: `build <id> ...`, or a job id such as
 * `build-<id>-linux-amd64` or `publish-<id>`. Lets messages written before structured logging
 * (`this.logger.warn(\`build ${id}: ...\`)`) still carry `buildId`; new code passes it as a field.
 */
export function buildIdIn(message: string): string | undefined {
  return BUILD_ID.exec(message)?.[1]?.toLowerCase();
}
