import { readFileSync } from 'node:fs';
import type { ChildProcess } from 'node:child_process';

/** Resident set size of a process in MiB, from /proc (0 once it is gone). */
export function rssMiB(pid: number | undefined): number {
  if (pid === undefined) return 0;
  try {
    const match = /^VmRSS:\s+(\d+) kB$/m.exec(readFileSync(`/proc/${pid}/status`, 'utf8'));
    return match ? Number(match[1]) / 1024 : 0;
  } catch {
    return 0;
  }
}

/** Samples the RSS of some processes (the agents) every 50 ms while started, keeping each one's peak. */
export class RssSampler {
  private timer?: NodeJS.Timeout;
  private readonly peaks: number[];

  constructor(private readonly processes: ChildProcess[]) {
    this.peaks = processes.map(() => 0);
  }

  start(): void {
    this.sample();
    this.timer ??= setInterval(() => this.sample(), 50);
  }

  stop(): void {
    clearInterval(this.timer);
    this.timer = undefined;
    this.sample();
  }

  /** The current RSS of each process, in MiB. */
  now(): number[] {
    return this.processes.map((child) => rssMiB(child.pid));
  }

  /** The highest RSS each process had while sampled, in MiB. */
  peak(): number[] {
    return [...this.peaks];
  }

  private sample(): void {
    this.now().forEach((value, i) => (this.peaks[i] = Math.max(this.peaks[i], value)));
  }
}
