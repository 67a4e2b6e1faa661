-- DropIndex
DROP INDEX "Build_projectId_idx";

-- CreateIndex
CREATE INDEX "Build_projectId_ref_commit_idx" ON "Build"("projectId", "ref", "commit");
