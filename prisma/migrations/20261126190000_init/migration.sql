-- CreateEnum
CREATE TYPE "BuildStatus" AS ENUM ('queued', 'running', 'succeeded', 'failed', 'canceled');

-- CreateTable
CREATE TABLE "Build" (
    "id" UUID NOT NULL,
    "status" "BuildStatus" NOT NULL DEFAULT 'queued',
    "repo" TEXT NOT NULL,
    "ref" TEXT,
    "commit" TEXT NOT NULL,
    "dockerfile" TEXT NOT NULL,
    "context" TEXT NOT NULL,
    "target" TEXT,
    "tags" TEXT[],
    "buildArgs" JSONB NOT NULL DEFAULT '{}',
    "labels" JSONB NOT NULL DEFAULT '{}',
    "digest" TEXT,
    "mediaType" TEXT,
    "error" TEXT,
    "idempotencyKey" TEXT,
    "createdAt" TIMESTAMPTZ(3) NOT NULL DEFAULT CURRENT_TIMESTAMP,
    "startedAt" TIMESTAMPTZ(3),
    "finishedAt" TIMESTAMPTZ(3),
    "enqueuedAt" TIMESTAMPTZ(3),

    CONSTRAINT "Build_pkey" PRIMARY KEY ("id")
);

-- CreateTable
CREATE TABLE "PlatformBuild" (
    "buildId" UUID NOT NULL,
    "platform" TEXT NOT NULL,
    "position" INTEGER NOT NULL,
    "status" "BuildStatus" NOT NULL DEFAULT 'queued',
    "digest" TEXT,
    "mediaType" TEXT,
    "size" INTEGER,
    "agent" TEXT,
    "emulated" BOOLEAN NOT NULL DEFAULT false,
    "attempts" INTEGER NOT NULL DEFAULT 0,
    "error" TEXT,
    "logTail" TEXT,
    "log" TEXT,
    "startedAt" TIMESTAMPTZ(3),
    "finishedAt" TIMESTAMPTZ(3),

    CONSTRAINT "PlatformBuild_pkey" PRIMARY KEY ("buildId","platform")
);

-- CreateIndex
CREATE UNIQUE INDEX "Build_idempotencyKey_key" ON "Build"("idempotencyKey");

-- CreateIndex
CREATE INDEX "Build_createdAt_id_idx" ON "Build"("createdAt" DESC, "id");

-- CreateIndex
CREATE INDEX "Build_status_idx" ON "Build"("status");

-- AddForeignKey
ALTER TABLE "PlatformBuild" ADD CONSTRAINT "PlatformBuild_buildId_fkey" FOREIGN KEY ("buildId") REFERENCES "Build"("id") ON DELETE CASCADE ON UPDATE CASCADE;
