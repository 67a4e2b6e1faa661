import { execFile } from 'node:child_process';
import { cpus, release, totalmem } from 'node:os';
import { promisify } from 'node:util';

const run = promisify(execFile);

/** What the numbers were measured on, printed above them. */
export interface MachineInfo {
  cpus: number;
  cpuModel: string;
  memoryGiB: number;
  kernel: string;
  buildah: string;
  node: string;
}

export async function describeMachine(): Promise<MachineInfo> {
  const [nproc, buildah] = await Promise.all([
    run('nproc').then(({ stdout }) => Number(stdout.trim())),
    run('buildah', ['--version']).then(({ stdout }) => stdout.trim()),
  ]);
  return {
    cpus: nproc,
    cpuModel: cpus()[0]?.model.trim() ?? 'unknown',
    memoryGiB: Math.round((totalmem() / 1024 ** 3) * 10) / 10,
    kernel: release(),
    buildah,
    node: process.version,
  };
}
