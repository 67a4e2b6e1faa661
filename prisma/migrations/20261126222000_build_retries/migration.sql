-- Retries of failed or canceled builds: the run number names each run's jobs, and a publish
-- claim makes a cancel and a publish exclude each other.
ALTER TABLE "Build" ADD COLUMN "retries" INTEGER NOT NULL DEFAULT 0;
ALTER TABLE "Build" ADD COLUMN "retriedAt" TIMESTAMPTZ(3);
ALTER TABLE "Build" ADD COLUMN "publishingAt" TIMESTAMPTZ(3);
