import type { PrismaService } from './prisma.service';

/**
 * Runs `work` unless another process holds the PostgreSQL advisory lock `key`: for periodic
 * passes every coordinator runs, which one at a time must do. The lock is transaction-scoped, so
 * it ends with the pass, or with the connection of a process that died mid-pass. Resolves with
 * whether `work` ran.
 */
export async function runExclusively(
  prisma: PrismaService,
  key: number,
  timeoutMs: number,
  work: () => Promise<void>,
): Promise<boolean> {
  return prisma.$transaction(
    async (tx) => {
      const [{ locked }] = await tx.$queryRaw<
        { locked: boolean }[]
      >`SELECT pg_try_advisory_xact_lock(${key}) AS locked`;
      if (locked) await work();
      return locked;
    },
    { timeout: timeoutMs },
  );
}
