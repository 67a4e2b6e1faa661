-- CreateEnum
CREATE TYPE "PlatformStatus" AS ENUM ('queued', 'unschedulable', 'running', 'succeeded', 'failed', 'canceled');

-- AlterTable
ALTER TABLE "Build" ADD COLUMN     "requires" TEXT[],
ADD COLUMN     "scheduleTimeout" INTEGER;

-- AlterTable
ALTER TABLE "PlatformBuild" ADD COLUMN     "statusReason" TEXT,
ALTER COLUMN "status" DROP DEFAULT,
ALTER COLUMN "status" TYPE "PlatformStatus" USING ("status"::text::"PlatformStatus"),
ALTER COLUMN "status" SET DEFAULT 'queued';
