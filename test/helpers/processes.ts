import type { ChildProcess } from 'node:child_process';
import { stopProcess } from '../../scripts/lib/processes';

/** Children still running, killed if the test process exits without stopping them. */
const live = new Set<ChildProcess>();
const killLive = (): void => {
  for (const child of live) if (child.pid !== undefined) process.kill(child.pid, 'SIGKILL');
};

/** Kills `child` should the test process exit before `stopTracked` stopped it. */
export function track(child: ChildProcess): void {
  // Registered only while needed, so many test files in one worker do not pile up listeners.
  if (live.size === 0) process.on('exit', killLive);
  live.add(child);
}

export async function stopTracked(child: ChildProcess): Promise<void> {
  if (live.delete(child) && live.size === 0) process.off('exit', killLive);
  await stopProcess(child);
}
