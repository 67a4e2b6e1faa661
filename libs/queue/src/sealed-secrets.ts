import { createCipheriv, createDecipheriv, randomBytes } from 'node:crypto';
import { UnrecoverableError } from 'bullmq';

/**
 * Build secrets (`RUN --mount=type=secret,id=NAME`) travel sealed: the api encrypts them once
 * with FARM_SECRETS_KEY, a key it shares with the agents only (the coordinator never needs
 * them), and the sealed text is what PostgreSQL stores and what job payloads in Redis carry.
 * An agent opens them right before the build. So neither a database dump, nor a look at Redis,
 * nor a Redis ACL user fenced to the farm's keys without the key reveals a secret, and retries
 * and the reconciler can enqueue the build again from its row without asking the client.
 *
 * AES-256-GCM; the build id is authenticated data, so sealed secrets copied into another
 * build's payload do not open.
 */

const VERSION = 'v1';
const IV_BYTES = 12;

/** A build secret's id: what the Dockerfile names in `--mount=type=secret,id=...`. */
export const SECRET_NAME = /^[A-Za-z0-9_][A-Za-z0-9_.-]{0,63}$/;

function additionalData(buildId: string): Buffer {
  return Buffer.from(`buildfarm secrets ${VERSION} ${buildId}`);
}

/** Seals `secrets` (name -> value) for the build `buildId`: `v1.<iv>.<ciphertext>.<tag>`, base64url. */
export function sealSecrets(secrets: Record<string, string>, key: Buffer, buildId: string): string {
  const iv = randomBytes(IV_BYTES);
  const cipher = createCipheriv('aes-256-gcm', key, iv);
  cipher.setAAD(additionalData(buildId));
  const ciphertext = Buffer.concat([cipher.update(JSON.stringify(secrets), 'utf8'), cipher.final()]);
  return [VERSION, iv, ciphertext, cipher.getAuthTag()]
    .map((part) => (typeof part === 'string' ? part : part.toString('base64url')))
    .join('.');
}

/**
 * Opens what {@link sealSecrets} sealed for `buildId`.
 * @throws UnrecoverableError when the key is missing or another one, or the text was altered:
 * the job fails at once with a message that names no secret.
 */
export function openSecrets(sealed: string, key: Buffer | undefined, buildId: string): Record<string, string> {
  if (!key) {
    throw new UnrecoverableError(
      'the build has secrets but this agent has no FARM_SECRETS_KEY (it must be the one the api has)',
    );
  }
  const [version, iv, ciphertext, tag, ...rest] = sealed.split('.');
  if (version !== VERSION || !iv || !ciphertext || !tag || rest.length > 0) {
    throw new UnrecoverableError('the build secrets are not in a format this agent reads');
  }
  let text: string;
  try {
    const decipher = createDecipheriv('aes-256-gcm', key, Buffer.from(iv, 'base64url'));
    decipher.setAAD(additionalData(buildId));
    decipher.setAuthTag(Buffer.from(tag, 'base64url'));
    text = Buffer.concat([decipher.update(Buffer.from(ciphertext, 'base64url')), decipher.final()]).toString('utf8');
  } catch {
    throw new UnrecoverableError(
      "the build secrets do not open with this agent's FARM_SECRETS_KEY (another key than the api's, or altered)",
    );
  }
  const secrets = JSON.parse(text) as Record<string, unknown>;
  for (const [name, value] of Object.entries(secrets)) {
    if (!SECRET_NAME.test(name) || typeof value !== 'string') {
      throw new UnrecoverableError('the build secrets are malformed');
    }
  }
  return secrets as Record<string, string>;
}

/**
 * Replaces every secret value in `text` with `***`, for build logs and error messages: a
 * Dockerfile that prints a secret must not publish it. Values shorter than 4 characters are
 * left alone (masking every "a" would garble logs and protect nothing).
 */
export function maskSecrets(text: string, secrets: Record<string, string>): string {
  let masked = text;
  for (const value of Object.values(secrets)) {
    // A multi-line secret (a key, a certificate) reaches a log line by line.
    const lines = value.split(/\r?\n/).filter((line) => line.trim().length >= 8);
    for (const part of [value, ...lines]) {
      if (part.length >= 4) masked = masked.split(part).join('***');
    }
  }
  return masked;
}
