import type { CachePruneStep } from './builder';
import { diskUsageOf, pruneWhileFull, type DiskUsage } from './cache-pruner';

describe('diskUsageOf', () => {
  test('counts as df does: blocks reserved for root are neither used nor available', () => {
    // statfs of this machine's disk as `df` showed it: 25388448 kB used, 81002464 kB available, 24%.
    const usage = diskUsageOf({ bsize: 4096, blocks: 66_053_021, bfree: 59_705_917, bavail: 20_250_624 });
    expect(usage.usedPercent).toBeCloseTo((6_347_104 * 100) / (6_347_104 + 20_250_624), 6);
    expect(Math.ceil(usage.usedPercent)).toBe(24);
    expect(usage.availableBytes).toBe(20_250_624 * 4096);
  });

  test('a full disk is 100% used, an empty one 0%', () => {
    expect(diskUsageOf({ bsize: 4096, blocks: 100, bfree: 5, bavail: 0 }).usedPercent).toBe(100);
    expect(diskUsageOf({ bsize: 4096, blocks: 100, bfree: 100, bavail: 95 }).usedPercent).toBe(0);
  });
});

describe('pruneWhileFull', () => {
  /** A disk of 100 GB whose steps each free their size; the usage the pruner reads is this disk's. */
  function disk(usedGb: number, stepSizesGb: number[]) {
    const taken: string[] = [];
    const log: string[] = [];
    const usage = async (): Promise<DiskUsage> => ({ usedPercent: usedGb, availableBytes: (100 - usedGb) * 1e9 });
    async function* steps(): AsyncGenerator<CachePruneStep> {
      for (const [i, size] of stepSizesGb.entries()) {
        yield {
          what: `step ${i}`,
          remove: async () => {
            if (size < 0) throw new Error('refused');
            taken.push(`step ${i}`);
            usedGb -= size;
          },
        };
      }
    }
    return { steps, usage, taken, log: (line: string) => log.push(line), lines: log };
  }
  const thresholds = { highPercent: 85, lowPercent: 70 };

  test('at or below the high mark nothing goes', async () => {
    for (const used of [10, 85]) {
      const d = disk(used, [5, 5]);
      expect(await pruneWhileFull(d.steps(), { thresholds, usage: d.usage, log: d.log })).toBeUndefined();
      expect(d.taken).toEqual([]);
      expect(d.lines).toEqual([]);
    }
  });

  test('above it, steps go in their order until the disk is below the low mark', async () => {
    const d = disk(90, [5, 10, 3, 20]);
    const report = await pruneWhileFull(d.steps(), { thresholds, usage: d.usage, log: d.log });
    // 90 -> 85 -> 75 -> 72 -> 52: the fourth step was needed, no fifth was asked for.
    expect(d.taken).toEqual(['step 0', 'step 1', 'step 2', 'step 3']);
    expect(report!.removed).toEqual([
      { what: 'step 0', freedBytes: 5e9 },
      { what: 'step 1', freedBytes: 10e9 },
      { what: 'step 2', freedBytes: 3e9 },
      { what: 'step 3', freedBytes: 20e9 },
    ]);
    expect(report!.after.usedPercent).toBe(52);
    expect(d.lines[0]).toMatch(/the disk is 90.0% used, more than 85%: pruning caches until it is below 70%/);
    expect(d.lines.at(-1)).toMatch(/4 removed, 38.0 GB freed in [\d.]+ s; the disk is 52.0% used$/);
  });

  test('stops as soon as the disk is below the low mark', async () => {
    const d = disk(90, [25, 10]);
    await pruneWhileFull(d.steps(), { thresholds, usage: d.usage, log: d.log });
    expect(d.taken).toEqual(['step 0']);
  });

  test('a disk still full when the steps run out is reported so', async () => {
    const d = disk(99, [1, 1]);
    const report = await pruneWhileFull(d.steps(), { thresholds, usage: d.usage, log: d.log });
    expect(d.taken).toEqual(['step 0', 'step 1']);
    expect(report!.after.usedPercent).toBe(97);
    expect(d.lines.at(-1)).toMatch(/the disk is 97.0% used, nothing more to prune$/);
  });

  test('a step that fails is logged and the next one taken', async () => {
    const d = disk(90, [-1, 30]);
    const report = await pruneWhileFull(d.steps(), { thresholds, usage: d.usage, log: d.log });
    expect(d.taken).toEqual(['step 1']);
    expect(report!.removed.map((r) => r.what)).toEqual(['step 1']);
    expect(d.lines).toContain('cache prune: could not remove step 0: refused');
  });

  test('with both marks at 0 everything goes', async () => {
    const d = disk(50, [1, 1, 1]);
    await pruneWhileFull(d.steps(), { thresholds: { highPercent: 0, lowPercent: 0 }, usage: d.usage, log: d.log });
    expect(d.taken).toEqual(['step 0', 'step 1', 'step 2']);
  });
});
