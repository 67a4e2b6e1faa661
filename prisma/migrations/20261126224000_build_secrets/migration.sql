-- AlterTable: build secrets, sealed with FARM_SECRETS_KEY (never in clear)
ALTER TABLE "Build" ADD COLUMN "secrets" TEXT;
