import type { Delivery, Project } from '@farm/db';

/** A project as the API shows it: secrets (webhook secret, forge token) are write-only. */
export interface ProjectView {
  id: string;
  name: string;
  repo: string;
  image: string;
  platforms: string[];
  tags: string[];
  branches: string[];
  tagsFilter: string[];
  dockerfile: string;
  context: string;
  buildArgs: unknown;
  forge: string | null;
  forgeApiUrl: string | null;
  forgeRepository: string | null;
  hasForgeToken: boolean;
  /** Paths of this project's webhook endpoints, one per forge. */
  hooks: Record<string, string>;
  rejectedDeliveries: number;
  createdAt: string;
  updatedAt: string;
}

export function toProjectView(project: Project): ProjectView {
  const hook = (forge: string) => `/v1/projects/${project.id}/hooks/${forge}`;
  return {
    id: project.id,
    name: project.name,
    repo: project.repo,
    image: project.image,
    platforms: project.platforms,
    tags: project.tags,
    branches: project.branches,
    tagsFilter: project.tagsFilter,
    dockerfile: project.dockerfile,
    context: project.context,
    buildArgs: project.buildArgs,
    forge: project.forge,
    forgeApiUrl: project.forgeApiUrl,
    forgeRepository: project.forgeRepository,
    hasForgeToken: project.forgeToken !== null,
    hooks: { github: hook('github'), gitlab: hook('gitlab'), gitea: hook('gitea') },
    rejectedDeliveries: project.rejectedDeliveries,
    createdAt: project.createdAt.toISOString(),
    updatedAt: project.updatedAt.toISOString(),
  };
}

export interface DeliveryView {
  id: string;
  forge: string;
  deliveryId: string;
  event: string | null;
  ref: string | null;
  commit: string | null;
  outcome: string;
  reason: string | null;
  buildId: string | null;
  httpStatus: number;
  receivedAt: string;
}

export function toDeliveryView(delivery: Delivery): DeliveryView {
  return {
    id: delivery.id,
    forge: delivery.forge,
    deliveryId: delivery.deliveryId,
    event: delivery.event,
    ref: delivery.ref,
    commit: delivery.commit,
    outcome: delivery.outcome,
    reason: delivery.reason,
    buildId: delivery.buildId,
    httpStatus: delivery.httpStatus,
    receivedAt: delivery.receivedAt.toISOString(),
  };
}
