/** Dockerfiles the end-to-end tests build, on the busybox base of `pushBusyboxBase`. */

/** Records the architecture it ran on in /arch, and copies hello.txt. */
export function archDockerfile(base: string): string {
  return `FROM ${base}\nRUN uname -m > /arch\nCOPY hello.txt /hello.txt\n`;
}

/** One stage per architecture; only the arm64 one fails (`RUN false`). */
export function failingOnArm64Dockerfile(base: string): string {
  return [
    'ARG TARGETARCH',
    `FROM ${base} AS build-amd64`,
    'RUN echo building for amd64',
    `FROM ${base} AS build-arm64`,
    'RUN echo about to fail on arm64 && false',
    'FROM build-${TARGETARCH}',
    'RUN uname -m > /arch',
    '',
  ].join('\n');
}

/** Runs for `seconds` before recording the architecture: long enough to kill its agent mid-build. */
export function slowDockerfile(base: string, seconds: number): string {
  return `FROM ${base}\nRUN sleep ${seconds} && uname -m > /arch\n`;
}
