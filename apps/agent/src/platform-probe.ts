import { chmod, mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { formatPlatform, type Platform } from '@farm/domain';
import { runProcess } from './run-process';

/**
 * The smallest static Linux program of each architecture: it calls exit(0) and nothing else.
 * Running it proves this host executes that architecture's binaries, natively or through a
 * qemu-user binfmt_misc handler, which is exactly what a RUN step in a build of that platform
 * needs. Machine code per architecture (the ELF e_machine value and the instructions).
 */
const EXIT_PROGRAMS: Record<string, { machine: number; bits: 32 | 64; code: number[] }> = {
  // mov eax, 60 (exit); xor edi, edi; syscall
  amd64: { machine: 62, bits: 64, code: [0xb8, 0x3c, 0, 0, 0, 0x31, 0xff, 0x0f, 0x05] },
  // mov x0, #0; mov x8, #93 (exit); svc #0
  arm64: { machine: 183, bits: 64, code: [0x00, 0x00, 0x80, 0xd2, 0xa8, 0x0b, 0x80, 0xd2, 0x01, 0x00, 0x00, 0xd4] },
  // mov r0, #0; mov r7, #1 (exit); svc #0
  arm: { machine: 40, bits: 32, code: [0x00, 0x00, 0xa0, 0xe3, 0x01, 0x70, 0xa0, 0xe3, 0x00, 0x00, 0x00, 0xef] },
  // xor ebx, ebx; mov eax, 1 (exit); int 0x80
  '386': { machine: 3, bits: 32, code: [0x31, 0xdb, 0xb8, 0x01, 0, 0, 0, 0xcd, 0x80] },
  // li a0, 0; li a7, 93 (exit); ecall
  riscv64: { machine: 243, bits: 64, code: [0x13, 0x05, 0, 0, 0x93, 0x08, 0xd0, 0x05, 0x73, 0, 0, 0] },
};

const LOAD_ADDRESS = 0x400000;

/** A minimal little-endian ELF executable: header, one PT_LOAD program header, the code. */
export function exitProgram(architecture: string): Buffer | undefined {
  const program = EXIT_PROGRAMS[architecture];
  if (!program) return undefined;
  const is64 = program.bits === 64;
  const ehsize = is64 ? 64 : 52;
  const phsize = is64 ? 56 : 32;
  const codeOffset = ehsize + phsize;
  const size = codeOffset + program.code.length;
  const elf = Buffer.alloc(size);
  elf.set([0x7f, 0x45, 0x4c, 0x46, is64 ? 2 : 1, 1, 1, 0], 0); // magic, class, LSB, version, SysV
  elf.writeUInt16LE(2, 16); // ET_EXEC
  elf.writeUInt16LE(program.machine, 18);
  elf.writeUInt32LE(1, 20); // EV_CURRENT
  const entry = LOAD_ADDRESS + codeOffset;
  if (is64) {
    elf.writeBigUInt64LE(BigInt(entry), 24);
    elf.writeBigUInt64LE(BigInt(ehsize), 32); // e_phoff
    elf.writeUInt16LE(ehsize, 52);
    elf.writeUInt16LE(phsize, 54);
    elf.writeUInt16LE(1, 56); // e_phnum
    const ph = ehsize;
    elf.writeUInt32LE(1, ph); // PT_LOAD
    elf.writeUInt32LE(5, ph + 4); // R+X
    elf.writeBigUInt64LE(0n, ph + 8); // p_offset
    elf.writeBigUInt64LE(BigInt(LOAD_ADDRESS), ph + 16); // p_vaddr
    elf.writeBigUInt64LE(BigInt(LOAD_ADDRESS), ph + 24); // p_paddr
    elf.writeBigUInt64LE(BigInt(size), ph + 32); // p_filesz
    elf.writeBigUInt64LE(BigInt(size), ph + 40); // p_memsz
    elf.writeBigUInt64LE(0x1000n, ph + 48); // p_align
  } else {
    elf.writeUInt32LE(entry, 24);
    elf.writeUInt32LE(ehsize, 28); // e_phoff
    if (architecture === 'arm') elf.writeUInt32LE(0x05000000, 36); // EABI version 5
    elf.writeUInt16LE(ehsize, 40);
    elf.writeUInt16LE(phsize, 42);
    elf.writeUInt16LE(1, 44);
    const ph = ehsize;
    elf.writeUInt32LE(1, ph);
    elf.writeUInt32LE(0, ph + 4); // p_offset
    elf.writeUInt32LE(LOAD_ADDRESS, ph + 8);
    elf.writeUInt32LE(LOAD_ADDRESS, ph + 12);
    elf.writeUInt32LE(size, ph + 16);
    elf.writeUInt32LE(size, ph + 20);
    elf.writeUInt32LE(5, ph + 24); // R+X
    elf.writeUInt32LE(0x1000, ph + 28);
  }
  elf.set(program.code, codeOffset);
  return elf;
}

/**
 * Proves this host can execute programs of `platform`; throws with the reason otherwise.
 * Hosts whose architecture has no probe program are trusted only for their native platform.
 */
export async function probePlatform(platform: Platform, native: Platform): Promise<void> {
  const name = formatPlatform(platform);
  const program = exitProgram(platform.architecture);
  if (!program) {
    if (formatPlatform(native) === name) return;
    throw new Error(`cannot verify that this host runs ${name}: no probe program for ${platform.architecture}`);
  }
  const dir = await mkdtemp(join(tmpdir(), 'farm-probe-'));
  try {
    const file = join(dir, `exit-${platform.architecture}`);
    await writeFile(file, program);
    await chmod(file, 0o755);
    await runProcess(file, []);
  } catch (error) {
    const hint =
      formatPlatform(native) === name
        ? ''
        : ` (is qemu-user-static installed and its binfmt_misc handler for ${platform.architecture} enabled?)`;
    throw new Error(`this host cannot run ${name} programs: ${(error as Error).message}${hint}`);
  } finally {
    await rm(dir, { recursive: true, force: true });
  }
}
