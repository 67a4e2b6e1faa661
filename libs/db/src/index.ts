export * from './prisma.service';
export * from './build.repository';
export * from './project.repository';
export * from './metrics.repository';
export * from './token.repository';
export * from './db.module';
export { isDatabaseUnavailable, isUniqueViolation } from './errors';
export { runExclusively } from './exclusive';
export {
  applyMigrations,
  migrationChecksum,
  MigrationError,
  type ApplyMigrationsOptions,
  type ApplyMigrationsResult,
  type MigrationErrorCode,
} from './migrate';
