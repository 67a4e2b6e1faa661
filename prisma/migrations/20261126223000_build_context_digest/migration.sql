-- AlterTable: builds of an uploaded context (farm build --upload) record its digest
ALTER TABLE "Build" ADD COLUMN "contextDigest" TEXT;
