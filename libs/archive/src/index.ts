export { DockerignoreError, DockerignoreMatcher, globToRegExp, parseDockerignore } from './dockerignore';
export { ContextError, listContext, packContext } from './pack';
export type { ContextEntry, ContextListing, PackedContext } from './pack';
export { extractTar, extractTarGz, TarFormatError, UnsafeArchiveError } from './extract';
export type { ExtractOptions } from './extract';
export { encodeHeader, END_OF_ARCHIVE, padding } from './tar';
export type { EntryType, TarEntry } from './tar';
