-- The scheduling sweep (every few seconds) selects the platforms still waiting, queued or
-- unschedulable: without an index that is a scan of every platform ever built.
-- CreateIndex
CREATE INDEX "PlatformBuild_status_idx" ON "PlatformBuild"("status");
