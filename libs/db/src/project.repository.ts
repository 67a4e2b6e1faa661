import { Injectable } from '@nestjs/common';
import { Prisma, type Delivery, type Forge, type Project } from './generated/client';
import type { Db } from './build.repository';
import { PrismaService } from './prisma.service';

export type { Delivery, Forge, Project };

export type NewProject = Omit<Project, 'rejectedDeliveries' | 'createdAt' | 'updatedAt' | 'buildArgs'> & {
  buildArgs: Record<string, string>;
};
export type ProjectChanges = Partial<Omit<NewProject, 'id'>>;

export interface NewDelivery {
  id: string;
  projectId: string;
  forge: Forge;
  deliveryId: string;
  event?: string;
  ref?: string;
  commit?: string;
}

export interface DeliveryAnswer {
  outcome: string;
  reason?: string;
  buildId?: string;
  httpStatus: number;
  response: Record<string, unknown>;
}

/** Projects and their webhook deliveries. */
@Injectable()
export class ProjectRepository {
  constructor(private readonly prisma: PrismaService) {}

  /** Creates a project; undefined when the name is taken. */
  async create(project: NewProject): Promise<Project | undefined> {
    try {
      return await this.prisma.project.create({ data: project });
    } catch (error) {
      if (error instanceof Prisma.PrismaClientKnownRequestError && error.code === 'P2002') return undefined;
      throw error;
    }
  }

  async find(id: string): Promise<Project | null> {
    return this.prisma.project.findUnique({ where: { id } });
  }

  async list(): Promise<Project[]> {
    return this.prisma.project.findMany({ orderBy: { createdAt: 'desc' } });
  }

  /** Applies changes; null when the project does not exist, undefined when the new name is taken. */
  async update(id: string, changes: ProjectChanges): Promise<Project | null | undefined> {
    try {
      const { count } = await this.prisma.project.updateMany({ where: { id }, data: changes });
      return count === 0 ? null : this.find(id);
    } catch (error) {
      if (error instanceof Prisma.PrismaClientKnownRequestError && error.code === 'P2002') return undefined;
      throw error;
    }
  }

  async delete(id: string): Promise<boolean> {
    const { count } = await this.prisma.project.deleteMany({ where: { id } });
    return count > 0;
  }

  /** A delivery refused for its signature leaves only this counter behind. */
  async countRejectedDelivery(id: string): Promise<void> {
    await this.prisma.project.updateMany({ where: { id }, data: { rejectedDeliveries: { increment: 1 } } });
  }

  /**
   * Runs `handle` for a delivery exactly once per (project, forge, delivery id), even when the
   * same delivery arrives twice at the same moment: the delivery row is inserted first inside
   * the transaction, so a concurrent insert of the same id waits on the unique index until
   * this transaction ends, then finds the row and gets the recorded answer. No
   * check-then-insert.
   */
  async recordDeliveryOnce(
    delivery: NewDelivery,
    handle: (db: Db) => Promise<DeliveryAnswer>,
  ): Promise<{ answer: DeliveryAnswer; replayed: boolean }> {
    const fresh = await this.prisma.$transaction(async (tx) => {
      const inserted = await tx.$executeRaw`
        INSERT INTO "Delivery" ("id", "projectId", "forge", "deliveryId", "event", "ref", "commit", "outcome", "httpStatus", "response")
        VALUES (${delivery.id}::uuid, ${delivery.projectId}::uuid, ${delivery.forge}::"Forge", ${delivery.deliveryId},
                ${delivery.event ?? null}, ${delivery.ref ?? null}, ${delivery.commit ?? null}, 'pending', 0, '{}'::jsonb)
        ON CONFLICT ("projectId", "forge", "deliveryId") DO NOTHING`;
      if (inserted === 0) return undefined;
      const answer = await handle(tx);
      await tx.delivery.update({
        where: { id: delivery.id },
        data: {
          outcome: answer.outcome,
          reason: answer.reason,
          buildId: answer.buildId,
          httpStatus: answer.httpStatus,
          response: answer.response as Prisma.InputJsonValue,
        },
      });
      return answer;
    });
    if (fresh) return { answer: fresh, replayed: false };
    const existing = await this.prisma.delivery.findUniqueOrThrow({
      where: {
        projectId_forge_deliveryId: {
          projectId: delivery.projectId,
          forge: delivery.forge,
          deliveryId: delivery.deliveryId,
        },
      },
    });
    return {
      replayed: true,
      answer: {
        outcome: existing.outcome,
        reason: existing.reason ?? undefined,
        buildId: existing.buildId ?? undefined,
        httpStatus: existing.httpStatus,
        response: existing.response as Record<string, unknown>,
      },
    };
  }

  async listDeliveries(projectId: string, limit: number): Promise<Delivery[]> {
    return this.prisma.delivery.findMany({
      where: { projectId },
      orderBy: { receivedAt: 'desc' },
      take: limit,
    });
  }
}
