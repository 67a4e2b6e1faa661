-- CreateEnum
CREATE TYPE "Forge" AS ENUM ('github', 'gitlab', 'gitea');

-- AlterTable
ALTER TABLE "Build" ADD COLUMN     "projectId" UUID;

-- CreateTable
CREATE TABLE "Project" (
    "id" UUID NOT NULL,
    "name" TEXT NOT NULL,
    "repo" TEXT NOT NULL,
    "image" TEXT NOT NULL,
    "platforms" TEXT[],
    "tags" TEXT[],
    "branches" TEXT[],
    "tagsFilter" TEXT[],
    "dockerfile" TEXT NOT NULL,
    "context" TEXT NOT NULL,
    "buildArgs" JSONB NOT NULL DEFAULT '{}',
    "webhookSecret" TEXT NOT NULL,
    "forge" "Forge",
    "forgeApiUrl" TEXT,
    "forgeRepository" TEXT,
    "forgeToken" TEXT,
    "rejectedDeliveries" INTEGER NOT NULL DEFAULT 0,
    "createdAt" TIMESTAMPTZ(3) NOT NULL DEFAULT CURRENT_TIMESTAMP,
    "updatedAt" TIMESTAMPTZ(3) NOT NULL,

    CONSTRAINT "Project_pkey" PRIMARY KEY ("id")
);

-- CreateTable
CREATE TABLE "Delivery" (
    "id" UUID NOT NULL,
    "projectId" UUID NOT NULL,
    "forge" "Forge" NOT NULL,
    "deliveryId" TEXT NOT NULL,
    "event" TEXT,
    "ref" TEXT,
    "commit" TEXT,
    "outcome" TEXT NOT NULL,
    "reason" TEXT,
    "buildId" UUID,
    "httpStatus" INTEGER NOT NULL,
    "response" JSONB NOT NULL,
    "receivedAt" TIMESTAMPTZ(3) NOT NULL DEFAULT CURRENT_TIMESTAMP,

    CONSTRAINT "Delivery_pkey" PRIMARY KEY ("id")
);

-- CreateIndex
CREATE UNIQUE INDEX "Project_name_key" ON "Project"("name");

-- CreateIndex
CREATE INDEX "Delivery_projectId_receivedAt_idx" ON "Delivery"("projectId", "receivedAt" DESC);

-- CreateIndex
CREATE UNIQUE INDEX "Delivery_projectId_forge_deliveryId_key" ON "Delivery"("projectId", "forge", "deliveryId");

-- CreateIndex
CREATE INDEX "Build_projectId_idx" ON "Build"("projectId");

-- AddForeignKey
ALTER TABLE "Build" ADD CONSTRAINT "Build_projectId_fkey" FOREIGN KEY ("projectId") REFERENCES "Project"("id") ON DELETE SET NULL ON UPDATE CASCADE;

-- AddForeignKey
ALTER TABLE "Delivery" ADD CONSTRAINT "Delivery_projectId_fkey" FOREIGN KEY ("projectId") REFERENCES "Project"("id") ON DELETE CASCADE ON UPDATE CASCADE;
