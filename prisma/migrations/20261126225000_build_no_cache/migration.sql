-- Builds that reuse nothing (`--no-cache`): no layer, no earlier result.
ALTER TABLE "Build" ADD COLUMN "noCache" BOOLEAN NOT NULL DEFAULT false;
