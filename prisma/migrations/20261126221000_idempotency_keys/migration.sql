-- Idempotency-Key on POST /v1/builds: the key itself is "Build"."idempotencyKey" (unique since
-- the init migration); the hash of the request sent with it tells a replay from a conflict.
-- AlterTable
ALTER TABLE "Build" ADD COLUMN     "idempotencyHash" TEXT;
