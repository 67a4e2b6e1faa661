import { parseAgentArgs } from './cli-args';
import { loopbackRegistries } from './builders/buildah-job';
import { exitProgram } from './platform-probe';

describe('parseAgentArgs', () => {
  test('flags of `npm run start:agent --`', () => {
    expect(
      parseAgentArgs(['--platform', 'linux/arm64', '--emulated', '--name', 'a1-01', '--labels', 'large, ssd']),
    ).toEqual({
      platform: 'linux/arm64',
      emulated: true,
      name: 'a1-01',
      labels: ['large', 'ssd'],
      ssh: undefined,
    });
    expect(parseAgentArgs([])).toEqual({
      emulated: false,
      labels: [],
      platform: undefined,
      name: undefined,
      ssh: undefined,
    });
  });

  test('unknown flags and odd names are refused', () => {
    expect(() => parseAgentArgs(['--privileged'])).toThrow();
    expect(() => parseAgentArgs(['--name', '../etc'])).toThrow(/--name/);
  });
});

describe('loopbackRegistries', () => {
  test('finds the loopback registries a Dockerfile pulls from, and nothing else', () => {
    const dockerfile = [
      'FROM 127.0.0.1:5000/base/busybox:latest AS build',
      'COPY --from=localhost:5001/tools/x /x /x',
      'FROM [::1]:5002/a/b',
      'FROM registry.example.com/127.0.0.1/x',
      'FROM docker.io/library/alpine',
      'FROM localhost/app',
    ].join('\n');
    expect(loopbackRegistries(dockerfile)).toEqual(['127.0.0.1:5000', 'localhost:5001', '[::1]:5002', 'localhost']);
  });
});

describe('exitProgram', () => {
  test.each([
    ['amd64', 2, 62],
    ['arm64', 2, 183],
    ['arm', 1, 40],
    ['386', 1, 3],
    ['riscv64', 2, 243],
  ])('%s: a static ELF executable for the right machine', (architecture, elfClass, machine) => {
    const elf = exitProgram(architecture)!;
    expect(elf.subarray(0, 4).toString('latin1')).toBe('\x7fELF');
    expect(elf[4]).toBe(elfClass);
    expect(elf.readUInt16LE(16)).toBe(2);
    expect(elf.readUInt16LE(18)).toBe(machine);
  });

  test('no program for architectures without a probe', () => {
    expect(exitProgram('s390x')).toBeUndefined();
  });
});
